from __future__ import annotations

from typing import Any

import pytest

from federator.domain import policy
from federator.domain.propagation import PlacementError

JOINED = {"a": {"tier": "gold"}, "b": {"tier": "silver"}, "c": {}}


def make(name: str, spec: dict[str, Any], namespace: str = "shop") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def deployment(name: str = "web", **labels: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "shop", "labels": labels}}


def test_governing_policy_by_kind_name_and_labels() -> None:
    by_label = make("b-by-label", {"resourceSelectors": [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "labelSelector": {"matchLabels": {"app": "web"}}}]})
    by_name = make("a-by-name", {"resourceSelectors": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}]})
    elsewhere = make("c", {"resourceSelectors": [{"apiVersion": "apps/v1",
                                                  "kind": "Deployment"}]}, "other")
    policies = [by_label, by_name, elsewhere]
    assert policy.governing(policies, deployment(app="web")) is by_label
    assert policy.governing(policies, deployment("api")) is by_name
    assert policy.governing(policies, deployment("db")) is None


def test_namespace_objects_use_their_own_policies() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    assert policy.policy_namespace(ns) == "shop"


def test_placement_by_list_or_selector() -> None:
    listed = make("p", {"placement": {"clusters": ["b", "a"]}})
    assert policy.placement(listed, JOINED) == ["a", "b"]
    selected = make("p", {"placement": {"clusterSelector": {"matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["gold", "silver"]}]}}})
    assert policy.placement(selected, JOINED) == ["a", "b"]
    assert policy.placement(make("p", {}), JOINED) == ["a", "b", "c"]


def test_unknown_clusters_are_named() -> None:
    bad = make("p", {"replicaScheduling": {"clusters": {"zz": {"weight": 1}}},
                     "overrides": [{"clusters": ["yy"], "patches": []}]})
    with pytest.raises(PlacementError, match="p names clusters that are not joined: yy, zz"):
        policy.check(bad, JOINED)


def test_replica_preferences_and_overrides() -> None:
    p = make("p", {"replicaScheduling": {"rebalance": True, "clusters": {"a": {"weight": 3}}},
                   "overrides": [
                       {"clusters": ["a"], "patches": [{"op": "add", "path": "/x", "value": 1}]},
                       {"clusterSelector": {"matchLabels": {"tier": "silver"}},
                        "patches": [{"op": "add", "path": "/y", "value": 2}]}]})
    prefs = policy.replica_preferences(p)
    assert prefs is not None and prefs.rebalance and prefs.clusters["a"].weight == 3
    assert policy.overrides(p, "a", JOINED["a"]) == [{"op": "add", "path": "/x", "value": 1}]
    assert policy.overrides(p, "b", JOINED["b"]) == [{"op": "add", "path": "/y", "value": 2}]
    assert policy.overrides(p, "c", JOINED["c"]) == []


@pytest.mark.parametrize(("selector", "field", "says"), [
    ({"matchExpressions": [{"key": "bad key!", "operator": "In", "values": ["a"]}]},
     "spec.placement.clusterSelector.matchExpressions[0].key", "is not a label key"),
    ({"matchExpressions": [{"key": "tier", "operator": "Exists", "values": ["a"]}]},
     "spec.placement.clusterSelector.matchExpressions[0].values", "takes no values"),
    ({"matchExpressions": [{"key": "tier", "operator": "In"}]},
     "spec.placement.clusterSelector.matchExpressions[0].values", "at least one value"),
    ({"matchExpressions": [{"key": "tier", "operator": "Near", "values": ["a"]}]},
     "spec.placement.clusterSelector.matchExpressions[0].operator", "is not one of"),
    ({"matchLabels": {"tier": "not a value"}},
     "spec.placement.clusterSelector.matchLabels", "is not a label value"),
    ({"matchLabels": {"-x/y": "a"}}, "spec.placement.clusterSelector.matchLabels",
     "is not a label key"),
    ("tier=gold", "spec.placement.clusterSelector", "not a label selector"),
])
def test_selectors_that_cannot_be_read_are_named(selector: object, field: str,
                                                 says: str) -> None:
    bad = make("p", {"placement": {"clusterSelector": selector}})
    with pytest.raises(PlacementError) as caught:
        policy.placement(bad, JOINED)
    assert str(caught.value).startswith(f"FederationPolicy p: {field}: ")
    assert says in str(caught.value)


def test_readable_selectors_pass() -> None:
    good = make("p", {"placement": {"clusterSelector": {
        "matchLabels": {"example.com/tier": "gold", "empty": ""},
        "matchExpressions": [{"key": "tier", "operator": "Exists"},
                             {"key": "zone", "operator": "NotIn", "values": ["x_1.a"]}]}},
        "overrides": [{"clusterSelector": {"matchLabels": {"tier": "gold"}}, "patches": []}]})
    policy.check(good, JOINED)
    bad_override = make("p", {"overrides": [{"clusterSelector": {"matchExpressions": [
        {"key": "a", "operator": "DoesNotExist", "values": ["b"]}]}, "patches": []}]})
    with pytest.raises(PlacementError, match=r"spec.overrides\[0\].clusterSelector"):
        policy.check(bad_override, JOINED)


def test_a_resource_selector_that_cannot_be_read_is_named_on_the_objects_it_claims() -> None:
    """`Exists` with values (the apiserver refuses that shape) in a resource selector: the
    policy still governs the objects of its kind, and deciding them names the field."""
    bad = make("p", {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                            "labelSelector": {"matchExpressions": [
                                                {"key": "app", "operator": "Exists",
                                                 "values": ["web"]}]}}]})
    assert policy.governing([bad], deployment(app="web")) is bad
    assert policy.governing([bad], {**deployment(), "kind": "StatefulSet"}) is None
    with pytest.raises(PlacementError) as caught:
        policy.placement(bad, JOINED)
    assert str(caught.value).startswith(
        "FederationPolicy p: spec.resourceSelectors[0].labelSelector.matchExpressions[0]"
        ".values: Exists takes no values")
    no_operator = make("p", {"resourceSelectors": [{"apiVersion": "apps/v1",
                                                    "kind": "Deployment", "labelSelector": {
                                                        "matchExpressions": [{"key": "a"}]}}]})
    assert policy.governing([no_operator], deployment()) is no_operator  # no crash


@pytest.mark.parametrize(("patch", "field", "path"), [
    ({"op": "replace", "path": "/metadata/name", "value": "other"}, "path", "/metadata/name"),
    ({"op": "add", "path": "/metadata/namespace", "value": "x"}, "path",
     "/metadata/namespace"),
    ({"op": "replace", "path": "/metadata", "value": {}}, "path", "/metadata"),
    ({"op": "replace", "path": "/kind", "value": "Secret"}, "path", "/kind"),
    ({"op": "remove", "path": "/apiVersion"}, "path", "/apiVersion"),
    ({"op": "replace", "path": "", "value": {}}, "path", "(the whole object)"),
    ({"op": "move", "from": "/metadata/name", "path": "/data/name"}, "from", "/metadata/name"),
    ({"op": "copy", "from": "/data/a", "path": "/metadata/name/x"}, "path",
     "/metadata/name/x"),
])
def test_an_override_of_what_makes_the_copy_is_refused_naming_the_path(
        patch: dict[str, Any], field: str, path: str) -> None:
    bad = make("p", {"overrides": [{"clusters": ["a"], "patches": [
        {"op": "add", "path": "/data/x", "value": "1"}, patch]}]})
    with pytest.raises(PlacementError) as caught:
        policy.check(bad, JOINED)
    assert str(caught.value).startswith(
        f"FederationPolicy p: spec.overrides[0].patches[1].{field}: {path} cannot be "
        "overridden")


def test_overrides_of_labels_and_fields_near_the_name_pass() -> None:
    good = make("p", {"overrides": [{"clusters": ["a"], "patches": [
        {"op": "add", "path": "/metadata/labels/tier", "value": "gold"},
        {"op": "add", "path": "/metadata/nameplate", "value": "x"},
        {"op": "test", "path": "/metadata/name", "value": "web"},
        {"op": "copy", "from": "/metadata/name", "path": "/data/name"}]}]})
    policy.check(good, JOINED)
