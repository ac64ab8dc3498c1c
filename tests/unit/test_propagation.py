from __future__ import annotations

from typing import Any

import pytest

from federator.domain import propagation
from federator.domain.propagation import PlacementError, member_copy, placement, propagated

CLUSTERS = {"a": {"env": "prod", "region": "eu"}, "b": {"env": "dev"}, "c": {}}


def obj(kind: str = "ConfigMap", **annotations: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "metadata": {
        "name": "x", "namespace": "default", "uid": "u-1", "resourceVersion": "7",
        "generation": 3, "managedFields": [{}], "finalizers": ["federator.io/propagation"],
        "annotations": dict(annotations)}, "data": {"k": "v"}, "status": {"x": 1}}


def test_member_copy_strips_what_the_server_owns() -> None:
    copy = member_copy(obj(**{"kubectl.kubernetes.io/last-applied-configuration": "{}",
                               propagation.CLUSTER_STATUS: "{}"}), federation="fed")
    meta = copy["metadata"]
    assert set(meta) == {"name", "namespace", "labels", "annotations"}
    assert meta["labels"] == {"federator.io/managed-by": "fed"}
    assert meta["annotations"] == {"federator.io/plane-uid": "u-1"}
    assert "status" not in copy and copy["data"] == {"k": "v"}


def test_service_copy_lets_the_member_allocate_addresses() -> None:
    service: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
               "spec": {"clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"], "type": "NodePort",
                        "ports": [{"port": 80, "nodePort": 30001}]}}
    spec = member_copy(service, federation="f")["spec"]
    assert spec == {"type": "NodePort", "ports": [{"port": 80}]}
    assert service["spec"]["clusterIP"] == "10.96.0.9"  # the plane object is not changed


def test_workload_copy_carries_replicas_and_the_spec_it_is_of() -> None:
    deployment: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "d", "generation": 4}, "spec": {"replicas": 9}}
    copy = member_copy(deployment, federation="f", replicas=2)
    assert copy["spec"]["replicas"] == 2
    # sha256 of the spec as compact, sorted JSON ({"replicas":9}), its first 16 hex digits
    assert copy["metadata"]["annotations"][propagation.SPEC_HASH] == "3e381b4d39d8b817"
    deployment["metadata"]["generation"] = 5
    assert member_copy(deployment, federation="f", replicas=2) == copy


def test_what_is_not_propagated() -> None:
    token = {"kind": "Secret", "type": "kubernetes.io/service-account-token",
             "metadata": {"name": "t", "namespace": "a"}}
    assert not propagated(token)
    assert not propagated({**token, "type": "helm.sh/release.v1"})  # Helm's release records
    assert propagated({**token, "type": "Opaque"})
    assert not propagated({"kind": "Namespace", "metadata": {"name": "kube-system"}})
    assert not propagated({"kind": "Namespace", "metadata": {"name": "default"}})
    assert not propagated({"kind": "ConfigMap", "metadata": {"name": "c",
                                                             "namespace": "kube-public"}})
    assert not propagated({"kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt",
                                                             "namespace": "a"}})
    assert propagated({"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}})
    assert propagated({"kind": "Namespace", "metadata": {"name": "shop"}})


def test_placement_by_list_selector_or_all() -> None:
    assert placement(obj(), CLUSTERS) == ["a", "b", "c"]
    assert placement(obj(**{"federator.io/clusters": "b, a"}), CLUSTERS) == ["a", "b"]
    assert placement(obj(**{"federator.io/cluster-selector": "env=prod"}), CLUSTERS) == ["a"]
    assert placement(obj(**{"federator.io/cluster-selector": "env in (prod,dev),!region"}),
                     CLUSTERS) == ["b"]
    assert placement(obj(**{"federator.io/cluster-selector": "env notin (prod)"}),
                     CLUSTERS) == ["b", "c"]


def test_placement_errors_name_the_problem() -> None:
    with pytest.raises(PlacementError, match="not joined: zz"):
        placement(obj(**{"federator.io/clusters": "a,zz"}), CLUSTERS)
    with pytest.raises(PlacementError, match="cannot read"):
        placement(obj(**{"federator.io/cluster-selector": "env=(prod"}), CLUSTERS)
