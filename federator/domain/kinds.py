"""Which resources federator propagates to members, and why not the others, so that nothing
stays in the plane unsaid. Pure: resources come from the plane's discovery, and a resource
is named as kubectl names it (`ingresses.networking.k8s.io`, `configmaps` for the core group).

Every resource the plane serves that can be listed, watched and written is federated, except
what belongs to the cluster it lives in by nature (CLUSTER_LOCAL: events, leases, endpoints,
pods, nodes, ...), federator's own API, and what the operator excludes in the settings
(`propagation.exclude`). Which single objects of a federated kind stay in the plane (system
namespaces, service-account tokens, ...) is `domain.propagation.propagated`'s to say."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from federator.domain.naming import FEDERATION_NAMESPACE

Resource = tuple[str, str]  # (API group, "" for the core group; plural)
FEDERATOR_GROUP = "federator.io"
# What federator needs to do with a kind to federate it.
NEEDED_VERBS = frozenset({"get", "list", "watch", "create", "patch", "delete"})


def group_of(api_version: str) -> str:
    """`apps/v1` -> `apps`, `v1` -> `` (the core group)."""
    return api_version.rpartition("/")[0]


def group_kind(api_version: str, kind: str) -> str:
    """A kind with its group, unique across groups: `Deployment.apps`, `ConfigMap`."""
    group = group_of(api_version)
    return f"{kind}.{group}" if group else kind


def resource_name(group: str, plural: str) -> str:
    """`ingresses.networking.k8s.io`, `configmaps`: as kubectl and the settings name it."""
    return f"{plural}.{group}" if group else plural


@dataclass(frozen=True)
class APIResource:
    """One resource as discovery describes it, at the version federator uses."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: frozenset[str] = NEEDED_VERBS

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def name(self) -> str:
        return resource_name(self.group, self.plural)

    @property
    def group_kind(self) -> str:
        return group_kind(self.api_version, self.kind)


