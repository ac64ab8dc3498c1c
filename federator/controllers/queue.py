"""A keyed work queue: a key waiting is not added twice, a key being worked on is not handed
to a second worker (it is handed again once done, if it was added meanwhile), and failed keys
come back after an exponential backoff with jitter."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, *, base_delay: float = 0.2, max_delay: float = 30.0) -> None:
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._waiting: set[K] = set()  # in _ready, not yet handed out
        self._active: set[K] = set()  # handed out, not done
        self._again: set[K] = set()  # added while active
        self._failures: dict[K, int] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self.base_delay = base_delay
        self.max_delay = max_delay

    def __len__(self) -> int:
        return len(self._waiting) + len(self._again)

    def add(self, key: K) -> None:
        if key in self._active:
            self._again.add(key)
        elif key not in self._waiting:
            self._waiting.add(key)
            self._ready.put_nowait(key)

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

    async def get(self) -> K:
        key = await self._ready.get()
        self._waiting.discard(key)
        self._active.add(key)
        return key

    def done(self, key: K) -> None:
        self._active.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)

    def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
