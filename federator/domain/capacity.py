"""Overflow: replicas a member cannot run. Pods of a workload that stay Unschedulable longer
than a threshold mean the member is full; its capacity for that workload is what it runs."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Overflow:
    unschedulable: int  # pods unschedulable for longer than the threshold
    soonest: float | None  # seconds until the next pending one crosses it, if any


def _since(condition: Mapping[str, Any], now: datetime.datetime) -> float:
    stamp = condition.get("lastTransitionTime")
    if not stamp:
        return 0.0
    then = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return (now - then).total_seconds()


def overflow(pods: Iterable[Mapping[str, Any]], namespace: str,
             selector: Mapping[str, str], *, now: datetime.datetime,
             threshold: float) -> Overflow:
    """Count the pods of a workload (its namespace and selector's matchLabels) that the
    member's scheduler has found no room for, for longer than `threshold` seconds."""
    count = 0
    soonest: float | None = None
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        if meta.get("namespace") != namespace or meta.get("deletionTimestamp"):
            continue
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            continue
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if (condition.get("type") == "PodScheduled" and condition.get("status") == "False"
                    and condition.get("reason") == "Unschedulable"):
                waited = _since(condition, now)
                if waited >= threshold:
                    count += 1
                else:
                    left = threshold - waited
                    soonest = left if soonest is None else min(soonest, left)
    return Overflow(count, soonest)
