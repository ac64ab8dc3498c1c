"""Leader election against a plane that stops answering: a renewal is given up when the
renew deadline comes (never later: another replica may take the lease after it), leading
stops, and the replica campaigns again instead of giving up. A fake client: pure unit test."""

from __future__ import annotations

import asyncio
from typing import Any

from federator.kube.client import KubeError
from federator.kube.leader import LeaderElector, LeaseSettings
from tests import clock

SETTINGS = LeaseSettings(duration=1.0, renew_deadline=0.6, retry_period=0.1)


class Plane:
    """A Lease store that can be made to hang (answer nothing) and to answer again."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.answering = asyncio.Event()
        self.answering.set()
        self.cut_off: list[float] = []  # when a hung request was given up (loop time)

    async def _wait(self) -> None:
        try:
            await self.answering.wait()
        except asyncio.CancelledError:
            self.cut_off.append(asyncio.get_running_loop().time())
            raise

    async def get(self, url: str) -> Any:
        await self._wait()
        if self.lease is None:
            raise KubeError(404, "NotFound", "no lease")
        return self.lease

    async def create(self, url: str, body: dict[str, Any]) -> Any:
        await self._wait()
        self.lease = {**body, "metadata": {**body["metadata"], "resourceVersion": "1"}}
        return self.lease

    async def replace(self, url: str, body: dict[str, Any]) -> Any:
        await self._wait()
        self.lease = body
        return body


def leads(elector: LeaderElector) -> bool:
    return elector.leading


def test_a_hung_plane_ends_leading_by_the_deadline_and_it_campaigns_again() -> None:
    """On a virtual clock: the deadline is checked exactly, however busy the machine."""
    clock.run(_hung_plane())


async def _hung_plane() -> None:
    plane = Plane()
    elector = LeaderElector(plane, SETTINGS, "me")  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    led: list[tuple[str, float]] = []

    async def lead() -> None:
        led.append(("start", loop.time()))
        try:
            await asyncio.Event().wait()
        finally:
            led.append(("stop", loop.time()))

    running = asyncio.ensure_future(elector.run(lead))
    while not leads(elector):  # noqa: ASYNC110
        await asyncio.sleep(0.01)  # between polls (virtual clock)
    renewed_last = loop.time()
    plane.answering.clear()  # hung from now on
    while leads(elector):  # noqa: ASYNC110
        await asyncio.sleep(0.01)  # between polls (virtual clock)
    # The renewal in flight was cut off at the deadline after the last renewal, which
    # happened at most one retry period before the plane hung.
    assert plane.cut_off
    assert (renewed_last + SETTINGS.renew_deadline - SETTINGS.retry_period
            <= plane.cut_off[0] <= renewed_last + SETTINGS.renew_deadline)
    assert [what for what, _ in led] == ["start", "stop"]
    assert not running.done()  # it does not give up: it campaigns again
    plane.answering.set()
    while not leads(elector):  # noqa: ASYNC110
        await asyncio.sleep(0.01)  # between polls (virtual clock)
    assert [what for what, _ in led] == ["start", "stop", "start"]
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
