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


@pytest.mark.parametrize("local", [
    {"apiVersion": "v1", "kind": "ServiceAccount",
     "metadata": {"name": "default", "namespace": "shop"}},
    {"apiVersion": "v1", "kind": "Service",
     "metadata": {"name": "kubernetes", "namespace": "default"}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
     "metadata": {"name": "view", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
     "metadata": {"name": "system:whatever"}},
    {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
     "metadata": {"name": "system-node-critical"}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
     "metadata": {"name": "federator", "labels": {"federator.io/local": "true"}}},
    {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
     "metadata": {"name": "clusters.federator.io"}, "spec": {"group": "federator.io"}},
    {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
     "metadata": {"name": "t", "namespace": "shop"}},
])
def test_what_every_cluster_has_its_own_of_stays(local: dict[str, Any]) -> None:
    assert not propagated(local)


@pytest.mark.parametrize("shared", [
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "shop", "namespace": "a"}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "namespace": "a"}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
     "metadata": {"name": "auditor"}},
    {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
     "metadata": {"name": "batch-low"}},
    {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
     "metadata": {"name": "crontabs.stable.example.com"}, "spec": {"group": "stable.example.com"}},
])
def test_what_users_make_goes(shared: dict[str, Any]) -> None:
    assert propagated(shared)


def test_a_kind_of_another_group_is_not_taken_for_a_workload() -> None:
    """Kinds are told apart by their group: a custom Deployment is copied whole."""
    custom = {"apiVersion": "example.com/v1", "kind": "Deployment",
              "metadata": {"name": "d", "uid": "u"}, "spec": {"replicas": 9}}
    copy = member_copy(custom, federation="f", replicas=2)
    assert copy["spec"] == {"replicas": 9}
    assert propagation.SPEC_HASH not in copy["metadata"]["annotations"]


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
