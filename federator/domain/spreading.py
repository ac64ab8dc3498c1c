"""How many replicas each cluster gets: a divisor method (Webster / Sainte-Lague) applied one
replica at a time, so the result is deterministic, exact where the limits allow, and house
monotone: raising the total never lowers any cluster's count.

Replicas are handed out one by one. First every cluster is brought up to its minReplicas, each
step going to the cluster with the largest `min / (count + 0.5)`; then each further replica
goes to the cluster with the largest `weight / (count + 0.5)` that is below its maximum (ties
to the cluster named first). Weights 2:1 with 2 replicas give 1 and 1. With `rebalance` off
the counts start from the current placement instead of zero, so no running replica moves: a
scale-up only adds, a scale-down takes from the most over-served clusters first.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterPreference:
    weight: int = 1
    min_replicas: int = 0
    max_replicas: int | None = None  # None: unbounded


@dataclass(frozen=True)
class Plan:
    """Replicas per cluster, and how many could be placed nowhere (every cluster full)."""

    replicas: dict[str, int]
    unplaced: int


def _limit(pref: ClusterPreference, capacity: int | None) -> int | None:
    limits = [x for x in (pref.max_replicas, capacity) if x is not None]
    return min(limits) if limits else None


def _cap(value: int, bound: int | None) -> int:
    return value if bound is None else min(value, bound)


def _has_room(count: int, bound: int | None) -> bool:
    return bound is None or count < bound


def _fill(counts: dict[str, int], seats: int, weight: Mapping[str, int],
          limit: Mapping[str, int | None]) -> int:
    """Give up to `seats` more replicas by the divisor method; how many found no room."""
    def priority(cluster: str) -> tuple[float, str]:
        return (-weight[cluster] / (counts[cluster] + 0.5), cluster)

    heap = [priority(c) for c in counts if weight[c] > 0 and _has_room(counts[c], limit[c])]
    heapq.heapify(heap)
    while seats and heap:
        _, cluster = heapq.heappop(heap)
        counts[cluster] += 1
        seats -= 1
        if _has_room(counts[cluster], limit[cluster]):
            heapq.heappush(heap, priority(cluster))
    return seats


def _trim(counts: dict[str, int], seats: int, weight: Mapping[str, int],
          floor: Mapping[str, int]) -> None:
    """Take `seats` replicas away, each from the cluster most over its weight's share."""
    def excess(cluster: str) -> tuple[float, str]:
        share = (counts[cluster] - 0.5) / weight[cluster] if weight[cluster] else float("inf")
        return (share, cluster)

    for _ in range(seats):
        candidates = [c for c in counts if counts[c] > floor[c]]
        if not candidates:
            return
        counts[max(candidates, key=excess)] -= 1


def spread(total: int, clusters: Mapping[str, ClusterPreference], *,
           capacity: Mapping[str, int] | None = None,
           current: Mapping[str, int] | None = None) -> Plan:
    """Replicas of `total` over `clusters` (the ready ones, with their preferences).

    `capacity`: replicas a cluster can run at most (for example while its pods stay
    unschedulable). `current`: the placement to keep (rebalance off); None to compute from
    scratch (rebalance on).
    """
    capacity = capacity or {}
    limit = {c: _limit(p, capacity.get(c)) for c, p in clusters.items()}
    counts = {c: 0 for c in sorted(clusters)}
    if current is not None:
        for cluster in counts:
            counts[cluster] = _cap(current.get(cluster, 0), limit[cluster])
    weights = {c: p.weight for c, p in clusters.items()}
    placed = sum(counts.values())
    if placed > total:
        floor = {c: min(p.min_replicas, counts[c]) for c, p in clusters.items()}
        _trim(counts, placed - total, weights, floor)
        return Plan(counts, 0)
    target = {c: _cap(p.min_replicas, limit[c]) for c, p in clusters.items()}
    short = {c: max(0, target[c] - counts[c]) for c in counts}
    left = _fill(counts, total - placed, short, {c: counts[c] + short[c] for c in counts})
    left = _fill(counts, left, weights, limit)
    return Plan(counts, left)


def explain(total: int, clusters: Mapping[str, ClusterPreference], plan: Plan, *,
            capacity: Mapping[str, int] | None = None,
            current: Mapping[str, int] | None = None) -> dict[str, str]:
    """Why each of `clusters` got its share of `plan`, in words."""
    capacity = capacity or {}
    weights = sum(p.weight for p in clusters.values())
    reasons = {}
    for cluster, pref in sorted(clusters.items()):
        count = plan.replicas.get(cluster, 0)
        limit = _limit(pref, capacity.get(cluster))
        fair = total * pref.weight / weights if weights else 0.0
        if limit is not None and count >= limit and limit == pref.max_replicas:
            reasons[cluster] = f"capped at its maxReplicas {limit}"
        elif limit is not None and count >= limit:
            reasons[cluster] = f"full: it has room for {limit}"
        elif pref.min_replicas and count == pref.min_replicas and count > fair:
            reasons[cluster] = f"raised to its minReplicas {pref.min_replicas}"
        elif current is not None and count == current.get(cluster, 0) and count:
            reasons[cluster] = "kept where they run (rebalance off)"
        elif pref.weight == 0:
            reasons[cluster] = "weight 0: only its minReplicas"
        else:
            reasons[cluster] = f"weight {pref.weight} of {weights}: {count} of {total}"
    return reasons
