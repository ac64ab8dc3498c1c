from __future__ import annotations

import pytest

from federator.domain import preferences
from federator.domain.preferences import PreferencesError
from federator.domain.spreading import ClusterPreference


def annotated(text: str) -> dict[str, object]:
    return {"kind": "Deployment", "metadata": {"annotations": {
        preferences.DEPLOYMENT_PREFERENCES: text}}}


def test_federation_v1_annotation() -> None:
    prefs = preferences.of_object(annotated(
        '{"rebalance": true, "clusters": {"a": {"weight": 2, "minReplicas": 1,'
        ' "maxReplicas": 5}, "*": {"weight": 1}}}'))
    assert prefs is not None and prefs.rebalance
    assert prefs.for_clusters(["a", "b"]) == {"a": ClusterPreference(2, 1, 5),
                                              "b": ClusterPreference(1, 0, None)}
    assert prefs.named_clusters() == {"a"}


def test_without_a_star_unlisted_clusters_get_nothing() -> None:
    prefs = preferences.parse('{"clusters": {"a": {"weight": 1}}}', "x")
    assert prefs.for_clusters(["a", "b"]) == {"a": ClusterPreference(1, 0, None)}
    assert prefs.rebalance is False


def test_no_annotation_means_none() -> None:
    assert preferences.of_object({"kind": "Deployment", "metadata": {}}) is None
    assert preferences.of_object({"kind": "ConfigMap", "metadata": {}}) is None


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "is not valid JSON"),
    ('{"clusters": {"a": {"weight": -1}}}', "clusters.a.weight: Input should be greater"),
    ('{"clusters": {"a": {"minReplicas": 3, "maxReplicas": 2}}}',
     "clusters.a: minReplicas 3 is more than maxReplicas 2"),
    ('{"clusters": {"a": {"wieght": 1}}}', "clusters.a.wieght: Extra inputs"),
    ('{"rebalance": "maybe"}', "rebalance: Input should be a valid boolean"),
])
def test_bad_preferences_name_the_field(text: str, message: str) -> None:
    with pytest.raises(PreferencesError, match=message):
        preferences.of_object(annotated(text))
