from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from federator.domain.sharding import Holding, Plan, namespace_of, plan, shard_of


def settle(shards: int, replicas: list[str], holdings: dict[int, Holding],
           rounds: int = 50) -> dict[int, Holding]:
    """Replicas plan one after another (each sees what the one before did) until a whole
    round changes nothing; the holdings then."""
    for _ in range(rounds):
        changed = False
        for me in replicas:
            decided = plan(shards, me, holdings, replicas)
            for shard in decided.give:
                assert holdings[shard].holder == me, "gives only its own"
                holdings[shard] = Holding("", live=True)
            for shard in decided.take:
                current = holdings.get(shard)
                assert current is None or not current.holder or not current.live, \
                    "takes only free shards"
                holdings[shard] = Holding(me, live=True)
            changed = changed or decided != Plan()
        if not changed:
            return holdings
    raise AssertionError(f"no fixed point after {rounds} rounds: {holdings}")


def counts(holdings: dict[int, Holding], replicas: list[str]) -> dict[str, int]:
    return {r: sum(h.holder == r for h in holdings.values()) for r in replicas}


def test_one_replica_takes_every_shard() -> None:
    assert sorted(plan(8, "a", {}, []).take) == list(range(8))
    held = {s: Holding("a", live=True) for s in range(8)}
    assert plan(8, "a", held, ["a"]) == Plan()


def test_a_second_replica_gets_half() -> None:
    held = {s: Holding("a", live=True) for s in range(8)}
    # a sees b's replica lease: it gives half up; b takes what is free.
    gave = plan(8, "a", held, ["a", "b"]).give
    assert len(gave) == 4
    for shard in gave:
        held[shard] = Holding("", live=True)
    assert sorted(plan(8, "b", held, ["a", "b"]).take) == sorted(gave)


def test_a_dead_holders_shards_wait_for_its_lease_then_move() -> None:
    held = {s: Holding("a" if s < 4 else "b", live=True) for s in range(8)}
    assert plan(8, "a", held, ["a", "b"]) == Plan()  # b may only be slow: its leases live
    expired = {s: Holding(h.holder, live=h.holder == "a") for s, h in held.items()}
    assert sorted(plan(8, "a", expired, ["a"]).take) == [4, 5, 6, 7]


def test_a_poorer_replica_is_left_the_free_shards() -> None:
    # 8 shards, 3 replicas: due 2 or 3 each. c holds 1 (fewer than 8 // 3): a (4) and b (3),
    # deciding at the same time, each give one up; then one free shard is c's due already,
    # so nobody gives more, and while c is short neither a nor b takes; c takes both.
    held = {0: Holding("a", True), 1: Holding("a", True), 2: Holding("a", True),
            3: Holding("b", True), 4: Holding("b", True), 5: Holding("b", True),
            6: Holding("a", True), 7: Holding("c", True)}
    replicas = ["a", "b", "c"]
    gave = [plan(8, giver, held, replicas).give for giver in ("a", "b")]
    for (shard,) in gave:
        held[shard] = Holding("", True)
    assert plan(8, "a", held, replicas) == Plan()
    assert plan(8, "b", held, replicas) == Plan()
    assert len(plan(8, "c", held, replicas).take) == 2


def test_more_replicas_than_shards_each_hold_one_at_most() -> None:
    final = settle(2, ["a", "b", "c"], {})
    assert sorted(counts(final, ["a", "b", "c"]).values()) == [0, 1, 1]


@settings(max_examples=200, deadline=None)
@given(shards=st.integers(1, 32), replicas=st.lists(st.sampled_from("abcdefgh"), min_size=1,
                                                    max_size=6, unique=True),
       start=st.dictionaries(st.integers(0, 31), st.sampled_from("abcdefgh")))
def test_replicas_settle_on_a_fair_split_of_every_shard(shards: int, replicas: list[str],
                                                        start: dict[int, str]) -> None:
    """From any start (shards held by live or dead replicas, or free), live replicas reach a
    state that no plan changes, where every shard is held by a live replica and each holds
    shards // n or shards // n + 1 (at most 1 when there are more replicas than shards)."""
    holdings = {s: Holding(h, live=h in replicas) for s, h in start.items() if s < shards}
    final = settle(shards, replicas, holdings)
    assert all(final[s].holder in replicas for s in range(shards)), final
    base = shards // len(replicas)
    assert set(counts(final, replicas).values()) <= {base, base + 1}, final


@given(st.text(max_size=20), st.integers(1, 64))
def test_a_namespace_has_one_shard_everywhere(namespace: str, shards: int) -> None:
    assert 0 <= shard_of(namespace, shards) < shards
    assert shard_of(namespace, 1) == 0


def test_known_shards_do_not_change_between_versions() -> None:
    """Replicas of different versions must agree: the hash is pinned (sha256 of the
    namespace, its first 8 bytes big-endian, modulo the shards)."""
    assert [shard_of(ns, 8) for ns in ("", "default", "kube-system", "team-a")] == [4, 5, 1, 4]
    assert namespace_of("Namespace", "", "team-a") == "team-a"
    assert namespace_of("ConfigMap", "team-a", "x") == "team-a"
    assert namespace_of("ClusterRole", "", "x") == ""
