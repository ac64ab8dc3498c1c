"""Which writes to the plane stay there, and the reason the gateway gives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federator.domain.kinds import CLUSTER_LOCAL, PROPAGATED, not_propagated
from federator.domain.propagation import FEDERATED
from federator.kube.resources import KINDS


def test_propagated_are_the_federated_kinds() -> None:
    assert {(KINDS[kind].group, KINDS[kind].plural) for kind in FEDERATED} == PROPAGATED
    assert not PROPAGATED & set(CLUSTER_LOCAL)


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
])
def test_what_passes_without_a_word(method: str, path: str) -> None:
    assert not_propagated(method, path) is None


@pytest.mark.parametrize(("method", "path", "said"), [
    ("POST", "/apis/batch/v1/namespaces/shop/cronjobs",
     "federator does not propagate cronjobs.batch yet"),
    ("PUT", "/apis/batch/v1/namespaces/shop/jobs/nightly",
     "federator does not propagate jobs.batch yet"),
    ("POST", "/api/v1/namespaces/shop/serviceaccounts",
     "federator does not propagate serviceaccounts yet"),
    ("PATCH", "/apis/stable.example.com/v1/namespaces/shop/crontabs/x",
     "federator does not propagate crontabs.stable.example.com yet"),
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
