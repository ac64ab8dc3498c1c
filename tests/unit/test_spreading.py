from __future__ import annotations

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
