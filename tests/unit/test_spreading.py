from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from federator.domain.spreading import ClusterPreference, explain, spread

P = ClusterPreference
names = st.sampled_from(["a", "b", "c", "d", "e"])
preference = st.builds(
    lambda w, lo, span: P(weight=w, min_replicas=lo,
                          max_replicas=None if span is None else lo + span),
    st.integers(0, 10), st.integers(0, 5), st.none() | st.integers(0, 10))
federations = st.dictionaries(names, preference, min_size=1, max_size=5)


def capacity_of(prefs: dict[str, P]) -> int | None:
    if any(p.max_replicas is None and p.weight > 0 for p in prefs.values()):
        return None
    # a cluster of weight 0 takes its minReplicas only, whatever its maximum
    return sum(p.max_replicas if p.max_replicas is not None and p.weight > 0
               else p.min_replicas for p in prefs.values())


def test_weights_two_to_one() -> None:
    prefs = {"a": P(weight=2), "b": P(weight=1)}
    assert spread(2, prefs).replicas == {"a": 1, "b": 1}
    assert spread(3, prefs).replicas == {"a": 2, "b": 1}
    assert spread(6, prefs).replicas == {"a": 4, "b": 2}


def test_min_and_max() -> None:
    prefs = {"a": P(weight=1, max_replicas=1), "b": P(weight=1, min_replicas=3)}
    assert spread(5, prefs).replicas == {"a": 1, "b": 4}
    assert spread(2, prefs).replicas == {"a": 0, "b": 2}


def test_everything_full_leaves_replicas_unplaced() -> None:
    plan = spread(5, {"a": P(max_replicas=2)}, capacity={"a": 1})
    assert plan.replicas == {"a": 1}
    assert plan.unplaced == 4


def test_rebalance_off_moves_no_replica_when_scaling_up() -> None:
    prefs = {"a": P(weight=1), "b": P(weight=1), "c": P(weight=1)}
    six = spread(6, prefs).replicas
    seven = spread(7, prefs, current=six).replicas
    assert all(seven[c] >= six[c] for c in six)
    assert sum(seven.values()) == 7
    skewed = {"a": 5, "b": 1, "c": 0}
    assert spread(7, prefs, current=skewed).replicas == {"a": 5, "b": 1, "c": 1}


def test_rebalance_off_scale_down_takes_from_the_most_over_served() -> None:
    prefs = {"a": P(weight=1), "b": P(weight=1)}
    assert spread(4, prefs, current={"a": 5, "b": 1}).replicas == {"a": 3, "b": 1}


@given(st.integers(0, 60), federations)
def test_exact_where_the_limits_allow(total: int, prefs: dict[str, P]) -> None:
    plan = spread(total, prefs)
    placed = sum(plan.replicas.values())
    assert placed + plan.unplaced == total
    room = capacity_of(prefs)
    if room is None or room >= total:
        assert plan.unplaced == 0 or all(p.weight == 0 for p in prefs.values())
    for cluster, count in plan.replicas.items():
        bound = prefs[cluster].max_replicas
        assert bound is None or count <= bound


@given(st.integers(0, 60), federations)
def test_minimums_are_met_first(total: int, prefs: dict[str, P]) -> None:
    plan = spread(total, prefs)
    floor = sum(min(p.min_replicas, p.max_replicas if p.max_replicas is not None
                    else p.min_replicas) for p in prefs.values())
    if total >= floor:
        for cluster, pref in prefs.items():
            bound = pref.max_replicas
            wanted = pref.min_replicas if bound is None else min(pref.min_replicas, bound)
            assert plan.replicas[cluster] >= wanted


@given(st.integers(0, 60), federations)
def test_raising_the_total_never_lowers_a_cluster(total: int, prefs: dict[str, P]) -> None:
    low, high = spread(total, prefs).replicas, spread(total + 1, prefs).replicas
    assert all(high[c] >= low[c] for c in prefs)


@given(st.integers(0, 60), federations, st.permutations(["a", "b", "c", "d", "e"]))
def test_deterministic_whatever_the_order(total: int, prefs: dict[str, P],
                                          order: list[str]) -> None:
    shuffled = {c: prefs[c] for c in order if c in prefs}
    assert spread(total, prefs) == spread(total, shuffled)


@given(st.integers(0, 40), st.integers(0, 40), federations)
def test_rebalance_off_scale_up_only_adds(before: int, extra: int,
                                          prefs: dict[str, P]) -> None:
    current = spread(before, prefs).replicas
    after = spread(before + extra, prefs, current=current).replicas
    assert all(after[c] >= current[c] for c in prefs)