_OWN_COPY = "each member has its own, made by its own controllers"
_EVENTS = "events belong to the cluster they happen in (members' events are copied into the plane)"
CLUSTER_LOCAL: dict[Resource, str] = {
    ("", "events"): _EVENTS,
    ("events.k8s.io", "events"): _EVENTS,
    ("coordination.k8s.io", "leases"): "leases coordinate processes of one cluster",
    ("", "endpoints"): f"endpoints of a Service: {_OWN_COPY}",
    ("discovery.k8s.io", "endpointslices"): f"endpoints of a Service: {_OWN_COPY}",
    ("", "pods"): f"pods run where their workload is placed: {_OWN_COPY}",
    ("", "nodes"): "nodes are the machines of one cluster",
    ("", "componentstatuses"): "component statuses describe one cluster's components",
    ("apps", "controllerrevisions"): f"revisions of a workload: {_OWN_COPY}",
    ("certificates.k8s.io", "certificatesigningrequests"):
        "a certificate request is signed by one cluster's signer",
    ("apiregistration.k8s.io", "apiservices"):
        "an APIService points at a server of one cluster",
    ("", "persistentvolumes"): "a persistent volume is storage of one cluster",
    ("storage.k8s.io", "volumeattachments"): "a volume attachment is one node's",
    ("storage.k8s.io", "csinodes"): "a CSINode describes one node's drivers",
    ("storage.k8s.io", "csistoragecapacities"):
        "storage capacity is reported by one cluster's drivers",
    ("networking.k8s.io", "ipaddresses"): "IP addresses are allocated by each cluster",
    ("networking.k8s.io", "servicecidrs"): "service ranges are each cluster's network",
    ("flowcontrol.apiserver.k8s.io", "flowschemas"):
        "API priority and fairness tunes one cluster's apiserver",
    ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"):
        "API priority and fairness tunes one cluster's apiserver",
    ("internal.apiserver.k8s.io", "storageversions"): "storage versions are one apiserver's",
    ("resource.k8s.io", "resourceslices"): "resource slices describe one cluster's devices",
}
# Resources a write to creates nothing stored (reviews, a pod's binding): nothing to say.
NOT_STORED = frozenset({
    ("authentication.k8s.io", "tokenreviews"), ("authentication.k8s.io", "selfsubjectreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "localsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"), ("", "bindings")})
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def bad_exclusion(name: str) -> str | None:
    """Why a name in `propagation.exclude` cannot name a resource, or None."""
    if not _NAME.match(name) or len(name) > 253:
        return (f"{name!r} is not a resource name: write it as kubectl does, plural and "
                "group, e.g. networkpolicies.networking.k8s.io or configmaps")
    return None


def excluded(group: str, plural: str, exclude: Collection[str] = ()) -> str | None:
    """Why every object of a resource stays in the plane, or None if it is federated."""
    if group == FEDERATOR_GROUP:
        return "federator's own API configures the federation itself"
    if (group, plural) in CLUSTER_LOCAL:
        return CLUSTER_LOCAL[(group, plural)]
    if resource_name(group, plural) in exclude:
        return (f"{resource_name(group, plural)} is excluded by the settings "
                "(propagation.exclude)")
    return None


def _order(resource: APIResource) -> tuple[int, str]:
    """Namespaces first (what is in them needs them), then CustomResourceDefinitions (their
    custom resources need them), then the rest by name."""
    first = {("", "namespaces"): 0, ("apiextensions.k8s.io", "customresourcedefinitions"): 1}
    return first.get((resource.group, resource.plural), 2), resource.name


def federated(resources: Iterable[APIResource], exclude: Collection[str] = ()
              ) -> list[APIResource]:
    """The resources federator propagates, of those the plane serves (one entry per group
    and plural, at the version discovery prefers; the first given wins), in the order a
    member needs them. Subresources and what cannot be listed, watched and written are left
    out, and so is what `excluded` names."""
    chosen: dict[Resource, APIResource] = {}
    for resource in resources:
        if "/" in resource.plural or not resource.verbs >= NEEDED_VERBS:
            continue
        if excluded(resource.group, resource.plural, exclude) is None:
            chosen.setdefault((resource.group, resource.plural), resource)
    return sorted(chosen.values(), key=_order)


_SEGMENT = r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?"
_PATH = re.compile(
    rf"^/(?:api/v1|apis/(?P<group>{_SEGMENT})/{_SEGMENT})"
    rf"(?:/namespaces/(?P<namespace>{_SEGMENT}))?/(?P<plural>{_SEGMENT})"
    rf"(?:/(?P<name>{_SEGMENT}))?(?P<subresource>/.*)?$")
_WRITES = frozenset({"POST", "PUT", "PATCH"})


def local_namespace(name: str) -> bool:
    """A namespace every cluster has its own of, whose objects stay where they are."""
    return name.startswith("kube-") or name == FEDERATION_NAMESPACE


def not_propagated(method: str, path: str, exclude: Collection[str] = ()) -> str | None:
    """Why a write to the plane at `path` stays in the plane: None when what it writes is
    propagated, or when it writes no object of its own (a read, a subresource, a review,
    federator's own configuration, a path that names no resource)."""
    found = _PATH.match(path)
    if method not in _WRITES or found is None or found["subresource"]:
        return None
    group, plural = found["group"] or "", found["plural"]
    namespace, name = found["namespace"], found["name"]
    if group == "" and namespace and plural in ("status", "finalize") and name is None:
        return None  # /api/v1/namespaces/<name>/status: a namespace's subresource
    if group == FEDERATOR_GROUP or (group, plural) in NOT_STORED:
        return None  # Clusters and FederationPolicies configure the federation itself
    stays = "stored in the federation, not propagated: "
    why = excluded(group, plural, exclude)
    if why is not None:
        return stays + why
    if namespace is not None and local_namespace(namespace):
        return f"{stays}namespace {namespace} is each cluster's own"
    if (group, plural) == ("", "namespaces") and name is not None and (
            local_namespace(name) or name == "default"):
        return f"{stays}namespace {name} is each cluster's own"
    if (group, plural, name) == ("", "configmaps", "kube-root-ca.crt"):
        return f"{stays}kube-root-ca.crt is each cluster's own"
    return None
