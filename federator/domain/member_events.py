"""Member events about propagated objects, as events of the plane objects they concern.

A member's Deployment copy, the ReplicaSets its controller makes and their Pods all report to
the plane Deployment; a propagated ReplicaSet and its Pods to the plane ReplicaSet. Repeats
(the same cluster, object, reason and message) become one plane event whose count is the sum
of the member events behind it, each remembered by uid so that a restart counts nothing twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from federator.domain.naming import CLUSTER_LABEL, MANAGED_BY, PLANE_UID

SOURCES_ANNOTATION = "federator.io/sources"  # {member event uid: its count}
MAX_SOURCES = 32  # member events remembered per plane event; older ones are folded into "_"
Meta = Mapping[str, Any]  # an object's metadata
Index = Mapping[tuple[str, str], Mapping[str, Any]]  # (namespace, name) -> {"metadata": …}


@dataclass(frozen=True)
class Target:
    """The plane object a member event is re-pointed at."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class Unknown:
    """The event names an object not seen yet (its watch lags the event's): ask again when an
    object of that kind, namespace and name shows up."""

    kind: str
    namespace: str
    name: str


def _managed(meta: Meta, federation: str) -> bool:
    return (meta.get("labels") or {}).get(MANAGED_BY) == federation


def _plane_uid(meta: Meta) -> str:
    return str((meta.get("annotations") or {}).get(PLANE_UID, ""))


def _of_replicaset(namespace: str, name: str, deployments: Index, replicasets: Index,
                   federation: str) -> Target | Unknown | None:
    found = replicasets.get((namespace, name))
    if found is None:
        return Unknown("ReplicaSet", namespace, name)
    meta = found["metadata"]
    if _managed(meta, federation):
        return Target("apps/v1", "ReplicaSet", namespace, name, _plane_uid(meta))
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") != "Deployment" or not owner.get("controller"):
            continue
        found = deployments.get((namespace, owner.get("name", "")))
        if found is None:
            return Unknown("Deployment", namespace, owner.get("name", ""))
        deployment = found["metadata"]
        if deployment.get("uid") == owner.get("uid") and _managed(deployment, federation):
            return Target("apps/v1", "Deployment", namespace, owner["name"],
                          _plane_uid(deployment))
    return None


def target(event: Mapping[str, Any], deployments: Index, replicasets: Index,
           federation: str) -> Target | Unknown | None:
    """Which plane object a member event concerns; None if none federator propagated.

    Pods are matched to their ReplicaSet by the name the ReplicaSet controller gives them
    (the ReplicaSet's name, a dash, five characters)."""
    involved = event.get("involvedObject") or event.get("regarding") or {}
    kind, namespace = involved.get("kind"), str(involved.get("namespace") or "")
    name = str(involved.get("name") or "")
    if not namespace or not name:
        return None
    if kind == "Deployment":
        found = deployments.get((namespace, name))
        if found is None:
            return Unknown("Deployment", namespace, name)
        meta = found["metadata"]
        if _managed(meta, federation) and meta.get("uid") == involved.get("uid", meta.get("uid")):
            return Target("apps/v1", "Deployment", namespace, name, _plane_uid(meta))
        return None
    if kind == "ReplicaSet":
        return _of_replicaset(namespace, name, deployments, replicasets, federation)
    if kind == "Pod":
        owner, dash, suffix = name.rpartition("-")
        if not dash or len(suffix) != 5:
            return None
        return _of_replicaset(namespace, owner, deployments, replicasets, federation)
    return None


def occurrence(event: Mapping[str, Any]) -> tuple[int, str, str]:
    """(count, first time, last time) of a member event, from either API's fields (events
    of events.k8s.io/v1, as the scheduler writes them, keep them in series and eventTime)."""
    series = event.get("series") or {}
    count = int(event.get("count") or series.get("count") or 1)
    created = str((event.get("metadata") or {}).get("creationTimestamp") or "")
    first = str(event.get("firstTimestamp") or event.get("eventTime") or created)
    last = str(event.get("lastTimestamp") or series.get("lastObservedTime")
               or event.get("eventTime") or first)
    return count, _seconds(first), _seconds(last)


