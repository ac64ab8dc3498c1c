"""Kubernetes Event objects that federator writes about the objects it handles."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any, Literal

EventType = Literal["Normal", "Warning"]
COMPONENT = "federator"
CREATED = "CreatedInCluster"
# On an event about what was done in members: the clusters it names, comma-separated.
CLUSTERS = "federator.io/clusters"


def event(obj: dict[str, Any], type_: EventType, reason: str, message: str, *, now: str,
          instance: str, clusters: Iterable[str] = ()) -> dict[str, Any]:
    """A core/v1 Event about `obj`. Cluster-scoped objects' events live in `default`, where
    kubectl describe looks for them."""
    meta = obj["metadata"]
    namespace = meta.get("namespace") or "default"
    involved = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"],
                "uid": meta.get("uid", ""), "resourceVersion": meta.get("resourceVersion", "")}
    if meta.get("namespace"):
        involved["namespace"] = meta["namespace"]
    metadata: dict[str, Any] = {"generateName": f"{meta['name']}.", "namespace": namespace}
    named = ",".join(sorted(clusters))
    if named:
        metadata["annotations"] = {CLUSTERS: named}
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": metadata,
        "involvedObject": involved,
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def creations(events: Iterable[dict[str, Any]]) -> set[tuple[str, str]]:
    """(plane object's uid, cluster) for each copy that federator's CreatedInCluster events
    among `events` announced."""
    found: set[tuple[str, str]] = set()
    for item in events:
        if item.get("reason") != CREATED or item.get("reportingComponent") != COMPONENT:
            continue
        uid = (item.get("involvedObject") or {}).get("uid")
        named = ((item.get("metadata") or {}).get("annotations") or {}).get(CLUSTERS)
        if isinstance(uid, str) and uid and isinstance(named, str):
            found.update((uid, cluster) for cluster in named.split(",") if cluster)
    return found


def seconds(stamp: object) -> float | None:
    """An RFC 3339 timestamp as the apiserver writes it (`2026-12-07T13:50:06Z`), as POSIX
    seconds; None for anything else."""
    if not isinstance(stamp, str):
        return None
    try:
        when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.timestamp() if when.tzinfo is not None else None


def unannounced(uid: str, cluster: str, created: float | None, announced: set[tuple[str, str]],
                recalled_at: float | None, window: float) -> bool:
    """Whether a copy found right where no write of this process made it was created without
    its CreatedInCluster event (its writer stopped between the write and the event): made
    within `window` before the announcements were recalled (older events may have expired
    from the plane, their absence proves nothing) and not among them."""
    return (recalled_at is not None and created is not None
            and recalled_at - window <= created <= recalled_at
            and (uid, cluster) not in announced)