def test_explain_names_the_rule_behind_each_share() -> None:
    clusters = {"a": ClusterPreference(weight=2), "b": ClusterPreference(weight=1),
                "c": ClusterPreference(weight=1, max_replicas=1),
                "d": ClusterPreference(weight=0, min_replicas=2)}
    plan = spread(10, clusters)
    assert plan.replicas == {"a": 5, "b": 2, "c": 1, "d": 2}
    assert explain(10, clusters, plan) == {
        "a": "weight 2 of 4: 5 of 10", "b": "weight 1 of 4: 2 of 10",
        "c": "capped at its maxReplicas 1", "d": "raised to its minReplicas 2"}
    full = spread(4, {"a": ClusterPreference()}, capacity={"a": 3})
    assert explain(4, {"a": ClusterPreference()}, full, capacity={"a": 3}) == {
        "a": "full: it has room for 3"}
    kept = spread(3, {"a": ClusterPreference(), "b": ClusterPreference()},
                  current={"a": 3, "b": 0})
    assert explain(3, {"a": ClusterPreference(), "b": ClusterPreference()}, kept,
                   current={"a": 3, "b": 0})["a"] == "kept where they run (rebalance off)"


# The definition, one replica at a time: what spread() must equal on every input small
# enough to compute this way.
def one_at_a_time(total: int, prefs: dict[str, P], capacity: dict[str, int],
                  current: dict[str, int] | None) -> dict[str, int]:
    unbounded = 10**9
    limit = {}
    for c, p in prefs.items():
        bounds = [b for b in (p.max_replicas, capacity.get(c)) if b is not None]
        limit[c] = min(bounds) if bounds else unbounded
    counts = {c: 0 for c in prefs}
    if current is not None:
        counts = {c: min(current.get(c, 0), limit[c]) for c in prefs}
    placed = sum(counts.values())
    if placed > total:
        floor = {c: min(p.min_replicas, counts[c]) for c, p in prefs.items()}
        for _ in range(placed - total):
            over = [c for c in counts if counts[c] > floor[c]]
            if not over:
                break
            counts[max(over, key=lambda c: (Fraction(2 * counts[c] - 1, 2 * prefs[c].weight)
                                            if prefs[c].weight else Fraction(10**9), c))] -= 1
        return counts
    want = {c: min(p.min_replicas, limit[c]) for c, p in prefs.items()}
    short = {c: max(0, want[c] - counts[c]) for c in counts}
    top = {c: counts[c] + short[c] for c in counts}
    seats = total - placed
    for weight, bound in ((short, top), ({c: p.weight for c, p in prefs.items()}, limit)):
        while seats:
            open_ = [c for c in counts if weight[c] > 0 and counts[c] < bound[c]]
            if not open_:
                break
            best = min(open_, key=lambda c: (-Fraction(2 * weight[c], 2 * counts[c] + 1), c))
            counts[best] += 1
            seats -= 1
    return counts


wide = st.builds(
    lambda w, lo, span: P(weight=w, min_replicas=lo,
                          max_replicas=None if span is None else lo + span),
    st.integers(0, 1000) | st.sampled_from([0, 1, 2, 3]), st.integers(0, 30),
    st.none() | st.integers(0, 60))
wide_federations = st.dictionaries(names, wide, min_size=1, max_size=5)
placements = st.dictionaries(names, st.integers(0, 120), max_size=5)


@given(st.integers(0, 200), wide_federations,
       st.dictionaries(names, st.integers(0, 80), max_size=5), st.none() | placements)
def test_equals_the_one_at_a_time_definition(total: int, prefs: dict[str, P],
                                             capacity: dict[str, int],
                                             current: dict[str, int] | None) -> None:
    capacity = {c: n for c, n in capacity.items() if c in prefs}
    plan = spread(total, prefs, capacity=capacity, current=current)
    assert plan.replicas == one_at_a_time(total, prefs, capacity, current)


INT32_MAX = 2**31 - 1


def test_totals_up_to_the_int32_maximum() -> None:
    """Huge totals cost no more than small ones (no replica is placed one at a time): the
    shares are the exact divisor-method ones."""
    prefs = {"a": P(weight=2), "b": P(weight=1), "c": P(weight=1, max_replicas=5)}
    plan = spread(INT32_MAX, prefs)
    assert plan.replicas["c"] == 5 and plan.unplaced == 0
    assert plan.replicas["a"] + plan.replicas["b"] == INT32_MAX - 5
    assert abs(plan.replicas["a"] - 2 * plan.replicas["b"]) <= 2
    big_weights = {"a": P(weight=INT32_MAX), "b": P(weight=INT32_MAX - 1), "c": P(weight=1)}
    assert sum(spread(INT32_MAX, big_weights).replicas.values()) == INT32_MAX
    # rebalance off, scaling down from the maximum to 1 and back up
    down = spread(1, prefs, current=plan.replicas)
    assert sum(down.replicas.values()) == 1
    up = spread(INT32_MAX, prefs, current=down.replicas)
    assert up.replicas == plan.replicas
