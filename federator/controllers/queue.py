"""A keyed work queue: a key waiting is not added twice, a key being worked on is not handed
to a second worker (it is handed again once done, if it was added meanwhile), and failed keys
come back after an exponential backoff with jitter.

Keys come in two lanes. An urgent key (a workload whose replicas must move because a member
failed) is handed out before any other, and while urgent keys wait or are being worked on no
other key is handed out: a failover's re-splits are written before the queue's backlog is
worked through, and do not share the workers or the members' connections with it. A key
added as urgent while it waits as an ordinary one moves to the urgent lane."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, *, base_delay: float = 0.2, max_delay: float = 30.0,
                 waited: Callable[[float], None] = lambda seconds: None) -> None:
        self._lanes: tuple[deque[K], deque[K]] = (deque(), deque())  # ordinary, urgent
        self._waiting: dict[K, bool] = {}  # in a lane, not yet handed out: urgent?
        self._active: dict[K, bool] = {}  # handed out, not done: urgent?
        self._again: dict[K, bool] = {}  # added while active: urgent?
        self._urgent = 0  # urgent keys waiting or active
        self._ready = asyncio.Event()  # a key may be handed out
        self._finished = asyncio.Event()  # a key was done
        self._failures: dict[K, int] = {}
        self._since: dict[K, float] = {}  # when each waiting key was first added
        self._waited = waited  # told how long each key waited before it was handed out
        self._timers: set[asyncio.TimerHandle] = set()
        self.base_delay = base_delay
        self.max_delay = max_delay

    def __len__(self) -> int:
        return len(self._waiting) + len(self._again)

    async def finished(self, which: Callable[[K], bool]) -> None:
        """Returns once no key that `which` picks is handed out and not done."""
        while any(which(key) for key in self._active):
            self._finished.clear()
            await self._finished.wait()

    @property
    def urgent(self) -> int:
        """Urgent keys waiting or being worked on."""
        return self._urgent

    def add(self, key: K, *, urgent: bool = False) -> None:
        if key in self._active:
            self._again[key] = self._again.get(key, False) or urgent
            return
        was = self._waiting.get(key)
        if was is None:
            self._since[key] = time.monotonic()
        if was is None or (urgent and not was):
            # An ordinary key made urgent moves lanes: its ordinary entry is skipped.
            self._waiting[key] = urgent
            self._urgent += urgent
            self._lanes[urgent].append(key)
            self._ready.set()

    def add_after(self, key: K, delay: float) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            self.add(key)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def retry(self, key: K) -> float:
        """Add `key` again after its backoff; the delay chosen."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay: float = min(self.max_delay, self.base_delay * 2.0 ** (failures - 1))
        delay *= 0.5 + random.random() / 2  # noqa: S311 (jitter, not secrecy)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """The key succeeded: its next failure starts the backoff afresh."""
        self._failures.pop(key, None)

    def _take(self) -> K | None:
        """The next key to hand out, if one may be handed out now."""
        for urgent in (True, False):
            if not urgent and self._urgent:
                return None  # ordinary keys wait for the urgent ones to be done
            lane = self._lanes[urgent]
            while lane:
                key = lane.popleft()
                if self._waiting.get(key) is urgent:  # else: moved to the urgent lane
                    del self._waiting[key]
                    self._active[key] = urgent
                    self._waited(time.monotonic() - self._since.pop(key, time.monotonic()))
                    return key
        return None

    async def get(self) -> K:
        while True:
            key = self._take()
            if key is not None:
                return key
            self._ready.clear()
            await self._ready.wait()

    def done(self, key: K) -> None:
        urgent = self._active.pop(key, False)
        self._finished.set()
        if urgent:
            self._urgent -= 1
            if not self._urgent:
                self._ready.set()  # ordinary keys may be handed out again
        again = self._again.pop(key, None)
        if again is not None:
            self.add(key, urgent=again)

    def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
