"""Leader election through a coordination.k8s.io Lease, as client-go does it: a lease held by
another replica is taken over only after it went unrenewed for its duration, timed by this
replica's own clock from when it last saw the record change."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from federator import metrics
from federator.kube.client import KubeClient, KubeError
from federator.kube.resources import LEASES, path

log = structlog.get_logger(__name__)


class LostLeadership(Exception):
    """This replica could not renew its lease in time: it must stop reconciling."""


@dataclass(frozen=True)
class LeaseSettings:
    name: str = "federator"
    namespace: str = "federation-system"
    duration: float = 10.0
    renew_deadline: float = 8.0
    retry_period: float = 2.0


def micro_time() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, client: KubeClient, settings: LeaseSettings, identity: str) -> None:
        self.client = client
        self.settings = settings
        self.identity = identity
        self._observed: dict[str, Any] | None = None
        self._observed_at = 0.0
        self.leading = False

    @property
    def _url(self) -> str:
        return path(LEASES, namespace=self.settings.namespace, name=self.settings.name)

    async def try_acquire_or_renew(self) -> bool:
        loop = asyncio.get_running_loop()
        now = micro_time()
        duration = int(self.settings.duration)
        try:
            lease = await self.client.get(self._url)
        except KubeError as exc:
            if not exc.not_found:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.settings.name,
                                 "namespace": self.settings.namespace},
                    "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": duration,
                             "acquireTime": now, "renewTime": now, "leaseTransitions": 0}}
            try:
                await self.client.create(self._url.rsplit("/", 1)[0], body)
            except KubeError as create_error:
                if create_error.conflict:
                    return False
                raise
            return True
        spec = lease.get("spec") or {}
        if spec != self._observed:
            self._observed, self._observed_at = spec, loop.time()
        holder = spec.get("holderIdentity")
        held_for = float(spec.get("leaseDurationSeconds") or duration)
        if holder and holder != self.identity and loop.time() < self._observed_at + held_for:
            return False
        new_spec = {**spec, "holderIdentity": self.identity, "leaseDurationSeconds": duration,
                    "renewTime": now}
        if holder != self.identity:
            new_spec["acquireTime"] = now
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        try:
            updated = await self.client.replace(self._url, {**lease, "spec": new_spec})
        except KubeError as exc:
            if exc.conflict:
                return False
            raise
        self._observed, self._observed_at = updated.get("spec"), loop.time()
        return True

    async def _attempt(self, within: float) -> bool:
        """One try, given up after `within` seconds (a hung plane must not hold a renewal
        past the renew deadline: another replica may take the lease after it)."""
        try:
            async with asyncio.timeout(within):
                return await self.try_acquire_or_renew()
        except KubeError as exc:
            log.warning("lease not acquired or renewed", lease=self.settings.name,
                        error=str(exc))
        except TimeoutError:
            log.warning("lease not acquired or renewed", lease=self.settings.name,
                        error=f"no answer within {within:.1f} s")
        return False

    async def _renew_until_lost(self) -> None:
        loop = asyncio.get_running_loop()
        last_renewal = loop.time()
        while True:
            await asyncio.sleep(self.settings.retry_period)
            left = last_renewal + self.settings.renew_deadline - loop.time()
            if left > 0 and await self._attempt(left):
                last_renewal = loop.time()
            elif loop.time() - last_renewal >= self.settings.renew_deadline:
                raise LostLeadership(f"lease {self.settings.name} not renewed for "
                                     f"{self.settings.renew_deadline:.0f} s")

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Lead for as long as this replica runs: wait for the lease, run `lead` while
        renewing it; when it cannot be renewed in time, stop `lead` (what it started may not
        be trusted any more) and campaign again. Returns only if `lead` returns."""
        while True:
            try:
                await self._lead_once(lead)
                return
            except LostLeadership as exc:
                log.error("lost leadership: the leader's work stopped; campaigning again",
                          error=str(exc))

    async def _lead_once(self, lead: Callable[[], Awaitable[None]]) -> None:
        while not await self._attempt(self.settings.renew_deadline):  # noqa: ASYNC110
            await asyncio.sleep(self.settings.retry_period)
        self.leading = True
        metrics.IS_LEADER.set(1)
        log.info("became leader", lease=self.settings.name, identity=self.identity)
        leader_task = asyncio.ensure_future(lead())
        renew_task = asyncio.ensure_future(self._renew_until_lost())
        try:
            done, _ = await asyncio.wait({leader_task, renew_task},
                                         return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in (leader_task, renew_task):
                task.cancel()
            await asyncio.gather(leader_task, renew_task, return_exceptions=True)
            self.leading = False
            metrics.IS_LEADER.set(0)

    async def release(self, within: float = 2.0) -> None:
        """Give the lease up at shutdown so that another replica takes over at once (given
        up after `within` seconds: an unreachable plane must not hold a shutdown)."""
        try:
            async with asyncio.timeout(within):
                lease = await self.client.get(self._url)
                if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                    return
                spec = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1}
                await self.client.replace(self._url, {**lease, "spec": spec})
        except (KubeError, TimeoutError) as exc:
            log.warning("lease not released", error=str(exc) or "no answer in time")
