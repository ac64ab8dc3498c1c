"""An event loop whose clock is virtual: time moves only when every task waits for a
timer, and then at once to the next timer. Tests of timing logic (deadlines, backoff) run in
no real time and do not depend on how busy the machine is. For code without real I/O: a
read that waits for a socket would see time jump past its deadline."""

from __future__ import annotations

import asyncio
import functools
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")


class _Selector(selectors.DefaultSelector):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0 if timeout is not None else None)
        if not ready and timeout:
            self._clock.now += timeout  # nothing to do until the next timer: go there
        return ready


class VirtualClock(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(selector=_Selector(self))

    def time(self) -> float:
        return self.now


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """`coroutine` run to its end on a VirtualClock."""
    with asyncio.Runner(loop_factory=VirtualClock) as runner:
        return runner.run(coroutine)


def virtual(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """An async test run on a VirtualClock (a plain test to pytest)."""
    @functools.wraps(test)
    def on_the_clock(*args: P.args, **kwargs: P.kwargs) -> None:
        run(test(*args, **kwargs))

    return on_the_clock


async def until(condition: Callable[[], object], what: str, polls: int = 1000) -> None:
    """Polls `condition` until it holds (a bounded number of times, 0.01 s apart)."""
    for _ in range(polls):
        if condition():
            return
        await asyncio.sleep(0.01)  # between polls
    raise AssertionError(f"never happened: {what}")
