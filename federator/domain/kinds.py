"""Which resources written to the plane federator propagates to members, and why not the
others, so that nothing stays in the plane unsaid. Pure: a resource is named as its REST
path names it (API group and plural).

Some resources belong to the cluster they live in by nature (CLUSTER_LOCAL: events, leases,
endpoints, pods, nodes, ...): they are never propagated. Of the rest, federator propagates the
kinds in `PROPAGATED` today (the kinds of `domain.propagation.FEDERATED`); every other
resource is kept in the plane only, and a write through the gateway says so."""

from __future__ import annotations

import re

from federator.domain.naming import FEDERATION_NAMESPACE

Resource = tuple[str, str]  # (API group, "" for the core group; plural)

PROPAGATED: frozenset[Resource] = frozenset({
    ("", "namespaces"), ("", "configmaps"), ("", "secrets"), ("", "services"),
    ("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets"),
    ("apps", "daemonsets")})

_OWN_COPY = "each member has its own, made by its own controllers"
CLUSTER_LOCAL: dict[Resource, str] = {
    ("", "events"): "events belong to the cluster they happen in (members' events are "
                    "copied into the plane)",
    ("events.k8s.io", "events"): "events belong to the cluster they happen in (members' "
                                 "events are copied into the plane)",
    ("coordination.k8s.io", "leases"): "leases coordinate processes of one cluster",
    ("", "endpoints"): f"endpoints of a Service: {_OWN_COPY}",
    ("discovery.k8s.io", "endpointslices"): f"endpoints of a Service: {_OWN_COPY}",
    ("", "pods"): f"pods run where their workload is placed: {_OWN_COPY}",
    ("", "nodes"): "nodes are the machines of one cluster",
    ("apps", "controllerrevisions"): f"revisions of a workload: {_OWN_COPY}",
    ("certificates.k8s.io", "certificatesigningrequests"):
        "a certificate request is signed by one cluster's signer",
    ("apiregistration.k8s.io", "apiservices"):
        "an APIService points at a server of one cluster",
    ("", "persistentvolumes"): "a persistent volume is storage of one cluster",
}
_SEGMENT = r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?"
_PATH = re.compile(
    rf"^/(?:api/v1|apis/(?P<group>{_SEGMENT})/{_SEGMENT})"
    rf"(?:/namespaces/(?P<namespace>{_SEGMENT}))?/(?P<plural>{_SEGMENT})"
    rf"(?:/(?P<name>{_SEGMENT}))?(?P<subresource>/.*)?$")
_WRITES = frozenset({"POST", "PUT", "PATCH"})


def _local_namespace(name: str) -> bool:
    return name.startswith("kube-") or name == FEDERATION_NAMESPACE


def not_propagated(method: str, path: str) -> str | None:
    """Why a write to the plane at `path` stays in the plane: None when what it writes is
    propagated, or when it writes no object of its own (a read, a subresource, federator's
    own configuration, a path that names no resource)."""
    found = _PATH.match(path)
    if method not in _WRITES or found is None or found["subresource"]:
        return None
    group, plural = found["group"] or "", found["plural"]
    namespace, name = found["namespace"], found["name"]
    if group == "" and namespace and plural in ("status", "finalize") and name is None:
        return None  # /api/v1/namespaces/<name>/status: a namespace's subresource
    if group == "federator.io":
        return None  # Clusters and FederationPolicies configure the federation itself
    where = f"{plural}.{group}" if group else plural
    if (group, plural) in CLUSTER_LOCAL:
        return f"stored in the federation, not propagated: {CLUSTER_LOCAL[(group, plural)]}"
    if (group, plural) not in PROPAGATED:
        return (f"stored in the federation, not propagated: federator does not propagate "
                f"{where} yet (it propagates namespaces, configmaps, secrets, services, "
                f"deployments, replicasets, statefulsets and daemonsets)")
    if namespace is not None and _local_namespace(namespace):
        return (f"stored in the federation, not propagated: namespace {namespace} is each "
                f"cluster's own")
    if (group, plural) == ("", "namespaces") and name is not None and (
            _local_namespace(name) or name == "default"):
        return f"stored in the federation, not propagated: namespace {name} is each cluster's own"
    if (group, plural, name) == ("", "configmaps", "kube-root-ca.crt"):
        return ("stored in the federation, not propagated: kube-root-ca.crt is each cluster's "
                "own")
    return None
