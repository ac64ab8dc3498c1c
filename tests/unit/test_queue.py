from __future__ import annotations

import asyncio

from federator.controllers.queue import WorkQueue


async def test_a_waiting_key_is_not_added_twice() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert [await queue.get(), await queue.get()] == ["a", "b"]


async def test_a_key_added_while_active_comes_back_once_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    key = await queue.get()
    queue.add("a")
    queue.add("a")
    assert queue._ready.empty()
    queue.done(key)
    assert await queue.get() == "a"
    queue.done("a")
    assert queue._ready.empty()


async def test_retry_backs_off_and_forget_resets() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=0.08)
    delays = [queue.retry("a") for _ in range(6)]
    assert all(0.005 * 2 ** min(i, 3) <= d <= 0.01 * 2 ** min(i, 3) for i, d in enumerate(delays))
    queue.forget("a")
    assert queue.retry("a") <= 0.01
    assert await asyncio.wait_for(queue.get(), timeout=5) == "a"
    queue.close()
