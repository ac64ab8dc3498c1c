"""Kubernetes Event objects that federator writes about the objects it handles."""

from __future__ import annotations

from typing import Any, Literal

EventType = Literal["Normal", "Warning"]
COMPONENT = "federator"


def event(obj: dict[str, Any], type_: EventType, reason: str, message: str, *, now: str,
          instance: str) -> dict[str, Any]:
    """A core/v1 Event about `obj`. Cluster-scoped objects' events live in `default`, where
    kubectl describe looks for them."""
    meta = obj["metadata"]
    namespace = meta.get("namespace") or "default"
    involved = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"],
                "uid": meta.get("uid", ""), "resourceVersion": meta.get("resourceVersion", "")}
    if meta.get("namespace"):
        involved["namespace"] = meta["namespace"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
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
