"""The one decision the controller acts on and /plan shows: placement, replicas and a reason
for every joined cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federator.domain.decision import Cluster, decide
from federator.domain.preferences import PreferencesError
from federator.domain.propagation import PlacementError

JOINED = {"east": Cluster({"tier": "gold"}, True), "west": Cluster({"tier": "gold"}, True),
          "north": Cluster({"tier": "tin"}, True)}


def deployment(replicas: int, **annotations: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
            "spec": {"replicas": replicas}}


def policy(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "federator.io/v1alpha1", "kind": "FederationPolicy",
            "metadata": {"name": "gold", "namespace": "shop"}, "spec": spec}


PREFS = "federation.kubernetes.io/deployment-preferences"


def test_a_config_object_goes_everywhere_and_says_so() -> None:
    found = decide({"kind": "ConfigMap", "metadata": {"name": "c"}}, None, JOINED)
    assert (found.targets, found.replicas) == (["east", "north", "west"], None)
    assert found.reasons == dict.fromkeys(JOINED, "selected by the object's placement "
                                                  "annotations")


def test_the_policy_places_and_schedules_unless_the_object_says_otherwise() -> None:
    gold = policy(placement={"clusterSelector": {"matchLabels": {"tier": "gold"}}},
                  replicaScheduling={"clusters": {"east": {"weight": 2}, "*": {"weight": 1}}})
    found = decide(deployment(6), gold, JOINED)
    assert found.targets == ["east", "west"]
    assert found.replicas == {"east": 4, "west": 2}
    assert found.reasons["north"] == "not selected by FederationPolicy gold"
    assert found.reasons["east"] == "weight 2 of 3: 4 of 6"
    own = decide(deployment(6, **{"federator.io/clusters": "north"}), gold, JOINED)
    assert (own.targets, own.replicas) == (["north"], {"north": 6})
    assert own.reasons["east"] == "not selected by the object's placement annotations"


def test_a_cluster_that_is_not_ready_keeps_a_target_but_gets_no_share() -> None:
    clusters = {**JOINED, "west": Cluster({}, False)}
    found = decide(deployment(6), None, clusters)
    assert found.targets == ["east", "north", "west"]
    assert found.replicas == {"east": 3, "north": 3}
    assert found.reasons["west"] == "not Ready: its share goes to the others"


def test_capacity_and_current_placement() -> None:
    full = decide(deployment(6), None, JOINED, capacity={"north": 1})
    assert full.replicas == {"east": 3, "north": 1, "west": 2}
    assert full.reasons["north"] == "full: it has room for 1"
    kept = decide(deployment(7, **{PREFS: json.dumps({"rebalance": False,
                                                      "clusters": {"*": {}}})}),
                  None, JOINED, current={"east": 5, "west": 1})
    assert kept.replicas == {"east": 5, "north": 1, "west": 1}
    assert kept.reasons["east"] == "kept where they run (rebalance off)"


def test_settings_that_cannot_be_used() -> None:
    with pytest.raises(PreferencesError, match="not joined: south"):
        decide(deployment(3, **{PREFS: '{"clusters": {"south": {}}}'}), None, JOINED)
    with pytest.raises(PlacementError, match="not joined: south"):
        decide(deployment(3, **{"federator.io/clusters": "south"}), None, JOINED)
    with pytest.raises(PlacementError):
        decide(deployment(3), policy(placement={"clusters": ["south"]}), JOINED)


@given(st.integers(0, 10_000), st.dictionaries(st.sampled_from(sorted(JOINED)),
                                               st.booleans(), min_size=3, max_size=3),
       st.dictionaries(st.sampled_from(sorted(JOINED)), st.integers(0, 50)))
def test_every_replica_is_placed_once_on_a_ready_target(total: int, ready: dict[str, bool],
                                                        capacity: dict[str, int]) -> None:
    clusters = {name: Cluster({}, ready[name]) for name in JOINED}
    found = decide(deployment(total), None, clusters, capacity=capacity)
    assert found.replicas is not None
    assert set(found.replicas) == {name for name in JOINED if ready[name]}
    assert sum(found.replicas.values()) + found.unplaced == total
    assert set(found.reasons) == set(JOINED)
