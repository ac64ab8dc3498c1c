"""What a plane object becomes in a member: which objects stay in the plane, which clusters
an object goes to, and the member copy itself (server-owned metadata and what the member owns
stripped, federator's label and annotations added, replicas set)."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from federator.domain.kinds import FEDERATOR_GROUP, group_kind
from federator.domain.naming import FEDERATION_NAMESPACE, MANAGED_BY, PLANE_UID
from federator.domain.owned import strip
from federator.domain.replicas import ReplicaField, field_of, written

# On member copies of workloads: which plane spec they carry. A hash, not the plane's
# generation, which a Deployment also bumps when only its annotations change.
SPEC_HASH = "federator.io/spec-hash"
CLUSTER_STATUS = "federator.io/cluster-status"  # on plane objects: the per-cluster breakdown
CLUSTERS_ANNOTATION = "federator.io/clusters"
CLUSTER_SELECTOR_ANNOTATION = "federator.io/cluster-selector"
ADOPT_ANNOTATION = "federator.io/adopt"
FINALIZER = "federator.io/propagation"
ORPHAN_FINALIZER = "orphan"

# Kinds (with their group) whose replicas are spread, and whose status is summed from the
# members' copies.
WORKLOADS = frozenset({"Deployment.apps", "ReplicaSet.apps", "StatefulSet.apps"})
STATUS_KINDS = WORKLOADS | {"DaemonSet.apps"}
# Objects that carry it stay in the plane: federator's own identity there, say.
LOCAL_LABEL = "federator.io/local"
_SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp",
                    "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields",
                    "finalizers", "ownerReferences", "selfLink", "generateName")
_DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",
                        "deployment.kubernetes.io/revision", CLUSTER_STATUS)


class PlacementError(ValueError):
    """An object's placement annotations cannot be used; the message says why."""


# Secrets that belong where they are: a cluster's service-account tokens, and the release
# records of Helm (a release installed through the federation is the federation's, not each
# member's: helm in a member would otherwise see releases it never installed there).
LOCAL_SECRET_TYPES = frozenset({"kubernetes.io/service-account-token", "helm.sh/release.v1",
                                "bootstrap.kubernetes.io/token"})
# What every cluster makes for itself: (kind with group, namespace or "", name).
_EACH_CLUSTERS = frozenset({("ConfigMap", "*", "kube-root-ca.crt"),
                            ("ServiceAccount", "*", "default"),
                            ("Service", "default", "kubernetes")})
_BOOTSTRAP = ("kubernetes.io/bootstrapping", "rbac-defaults")  # default roles of a cluster


def group_kind_of(obj: Mapping[str, Any]) -> str:
    return group_kind(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))


def propagated(obj: Mapping[str, Any]) -> bool:
    """Whether federator copies this object (of a federated kind) into members at all: not
    what every cluster has its own of (system namespaces and what is in them, default
    service accounts, default roles, system priority classes, service-account tokens),
    nor federator's own API and what is labelled `federator.io/local: "true"`."""
    kind = group_kind_of(obj)
    meta = obj.get("metadata") or {}
    name, namespace = str(meta.get("name", "")), meta.get("namespace")
    labels = meta.get("labels") or {}
    if labels.get(LOCAL_LABEL) == "true" or labels.get(_BOOTSTRAP[0]) == _BOOTSTRAP[1]:
        return False
    if kind == "Secret" and obj.get("type") in LOCAL_SECRET_TYPES:
        return False
    if kind == "Namespace":
        return _user_namespace(name)  # every cluster has its own system ones
    if namespace is not None and not _user_namespace(namespace) and namespace != "default":
        return False
    if {(kind, "*", name), (kind, namespace or "", name)} & _EACH_CLUSTERS:
        return False
    if namespace is None and name.startswith("system:"):
        return False  # reserved for the cluster's own roles and bindings
    if kind == "PriorityClass.scheduling.k8s.io" and name.startswith("system-"):
        return False
    spec = obj.get("spec") or {}
    return not (kind == "CustomResourceDefinition.apiextensions.k8s.io"
                and spec.get("group") == FEDERATOR_GROUP)


