"""Where a kind keeps its replica count, so that it can be spread over clusters: `spec.replicas`
of Deployments, ReplicaSets and StatefulSets; a Job's `spec.parallelism` (its `completions`
split in the same proportions); and for a custom resource, the paths its definition's `scale`
subresource declares (`specReplicasPath`, `statusReplicasPath`). Pure."""

from __future__ import annotations

import copy as copying
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from federator.domain.spreading import ClusterPreference, spread

Object = dict[str, Any]
JOB = "Job.batch"
_BUILT_IN = {"Deployment.apps", "ReplicaSet.apps", "StatefulSet.apps"}
# A scale subresource's path: a dot, then field names separated by dots (no list indexes,
# as the apiextensions validation of specReplicasPath allows).
_PATH = re.compile(r"^(\.[A-Za-z0-9_-]+)+$")


@dataclass(frozen=True)
class ReplicaField:
    """Where the count is: a path of field names in the object, its status's, and what an
    absent count means."""

    spec: tuple[str, ...]
    status: tuple[str, ...] | None
    default: int = 1


SPEC_REPLICAS = ReplicaField(("spec", "replicas"), ("status", "replicas"))
JOB_PARALLELISM = ReplicaField(("spec", "parallelism"), ("status", "active"))


def parse(path: Any) -> tuple[str, ...] | None:
    """`.spec.replicas` -> ("spec", "replicas"); None for what is not such a path."""
    if not isinstance(path, str) or not _PATH.match(path):
        return None
    return tuple(path[1:].split("."))


def scale_of(definition: Mapping[str, Any], version: str) -> Mapping[str, Any] | None:
    """The scale subresource a CustomResourceDefinition declares for one of its versions."""
    for entry in (definition.get("spec") or {}).get("versions") or []:
        if isinstance(entry, Mapping) and entry.get("name") == version:
            scale = (entry.get("subresources") or {}).get("scale")
            return scale if isinstance(scale, Mapping) else None
    return None


def has_status(definition: Mapping[str, Any], version: str) -> bool:
    """Whether a CustomResourceDefinition gives a version a status subresource."""
    for entry in (definition.get("spec") or {}).get("versions") or []:
        if isinstance(entry, Mapping) and entry.get("name") == version:
            return "status" in (entry.get("subresources") or {})
    return False


def field_of(group_kind: str, scale: Mapping[str, Any] | None = None) -> ReplicaField | None:
    """Where a kind's replicas are, or None when it has none to spread. `scale`: the scale
    subresource its definition declares, for a custom resource."""
    if group_kind in _BUILT_IN:
        return SPEC_REPLICAS
    if group_kind == JOB:
        return JOB_PARALLELISM
    if scale is None:
        return None
    spec = parse(scale.get("specReplicasPath"))
    if spec is None or spec[0] != "spec":
        return None
    return ReplicaField(spec, parse(scale.get("statusReplicasPath")), default=0)


def read(obj: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = obj
    for name in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(name)
    return node


def count(obj: Mapping[str, Any], field: ReplicaField) -> int:
    """The count an object asks for (its default when absent or not a whole number)."""
    value = read(obj, field.spec)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return field.default


def written(obj: Object, path: tuple[str, ...], value: Any) -> Object:
    """A copy of `obj` with `value` at `path` (maps made on the way)."""
    result = copying.copy(obj)
    node = result
    for name in path[:-1]:
        child = node.get(name)
        node[name] = child = dict(child) if isinstance(child, Mapping) else {}
        node = child
    node[path[-1]] = value
    return result


def completions(total: int | None, parallelism: Mapping[str, int]) -> dict[str, int] | None:
    """A Job's completions split in the proportions of its parallelism: every completion
    goes to a cluster that runs pods of it (a cluster without any gets 0, and so is
    complete at once). None when the Job sets no completions."""
    if total is None:
        return None
    running = {cluster: n for cluster, n in parallelism.items() if n > 0}
    if not running:
        return dict.fromkeys(parallelism, 0)
    plan = spread(total, {c: ClusterPreference(weight=n) for c, n in running.items()})
    return {cluster: plan.replicas.get(cluster, 0) for cluster in parallelism}
