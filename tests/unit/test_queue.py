from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from federator.controllers.queue import WorkQueue
from tests import clock


async def handed_out(queue: WorkQueue[str]) -> list[str]:
    """The keys a worker would be handed now: nothing more within 0.05 s on the virtual
    clock, where no other task runs meanwhile."""
    keys = []
    while True:
        try:
            keys.append(await asyncio.wait_for(queue.get(), timeout=0.05))
        except TimeoutError:
            return keys


@clock.virtual
async def test_a_waiting_key_is_not_added_twice() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert [await queue.get(), await queue.get()] == ["a", "b"]


@clock.virtual
async def test_a_key_added_while_active_comes_back_once_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    key = await queue.get()
    queue.add("a")
    queue.add("a")
    assert not await handed_out(queue)
    queue.done(key)
    assert await queue.get() == "a"
    queue.done("a")
    assert not await handed_out(queue)


@clock.virtual
async def test_retry_backs_off_and_forget_resets() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=0.08)
    delays = [queue.retry("a") for _ in range(6)]
    assert all(0.005 * 2 ** min(i, 3) <= d <= 0.01 * 2 ** min(i, 3) for i, d in enumerate(delays))
    queue.forget("a")
    assert queue.retry("a") <= 0.01
    assert await asyncio.wait_for(queue.get(), timeout=5) == "a"
    queue.close()


@clock.virtual
async def test_urgent_keys_go_first_and_hold_the_others_until_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("config-1", "config-2", "web"):
        queue.add(key)
    queue.add("db", urgent=True)
    queue.add("web", urgent=True)  # waiting as an ordinary key: moves ahead
    assert queue.urgent == 2
    assert await handed_out(queue) == ["db", "web"]
    queue.done("db")
    assert not await handed_out(queue)  # web is still being worked on
    queue.done("web")
    assert queue.urgent == 0
    assert await handed_out(queue) == ["config-1", "config-2"]  # web is not handed twice
    queue.done("config-1")
    queue.done("config-2")
    assert len(queue) == 0


@clock.virtual
async def test_an_urgent_add_while_active_comes_back_urgent() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("web")
    assert await queue.get() == "web"
    queue.add("web", urgent=True)
    queue.add("config")
    queue.done("web")
    assert await handed_out(queue) == ["web"]
    queue.done("web")
    assert await handed_out(queue) == ["config"]


OPERATIONS = st.lists(st.tuples(st.sampled_from(["add", "urgent", "get", "done"]),
                                st.sampled_from("abcde")), max_size=60)


@given(OPERATIONS)
def test_no_key_twice_at_once_no_ordinary_key_while_urgent_ones_and_none_lost(
        operations: list[tuple[str, str]]) -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue()
        active: dict[str, bool] = {}  # handed out: urgent?
        wanted: set[str] = set()  # added and not handed out since
        urgency: dict[str, bool] = {}  # of those: added as urgent at least once?

        async def take() -> None:
            try:
                key = await asyncio.wait_for(queue.get(), timeout=0.01)
            except TimeoutError:
                return
            assert key not in active
            assert key in wanted
            wanted.discard(key)
            active[key] = urgency.pop(key, False)
            if not active[key]:
                assert queue.urgent == 0  # ordinary keys wait for the urgent ones

        for operation, key in operations:
            if operation in ("add", "urgent"):
                queue.add(key, urgent=operation == "urgent")
                wanted.add(key)
                urgency[key] = urgency.get(key, False) or operation == "urgent"
            elif operation == "get":
                await take()
            elif key in active:
                del active[key]
                queue.done(key)
        for key in list(active):  # every worker finishes; whatever is left comes out
            del active[key]
            queue.done(key)
        while wanted:
            before = set(wanted)
            await take()
            for key in list(active):
                del active[key]
                queue.done(key)
            assert wanted != before, wanted
        assert len(queue) == 0 and queue.urgent == 0

    clock.run(scenario())