def _user_namespace(name: str) -> bool:
    return not (name.startswith("kube-") or name in ("default", FEDERATION_NAMESPACE))


_REQUIREMENT = re.compile(
    r"^\s*(?P<key>[\w./-]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[\w.-]*)|"
    r"\s+(?P<set>in|notin)\s*\((?P<values>[^)]*)\))?\s*$")


def _split_requirements(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current] if current.strip() else parts


def selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Whether `labels` match a label selector written as kubectl takes it
    (`a=b,c!=d,e in (x,y),f notin (z),g,!h`); PlacementError if it cannot be read."""
    for requirement in _split_requirements(selector):
        text = requirement.strip()
        if text.startswith("!"):
            if text[1:].strip() in labels:
                return False
            continue
        match = _REQUIREMENT.match(text)
        if not match:
            raise PlacementError(f"cannot read {text!r} of the cluster selector {selector!r}")
        key = match["key"]
        if match["op"] in ("=", "=="):
            ok = labels.get(key) == match["value"]
        elif match["op"] == "!=":
            ok = labels.get(key) != match["value"]
        elif match["set"]:
            values = {v.strip() for v in match["values"].split(",") if v.strip()}
            ok = (labels.get(key) in values) == (match["set"] == "in")
        else:
            ok = key in labels
        if not ok:
            return False
    return True


def placement(obj: Mapping[str, Any], clusters: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The joined clusters (name -> labels) an object goes to: the `federator.io/clusters`
    list, else those matching `federator.io/cluster-selector`, else all. PlacementError for
    a name that is not joined or a selector that cannot be read."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    listed = annotations.get(CLUSTERS_ANNOTATION)
    if listed is not None:
        names = [n.strip() for n in listed.split(",") if n.strip()]
        unknown = sorted(set(names) - set(clusters))
        if unknown:
            raise PlacementError(f"annotation {CLUSTERS_ANNOTATION} names clusters that are "
                                 f"not joined: {', '.join(unknown)}")
        return sorted(set(names))
    selector = annotations.get(CLUSTER_SELECTOR_ANNOTATION)
    if selector is not None:
        return sorted(n for n, labels in clusters.items() if selector_matches(selector, labels))
    return sorted(clusters)


def member_copy(obj: Mapping[str, Any], *, federation: str, replicas: int | None = None,
                field: ReplicaField | None = None,
                completions: int | None = None) -> dict[str, Any]:
    """The object federator applies to a member for this plane object: with `replicas` at
    its kind's replica field (`field`, for a custom resource), and a Job's `completions`."""
    kind = group_kind_of(obj)
    result = {k: copy.deepcopy(v) for k, v in obj.items() if k != "metadata"}
    meta = obj.get("metadata") or {}
    new_meta = {k: copy.deepcopy(v) for k, v in meta.items() if k not in _SERVER_METADATA}
    result["metadata"] = new_meta
    strip(kind, result)
    labels = dict(new_meta.get("labels") or {})
    labels[MANAGED_BY] = federation
    annotations = {k: v for k, v in (new_meta.get("annotations") or {}).items()
                   if k not in _DROPPED_ANNOTATIONS}
    annotations[PLANE_UID] = str(meta.get("uid", ""))
    if kind in STATUS_KINDS:
        annotations[SPEC_HASH] = spec_hash(obj)
    new_meta["labels"] = labels
    new_meta["annotations"] = annotations
    result["metadata"] = new_meta
    field = field or field_of(kind)
    if field is not None and replicas is not None:
        result = written(result, field.spec, replicas)
    if completions is not None:
        result = written(result, ("spec", "completions"), completions)
    return result


def spec_hash(obj: Mapping[str, Any]) -> str:
    """A short digest of an object's spec."""
    text = json.dumps(obj.get("spec") or {}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def managed_by(obj: Mapping[str, Any], federation: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(MANAGED_BY) == federation)
