"""Which writes to the plane stay there, and the reason the gateway gives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federator.domain.kinds import (
    CLUSTER_LOCAL,
    NEEDED_VERBS,
    APIResource,
    bad_exclusion,
    federated,
    group_kind,
    not_propagated,
)

ALL = frozenset({*NEEDED_VERBS, "update", "deletecollection"})


def _resource(group: str, plural: str, kind: str, *, version: str = "v1",
              namespaced: bool = True, verbs: frozenset[str] = ALL) -> APIResource:
    return APIResource(group, version, plural, kind, namespaced, verbs)


# A slice of what a 1.33 apiserver's discovery says.
SERVED = [
    _resource("", "pods", "Pod"), _resource("", "pods/log", "Pod"),
    _resource("", "configmaps", "ConfigMap"), _resource("", "events", "Event"),
    _resource("", "namespaces", "Namespace", namespaced=False),
    _resource("", "bindings", "Binding", verbs=frozenset({"create"})),
    _resource("", "componentstatuses", "ComponentStatus", verbs=frozenset({"get", "list"})),
    _resource("apps", "deployments", "Deployment"),
    _resource("apps", "deployments/scale", "Scale"),
    _resource("apps", "controllerrevisions", "ControllerRevision"),
    _resource("networking.k8s.io", "ingresses", "Ingress"),
    _resource("networking.k8s.io", "networkpolicies", "NetworkPolicy"),
    _resource("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview",
              namespaced=False, verbs=frozenset({"create"})),
    _resource("apiextensions.k8s.io", "customresourcedefinitions", "CustomResourceDefinition",
              namespaced=False),
    _resource("federator.io", "clusters", "Cluster", version="v1alpha1", namespaced=False),
    _resource("stable.example.com", "crontabs", "CronTab"),
    _resource("stable.example.com", "crontabs", "CronTab", version="v1beta1"),
]


def test_every_writable_kind_but_the_cluster_local_ones_is_federated() -> None:
    names = [r.name for r in federated(SERVED)]
    assert names == ["namespaces", "customresourcedefinitions.apiextensions.k8s.io",
                     "configmaps", "crontabs.stable.example.com", "deployments.apps",
                     "ingresses.networking.k8s.io", "networkpolicies.networking.k8s.io"]
    # The version discovery gives first (the group's preferred one) is the one used.
    assert [r.version for r in federated(SERVED) if r.plural == "crontabs"] == ["v1"]


def test_the_settings_exclude_more() -> None:
    names = [r.name for r in federated(SERVED, ["networkpolicies.networking.k8s.io",
                                                "configmaps"])]
    assert "networkpolicies.networking.k8s.io" not in names and "configmaps" not in names
    assert "ingresses.networking.k8s.io" in names


# What belongs to one cluster by nature and must never be federated (written out here, not
# read from the module under test): what a cluster's own controllers, nodes and apiserver
# make or keep for themselves.
LOCAL_BY_NATURE = {
    ("", "pods"), ("", "nodes"), ("", "events"), ("events.k8s.io", "events"),
    ("", "endpoints"), ("discovery.k8s.io", "endpointslices"), ("", "componentstatuses"),
    ("", "persistentvolumes"), ("apps", "controllerrevisions"),
    ("coordination.k8s.io", "leases"), ("apiregistration.k8s.io", "apiservices"),
    ("certificates.k8s.io", "certificatesigningrequests"),
    ("flowcontrol.apiserver.k8s.io", "flowschemas"),
    ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"),
    ("internal.apiserver.k8s.io", "storageversions"), ("networking.k8s.io", "ipaddresses"),
    ("networking.k8s.io", "servicecidrs"), ("resource.k8s.io", "resourceslices"),
    ("storage.k8s.io", "csinodes"), ("storage.k8s.io", "csistoragecapacities"),
    ("storage.k8s.io", "volumeattachments"),
}


def test_every_kind_local_by_nature_is_excluded() -> None:
    assert set(CLUSTER_LOCAL) >= LOCAL_BY_NATURE


@given(st.lists(st.sampled_from(SERVED)), st.sets(st.sampled_from(
    [r.name for r in SERVED])))
def test_what_is_federated_is_writable_and_neither_local_nor_excluded(
        served: list[APIResource], exclude: set[str]) -> None:
    chosen = federated(served, exclude)
    assert len({(r.group, r.plural) for r in chosen}) == len(chosen)
    for resource in chosen:
        assert resource in served and resource.verbs >= NEEDED_VERBS
        assert "/" not in resource.plural and resource.name not in exclude
        assert (resource.group, resource.plural) not in LOCAL_BY_NATURE
        assert resource.group != "federator.io"
    # Namespaces and definitions come before what needs them.
    order = [r.plural for r in chosen]
    for first in ("namespaces", "customresourcedefinitions"):
        if first in order:
            assert all(order.index(first) <= order.index(r) for r in order
                       if r not in ("namespaces", "customresourcedefinitions"))


def test_group_kinds() -> None:
    assert group_kind("apps/v1", "Deployment") == "Deployment.apps"
    assert group_kind("v1", "ConfigMap") == "ConfigMap"
    assert _resource("networking.k8s.io", "ingresses", "Ingress").group_kind == \
        "Ingress.networking.k8s.io"


@pytest.mark.parametrize("name", ["configmaps", "networkpolicies.networking.k8s.io",
                                  "crontabs.stable.example.com"])
def test_exclusions_that_name_a_resource(name: str) -> None:
    assert bad_exclusion(name) is None


@pytest.mark.parametrize("name", ["ConfigMap", "", "networkpolicies/status", "a..b", "x y"])
def test_exclusions_that_cannot_name_a_resource(name: str) -> None:
    problem = bad_exclusion(name)
    assert problem is not None and "plural and group" in problem


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/v1/namespaces/shop/configmaps"),
    ("PUT", "/api/v1/namespaces/shop/configmaps/web"),
    ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web"),
    ("PATCH", "/api/v1/namespaces/default/services/web"),
    ("POST", "/api/v1/namespaces"),
    ("PUT", "/api/v1/namespaces/shop"),
    ("POST", "/apis/apps/v1/namespaces/shop/statefulsets"),
    ("GET", "/apis/batch/v1/namespaces/shop/jobs"),  # a read
    ("DELETE", "/apis/batch/v1/namespaces/shop/jobs/db"),
    ("PATCH", "/apis/batch/v1/namespaces/shop/jobs/db/status"),  # a subresource
    ("PUT", "/api/v1/namespaces/shop/finalize"),
    ("POST", "/apis/federator.io/v1alpha1/namespaces/shop/federationpolicies"),
    ("POST", "/version"), ("POST", "/apis/authorization.k8s.io"),
    ("POST", "/apis/batch/v1/namespaces/shop/cronjobs"),  # every kind is propagated
    ("POST", "/api/v1/namespaces/shop/serviceaccounts"),
    ("PATCH", "/apis/stable.example.com/v1/namespaces/shop/crontabs/x"),
    ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews"),  # stores nothing
])
def test_what_passes_without_a_word(method: str, path: str) -> None:
    assert not_propagated(method, path) is None


@pytest.mark.parametrize(("method", "path", "said"), [
    ("POST", "/apis/apps/v1/namespaces/shop/controllerrevisions", "revisions of a workload"),
    ("POST", "/apis/storage.k8s.io/v1/csinodes", "one node's drivers"),
    ("POST", "/api/v1/namespaces/shop/events", "events belong to the cluster"),
    ("POST", "/apis/coordination.k8s.io/v1/namespaces/shop/leases", "leases coordinate"),
    ("POST", "/api/v1/nodes", "nodes are the machines of one cluster"),
    ("POST", "/api/v1/namespaces/kube-system/configmaps", "namespace kube-system is each"),
    ("PUT", "/api/v1/namespaces/federation-system/secrets/x",
     "namespace federation-system is each"),
    ("PUT", "/api/v1/namespaces/default", "namespace default is each cluster's own"),
    ("PUT", "/api/v1/namespaces/shop/configmaps/kube-root-ca.crt",
     "kube-root-ca.crt is each cluster's own"),
])
def test_what_stays_in_the_plane_says_why(method: str, path: str, said: str) -> None:
    reason = not_propagated(method, path)
    assert reason is not None
    assert reason.startswith("stored in the federation, not propagated: ")
    assert said in reason


@given(st.sampled_from(["POST", "PUT", "PATCH"]), st.text(max_size=80))
def test_a_reason_never_carries_what_would_break_a_warning_header(method: str,
                                                                  tail: str) -> None:
    """The reason goes into a Warning header's quoted text: whatever the path holds, it has
    no quote, backslash or control character."""
    reason = not_propagated(method, "/apis/" + tail)
    assert reason is None or all(c not in reason for c in '"\\\r\n\t')


def test_an_excluded_kind_says_so() -> None:
    reason = not_propagated("POST", "/apis/networking.k8s.io/v1/namespaces/a/networkpolicies",
                            ["networkpolicies.networking.k8s.io"])
    assert reason == ("stored in the federation, not propagated: "
                      "networkpolicies.networking.k8s.io is excluded by the settings "
                      "(propagation.exclude)")