def _seconds(timestamp: str) -> str:
    """RFC 3339 to whole seconds, as core/v1 timestamps are written (2026-01-02T03:04:05Z)."""
    if len(timestamp) > 20 and timestamp[19] in ".,":
        return timestamp[:19] + "Z"
    return timestamp


def _component(event: Mapping[str, Any]) -> str:
    source = event.get("source") or {}
    return str(source.get("component") or event.get("reportingComponent")
               or event.get("reportingController") or "unknown")


def message(cluster: str, event: Mapping[str, Any], to: Target) -> str:
    """The plane event's message: the cluster, the member object unless it is the target's
    own copy, and what the member said."""
    involved = event.get("involvedObject") or {}
    said = str(event.get("message") or event.get("note") or "").strip()
    if involved.get("kind") == to.kind and involved.get("name") == to.name:
        return f"[{cluster}] {said}"
    return f"[{cluster}] {involved.get('kind')} {involved.get('name')}: {said}"


def copy_name(cluster: str, event: Mapping[str, Any], to: Target) -> str:
    """The plane event's name: the same for every repeat (cluster, object, reason, message),
    so that repeats coalesce and a restarted federator finds what it wrote."""
    involved = event.get("involvedObject") or {}
    key = json.dumps([cluster, to.kind, to.uid, involved.get("kind"), involved.get("name"),
                      event.get("type"), event.get("reason"), message(cluster, event, to)])
    return f"{to.name}.{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def add_source(sources: Mapping[str, int], uid: str, count: int) -> dict[str, int]:
    """The member events behind a plane event, with `uid` now at `count` (counts never go
    down). Past MAX_SOURCES the least recently updated are folded into "_", keeping the
    total; should a folded one repeat again, its earlier count is counted twice."""
    merged = {k: v for k, v in sources.items() if k != uid}
    merged[uid] = max(count, sources.get(uid, 0))  # last: the most recently updated
    while len(merged) > MAX_SOURCES:
        oldest = next(k for k in merged if k != "_")
        merged["_"] = merged.get("_", 0) + merged.pop(oldest)
    return merged


def read_sources(plane_event: Mapping[str, Any]) -> dict[str, int]:
    """The member events a stored plane event counts (none if the annotation is unreadable)."""
    text = ((plane_event.get("metadata") or {}).get("annotations") or {}).get(SOURCES_ANNOTATION)
    try:
        parsed = json.loads(text) if text else {}
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {str(k): int(v) for k, v in parsed.items() if isinstance(v, int)}


def plane_event(cluster: str, event: Mapping[str, Any], to: Target, *,
                sources: Mapping[str, int], first: str, last: str,
                instance: str) -> dict[str, Any]:
    """The core/v1 Event the plane holds for one coalesced member event."""
    involved = {"apiVersion": to.api_version, "kind": to.kind, "namespace": to.namespace,
                "name": to.name, "uid": to.uid}
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": copy_name(cluster, event, to),
            "namespace": to.namespace,
            "labels": {CLUSTER_LABEL: cluster},
            "annotations": {SOURCES_ANNOTATION: json.dumps(sources, sort_keys=True)},
        },
        "involvedObject": involved,
        "type": event.get("type") or "Normal",
        "reason": str(event.get("reason") or "Unknown")[:128],
        "message": message(cluster, event, to)[:1024],
        # kubectl describe shows source as "From": the member's component, the cluster
        "source": {"component": _component(event), "host": cluster},
        "reportingComponent": "federator",
        "reportingInstance": instance[:128],
        "firstTimestamp": first,
        "lastTimestamp": last,
        "count": sum(sources.values()),
    }


class TokenBucket:
    """At most `rate` per second on average, `burst` at once. Time is passed in."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.at = now

    def _fill(self, now: float) -> None:
        self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate)
        self.at = now

    def take(self, now: float) -> float:
        """Take a token: 0 if one was there, else how long to wait before asking again."""
        self._fill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate
