from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from federator.domain.objects import contains, difference

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=3),
    max_leaves=10)


def test_extra_fields_of_the_actual_object_are_fine() -> None:
    actual = {"metadata": {"name": "a", "uid": "1", "labels": {"x": "1"}}, "data": {"k": "v"}}
    assert contains(actual, {"metadata": {"name": "a"}, "data": {"k": "v"}})


def test_a_different_or_missing_value_is_not_contained() -> None:
    actual = {"data": {"k": "v"}, "rules": [{"verbs": ["get"]}]}
    assert not contains(actual, {"data": {"k": "w"}})
    assert not contains(actual, {"data": {"other": "v"}})
    assert not contains(actual, {"rules": [{"verbs": ["get", "list"]}]})
    assert not contains(actual, {"rules": []})


@given(json_values)
def test_every_value_contains_itself(value: Any) -> None:
    assert contains(value, value)


def test_difference_names_the_first_field_that_differs() -> None:
    actual = {"spec": {"replicas": 2, "template": {"containers": [{"image": "a"}]}}}
    assert difference(actual, {"spec": {"replicas": 3}}) == "spec.replicas"
    assert difference(actual, {"spec": {"template": {"containers": [{"image": "b"}]}}}) == \
        "spec.template.containers[0].image"
    assert difference(actual, {"metadata": {}}) == "metadata"
    assert difference(actual, {"spec": {"replicas": 2}}) is None


@given(json_values, json_values)
def test_difference_agrees_with_contains(actual: Any, desired: Any) -> None:
    assert (difference(actual, desired) is None) == contains(actual, desired)


def test_an_empty_key_still_has_a_path() -> None:
    """Found by hypothesis: a field named "" holding a list that differs was reported as no
    difference (its path was the empty string)."""
    assert difference({"": None}, {"": []}) == "."
    assert difference({"": [1]}, {"": [2]}) == "[0]"
