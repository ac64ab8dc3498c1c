"""How many replicas each cluster gets: a divisor method (Webster / Sainte-Lague), so the
result is deterministic, exact where the limits allow, and house monotone: raising the total
never lowers any cluster's count.

Defined as if replicas were handed out one by one. First every cluster is brought up to its
minReplicas, each step going to the cluster with the largest `min / (count + 0.5)`; then
each further replica goes to the cluster with the largest `weight / (count + 0.5)` that is
below its maximum (ties to the cluster named first). Weights 2:1 with 2 replicas give 1 and
1. With `rebalance` off the counts start from the current placement instead of zero, so no
running replica moves: a scale-up only adds, a scale-down takes from the most over-served
clusters first (`(count - 0.5) / weight`, ties to the cluster named last).

Computed without placing replicas one at a time (a total is a number the caller chooses):
every step a cluster can take has a priority, and each cluster's priorities fall as its
count grows, so the first S steps are exactly the steps whose priority is above some
threshold, plus a few that tie with it. A bisection over thresholds finds the largest set of
steps above one that is no more than S (each guess costs one pass over the clusters), and
the few steps left are handed out one by one. Priorities are compared as exact fractions.
The cost is O(clusters · log(total · weight)).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction

MAX_REPLICAS = 2**31 - 1  # Kubernetes' replica counts are int32


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


def _smallest(lo: int, hi: int, holds: Callable[[int], bool]) -> int:
    """The smallest m in [lo, hi] for which `holds` (false below it, true from it on);
    `holds(hi)` must be true."""
    while lo < hi:
        mid = (lo + hi) // 2
        if holds(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _fill(counts: dict[str, int], seats: int, weight: Mapping[str, int],
          limit: Mapping[str, int | None]) -> int:
    """Give up to `seats` more replicas by the divisor method; how many found no room.

    The step from count k has priority w / (k + 0.5). With a threshold t = m / q, a cluster
    takes every step above it: k < w·t - 0.5, i.e. the k >= 0 with 2qk < 2wm - q. q is
    fine enough (2·W²) that two different priorities never share one grid interval, so the
    largest m whose steps fit leaves at most one step per cluster to hand out one by one."""
    takers = [c for c in counts if weight[c] > 0 and _has_room(counts[c], limit[c])]
    if not takers or seats <= 0:
        return max(seats, 0)
    q = 2 * max(weight[c] for c in takers) ** 2

    def above(m: int) -> dict[str, int]:
        taken = {}
        for c in takers:
            x = 2 * weight[c] * m - q
            steps = (x + 2 * q - 1) // (2 * q) if x > 0 else 0
            taken[c] = max(0, _cap(steps, limit[c]) - counts[c])
        return taken

    top = (seats + max(counts[c] for c in takers) + 1) * q  # every cluster past its share
    m = _smallest(0, top, lambda m: sum(above(m).values()) > seats) - 1
    for cluster, extra in above(m).items():
        counts[cluster] += extra
        seats -= extra

    def priority(cluster: str) -> tuple[Fraction, str]:
        return (-Fraction(2 * weight[cluster], 2 * counts[cluster] + 1), cluster)

    heap = [priority(c) for c in takers if _has_room(counts[c], limit[c])]
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
    """Take `seats` replicas away, each from the cluster most over its weight's share: the
    step down from count c has priority (c - 0.5) / w (infinite for weight 0, taken first).
    As in `_fill`, every step above a threshold m / q is taken at once: c > (2wm + q) / 2q."""
    for cluster in sorted(counts, reverse=True):  # weight 0: down to its floor, last name first
        if weight[cluster] == 0 and seats > 0:
            down = min(seats, max(0, counts[cluster] - floor[cluster]))
            counts[cluster] -= down
            seats -= down
    givers = [c for c in counts if weight[c] > 0 and counts[c] > floor[c]]
    if not givers or seats <= 0:
        return
    q = 2 * max(weight[c] for c in givers) ** 2

    def above(m: int) -> dict[str, int]:
        return {c: max(0, counts[c] - max(floor[c], (2 * weight[c] * m + q) // (2 * q)))
                for c in givers}

    top = max(counts[c] for c in givers) * q  # no step is above this
    m = _smallest(0, top, lambda m: sum(above(m).values()) <= seats)
    for cluster, down in above(m).items():
        counts[cluster] -= down
        seats -= down

    def excess(cluster: str) -> tuple[Fraction, str]:
        return (Fraction(2 * counts[cluster] - 1, 2 * weight[cluster]), cluster)

    for _ in range(seats):  # at most one step per cluster is left
        candidates = [c for c in givers if counts[c] > floor[c]]
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
