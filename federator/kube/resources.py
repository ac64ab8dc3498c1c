"""Where objects live: the REST path of a resource and of an object of a known kind."""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import quote


class Resource(NamedTuple):
    group: str
    version: str
    plural: str
    namespaced: bool


# The kinds federator writes through typed paths (objects of other kinds are not written).
KINDS: dict[tuple[str, str], Resource] = {
    ("v1", "Namespace"): Resource("", "v1", "namespaces", False),
    ("v1", "ServiceAccount"): Resource("", "v1", "serviceaccounts", True),
    ("v1", "Secret"): Resource("", "v1", "secrets", True),
    ("v1", "ConfigMap"): Resource("", "v1", "configmaps", True),
    ("v1", "Service"): Resource("", "v1", "services", True),
    ("v1", "Event"): Resource("", "v1", "events", True),
    ("v1", "Node"): Resource("", "v1", "nodes", False),
    ("v1", "Pod"): Resource("", "v1", "pods", True),
    ("apps/v1", "Deployment"): Resource("apps", "v1", "deployments", True),
    ("apps/v1", "ReplicaSet"): Resource("apps", "v1", "replicasets", True),
    ("apps/v1", "StatefulSet"): Resource("apps", "v1", "statefulsets", True),
    ("apps/v1", "DaemonSet"): Resource("apps", "v1", "daemonsets", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"):
        Resource("rbac.authorization.k8s.io", "v1", "clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"):
        Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", False),
    ("rbac.authorization.k8s.io/v1", "Role"):
        Resource("rbac.authorization.k8s.io", "v1", "roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"):
        Resource("rbac.authorization.k8s.io", "v1", "rolebindings", True),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"):
        Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", False),
    ("coordination.k8s.io/v1", "Lease"): Resource("coordination.k8s.io", "v1", "leases", True),
    ("federator.io/v1alpha1", "Cluster"): Resource("federator.io", "v1alpha1", "clusters", False),
    ("federator.io/v1alpha1", "FederationPolicy"):
        Resource("federator.io", "v1alpha1", "federationpolicies", True),
}

CLUSTERS = KINDS[("federator.io/v1alpha1", "Cluster")]
SECRETS = KINDS[("v1", "Secret")]
NODES = KINDS[("v1", "Node")]
EVENTS = KINDS[("v1", "Event")]
LEASES = KINDS[("coordination.k8s.io/v1", "Lease")]
CONFIGMAPS = KINDS[("v1", "ConfigMap")]


def path(resource: Resource, *, namespace: str | None = None, name: str | None = None,
         subresource: str | None = None) -> str:
    """The REST path of a collection (no name) or of one object, e.g. /api/v1/namespaces/a/pods."""
    base = (f"/api/{resource.version}" if resource.group == ""
            else f"/apis/{resource.group}/{resource.version}")
    if resource.namespaced and namespace is not None:
        base += f"/namespaces/{quote(namespace, safe='')}"
    base += f"/{resource.plural}"
    if name is not None:
        base += f"/{quote(name, safe='')}"
    if subresource is not None:
        base += f"/{subresource}"
    return base


def resource_of(obj: dict[str, Any]) -> Resource:
    key = (str(obj.get("apiVersion")), str(obj.get("kind")))
    if key not in KINDS:
        raise ValueError(f"federator does not handle {key[1]} of {key[0]}")
    return KINDS[key]


def object_path(obj: dict[str, Any]) -> str:
    """The REST path of an object from its apiVersion, kind, namespace and name."""
    meta = obj.get("metadata") or {}
    return path(resource_of(obj), namespace=meta.get("namespace"), name=meta["name"])
