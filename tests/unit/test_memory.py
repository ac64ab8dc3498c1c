"""Propagation's per-object memory: one record per object, and nothing of it left once the
object is gone and nothing that outlives it (a running write, a copy left behind, a user)
is left."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from federator.controllers.propagation.memory import Key, Memories, Outcome

KEY: Key = ("ConfigMap", "default", "settings")
WORKLOAD: Key = ("Deployment.apps", "default", "web")


def test_a_gone_objects_record_is_forgotten() -> None:
    present: set[Key] = {KEY}
    memories = Memories(present.__contains__)
    memory = memories.of(KEY)
    memory.plan = {"member-1": 2}
    memory.copy("member-1").applied = "{}"
    memories.tidy(KEY)
    assert memories.peek(KEY) is memory  # the plane still holds it: kept
    present.clear()
    memories.gone(KEY)
    assert memories.peek(KEY) is None and len(memories) == 0


def test_a_copy_left_behind_keeps_the_record_until_it_is_swept() -> None:
    memories = Memories(lambda key: False)
    memories.of(KEY).copy("member-2").released = True
    memories.of(KEY).copy("member-1").applied = "{}"
    memories.gone(KEY)
    kept = memories.peek(KEY)
    assert kept is not None and list(kept.copies) == ["member-2"]
    assert kept.copies["member-2"].released is True
    kept.copies["member-2"].released = None
    memories.tidy(KEY)
    assert len(memories) == 0


def test_a_used_name_is_remembered_while_a_workload_uses_it() -> None:
    memories = Memories(lambda key: False)
    memories.of(KEY).users.add(WORKLOAD)
    memories.gone(KEY)
    assert memories.peek(KEY) is not None  # the ConfigMap may be created later
    memories.of(KEY).users.discard(WORKLOAD)
    memories.tidy(KEY)
    assert memories.peek(KEY) is None


def test_a_write_still_running_keeps_its_copy_even_when_the_member_leaves() -> None:
    async def scenario() -> None:
        memories = Memories(lambda key: False)
        running: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        memories.of(KEY).copy("member-1").writing = running
        memories.of(KEY).copy("member-2").applied = "{}"
        memories.forget_cluster("member-1")
        memories.forget_cluster("member-2")
        kept = memories.peek(KEY)
        assert kept is not None and list(kept.copies) == ["member-1"]
        kept.copies["member-1"].writing = None
        memories.forget_cluster("member-1")
        assert len(memories) == 0

    asyncio.run(scenario())


OPERATIONS = st.lists(st.tuples(
    st.sampled_from(["plan", "applied", "error", "capacity", "released", "late", "user",
                     "orphaned", "settled"]),
    st.sampled_from(["member-1", "member-2", "member-3"]),
    st.sampled_from([KEY, WORKLOAD, ("Secret", "default", "token")])), max_size=40)


@given(OPERATIONS)
def test_nothing_stays_behind_once_what_outlives_an_object_is_done(
        operations: list[tuple[str, str, Key]]) -> None:
    """Whatever was remembered, once the objects are gone and what outlives them (copies
    left behind, late outcomes, users) is done with, no record is left."""
    present: set[Key] = set()
    memories = Memories(present.__contains__)
    for what, cluster, key in operations:
        present.add(key)
        memory = memories.of(key)
        copy = memory.copy(cluster)
        if what == "plan":
            memory.plan = {cluster: 1}
        elif what == "applied":
            copy.applied = copy.normal = "{}"
        elif what == "error":
            copy.error = "Forbidden"
        elif what == "capacity":
            copy.capacity, copy.overflowed = (1, 10.0), True
        elif what == "released":
            copy.released = True
        elif what == "late":
            copy.late = Outcome(error="slow")
        elif what == "user":
            memory.users.add(WORKLOAD)
        elif what == "orphaned":
            memory.orphaned = True
        else:
            memory.settled = ("1",)
    keys = {key for _, _, key in operations}
    for key in keys:
        present.discard(key)
        memories.gone(key)
    for key in keys:  # what outlived them ends: swept, taken, no longer used
        left = memories.peek(key)
        if left is None:
            continue
        memory = left
        assert memory.plan is None and memory.settled is None and not memory.orphaned
        memory.users.clear()
        for copy in memory.copies.values():
            assert copy.applied is None and copy.capacity is None and copy.error is None
            copy.released = copy.late = None
        memories.tidy(key)
    assert len(memories) == 0
