"""The cluster registry: one client per member from the Cluster objects in the plane, each
member's /readyz probed on a period, and its Ready condition, version and capacity written
into the Cluster's status, with an event on each transition."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import structlog

from federator import metrics
from federator.clusters.join import credentials_from_secret
from federator.domain.health import Health, Probe, Thresholds, capacity
from federator.domain.naming import FEDERATION_NAMESPACE
from federator.kube.client import KubeClient, KubeError, Object, Unreachable
from federator.kube.events import EventRecorder, now_rfc3339
from federator.kube.resources import CLUSTERS, NODES, SECRETS, path
from federator.kube.watching import Reflector, SharedReflectors

log = structlog.get_logger(__name__)


class Watching(Protocol):
    """A controller's watches of one member: the client they use, the tasks that run them."""

    client: KubeClient
    tasks: list[asyncio.Task[None]]


W = TypeVar("W", bound=Watching)


@dataclass(frozen=True)
class ProbeSettings:
    period: float = 2.0
    timeout: float = 2.0
    failure_threshold: int = 3
    success_threshold: int = 1
    capacity_period: float = 30.0  # how often version and capacity are read while Ready

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(failure=self.failure_threshold, success=self.success_threshold)


@dataclass
class Member:
    """What the registry knows of one member."""

    name: str
    cluster: Object
    client: KubeClient | None
    health: Health
    transition_time: str
    version: str | None = None
    capacity: dict[str, int] | None = None
    refreshed_at: float = float("-inf")
    published: bool = False  # whether the plane's Cluster status says what we know
    unannounced: bool = False  # a change of readiness not yet told in an event
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    publishing: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def ready(self) -> bool:
        return self.health.status == "True"


def _health_from_status(cluster: Object) -> tuple[Health, str]:
    """The condition a Cluster already carries: a restarted federator goes on from it."""
    status = cluster.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            return (Health(condition.get("status", "Unknown"), condition.get("reason", ""),
                           condition.get("message", "")),
                    condition.get("lastTransitionTime") or now_rfc3339())
    return Health(), now_rfc3339()


def _placement(cluster: Object) -> tuple[Any, ...]:
    """What placement and DNS read of a Cluster besides its health: labels, region, zone."""
    spec = cluster.get("spec") or {}
    return (cluster["metadata"].get("labels"), spec.get("region"), spec.get("zone"))


def _identity(cluster: Object) -> tuple[str, str]:
    spec = cluster.get("spec") or {}
    return (str(spec.get("server")), str((spec.get("secretRef") or {}).get("name")))


class Registry:
    """`members` is the view of the controllers and the gateway. Every replica probes; only
    while `may_write()` (the replica leads) are status and events written to the plane."""

    def __init__(self, plane: KubeClient, settings: ProbeSettings,
                 recorder: EventRecorder, may_write: Callable[[], bool] = lambda: True
                 ) -> None:
        self.plane = plane
        self.settings = settings
        self.recorder = recorder
        self.may_write = may_write
        self.members: dict[str, Member] = {}
        self.synced = asyncio.Event()
        # Called with a member's name when it joins, leaves, its readiness changes, or its
        # labels, region or zone.
        self.listeners: list[Callable[[str], None]] = []
        # Members' collections that more than one controller follows, watched once.
        self.watches = SharedReflectors()

    def follow(self, name: str, watched: dict[str, W], start: Callable[[str, KubeClient], W]
               ) -> None:
        """Keep `watched[name]` (a controller's watches of one member) in step with member
        `name`: started with its client when it appears, its tasks cancelled when it goes or
        its client is replaced (started again with the new one)."""
        current = self.members.get(name)
        found = watched.get(name)
        if found is not None and (current is None or current.client is not found.client):
            for task in watched.pop(name).tasks:
                task.cancel()
            found = None
        if found is None and current is not None and current.client is not None:
            watched[name] = start(name, current.client)

    def unfollow(self, watched: dict[str, W], listener: Callable[[str], None]
                 ) -> asyncio.Future[list[Any]]:
        """Stop a controller's hearing of members: `listener` no longer called, every
        member's watches cancelled, all at once (a controller that is cancelled again while
        it stops must not leave any running); then the awaitable of their ends."""
        if listener in self.listeners:
            self.listeners.remove(listener)
        tasks = [task for found in watched.values() for task in found.tasks]
        for task in tasks:
            task.cancel()
        watched.clear()
        return asyncio.gather(*tasks, return_exceptions=True)

    def _notify(self, name: str) -> None:
        for listener in self.listeners:
            listener(name)

    async def run(self) -> None:
        reflector = Reflector(self.plane, path(CLUSTERS), self._on_cluster)
        watcher = asyncio.ensure_future(reflector.run())
        synced = asyncio.ensure_future(reflector.synced.wait())
        try:
            await asyncio.wait({watcher, synced}, return_when=asyncio.FIRST_COMPLETED)
            if watcher.done():
                watcher.result()  # it can only have failed
            self.synced.set()
            await watcher
        finally:
            watcher.cancel()
            synced.cancel()
            for name in list(self.members):
                await self._stop(name)

    async def _on_cluster(self, kind: str, cluster: Object) -> None:
        name = cluster["metadata"]["name"]
        current = self.members.get(name)
        if kind == "DELETED":
            await self._stop(name)
            return
        if current is not None and _identity(current.cluster) == _identity(cluster):
            placed = _placement(current.cluster) != _placement(cluster)
            current.cluster = cluster
            if placed:
                self._notify(name)
            return
        await self._stop(name)
        health, since = _health_from_status(cluster)
        member = Member(name, cluster, await self._client(cluster), health, since)
        self.members[name] = member
        member.task = asyncio.create_task(self._probe_loop(member), name=f"probe-{name}")
        self._notify(name)

    async def _client(self, cluster: Object) -> KubeClient | None:
        _, secret_name = _identity(cluster)
        try:
            secret = await self.plane.get(path(SECRETS, namespace=FEDERATION_NAMESPACE,
                                               name=secret_name))
        except KubeError as exc:
            log.warning("no credentials for member", cluster=cluster["metadata"]["name"],
                        secret=secret_name, error=str(exc))
            return None
        # One pool of requests per member, for probes and controllers alike (watches have
        # a pool of their own, a connection each): writes take at most 16
        # (propagation.member_concurrency), probes and reads the rest; a full pool would
        # make probes wait behind writes and fail.
        # Requests to a member give up after 10 s: a hung member must not hold a write (or a
        # slot of its connection pool) for long; watches have their own read timeout.
        return KubeClient(credentials_from_secret(secret), timeout=10.0, pool_size=64)

    async def _stop(self, name: str) -> None:
        member = self.members.pop(name, None)
        if member is None:
            return
        self._notify(name)
        for task in (member.task, member.publishing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if member.client is not None:
            await member.client.close()
        with contextlib.suppress(KeyError):
            metrics.CLUSTER_READY.remove(name)

    async def _probe_loop(self, member: Member) -> None:
        loop = asyncio.get_running_loop()
        bound = log.bind(cluster=member.name)
        next_at = loop.time()
        while True:
            started = loop.time()
            probe = await self._probe(member)
            metrics.PROBE_SECONDS.labels(member.name).observe(loop.time() - started)
            metrics.PROBES.labels(member.name, "ok" if probe.ok else probe.reason).inc()
            before = member.health.status
            changed = member.health.observe(probe, self.settings.thresholds)
            if member.health.status != before:
                member.transition_time = now_rfc3339()
            details_changed = False
            due = loop.time() - member.refreshed_at >= self.settings.capacity_period
            if member.ready and (member.health.status != before or due):
                details_changed = await self._refresh(member)
                member.refreshed_at = loop.time()
            metrics.CLUSTER_READY.labels(member.name).set(
                {"True": 1, "False": 0}.get(member.health.status, -1))
            if changed or details_changed:
                member.published = False
            if member.health.status != before:
                self._notify(member.name)
                member.unannounced = self.may_write()
            if ((not member.published or member.unannounced) and self.may_write()
                    and (member.publishing is None or member.publishing.done())):
                # Off the probe loop: a slow or absent plane (etcd down) delays what goes
                # to the plane, never the probes.
                member.publishing = asyncio.create_task(self._publish(member, bound))
            next_at += self.settings.period
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at = max(next_at, loop.time() - self.settings.period)

    async def _publish(self, member: Member, bound: Any) -> None:
        """The member's status into its Cluster, and an event for a change of readiness."""
        while not member.published and self.may_write():
            member.published = True  # a change meanwhile makes it False again: written anew
            if not await self._write_status(member, bound):
                member.published = False
                break
        if member.unannounced:
            member.unannounced = False
            await self._announce(member, bound)

    async def _probe(self, member: Member) -> Probe:
        if member.client is None:
            return Probe(False, "CredentialsMissing",
                         f"Secret {_identity(member.cluster)[1]} is missing in "
                         f"{FEDERATION_NAMESPACE}")
        try:
            answer = await member.client.request("GET", "/readyz",
                                                 timeout=self.settings.timeout)
        except Unreachable as exc:
            return Probe(False, "Unreachable", exc.message)
        except KubeError as exc:
            reason = {401: "Unauthorized", 403: "Forbidden"}.get(exc.code, "NotReady")
            return Probe(False, reason, f"/readyz answered {exc.code}: {exc.message}"[:300])
        if str(answer).strip() != "ok":
            return Probe(False, "NotReady", f"/readyz answered {str(answer)[:200]!r}")
        return Probe(True)

    async def _refresh(self, member: Member) -> bool:
        """Read version and capacity; True if either changed."""
        assert member.client is not None
        try:
            version = (await member.client.get("/version")).get("gitVersion")
            nodes = (await member.client.get(path(NODES))).get("items") or []
        except KubeError as exc:
            log.info("member details not read", cluster=member.name, error=str(exc))
            return False
        summary = capacity(nodes)
        changed = (version, summary) != (member.version, member.capacity)
        member.version, member.capacity = version, summary
        return changed

    async def _write_status(self, member: Member, bound: Any) -> bool:
        status: dict[str, Any] = {"conditions": [member.health.condition(
            member.transition_time)]}
        if member.version:
            status["kubernetesVersion"] = member.version
        if member.capacity is not None:
            status["capacity"] = member.capacity
        try:
            await self.plane.merge_patch(path(CLUSTERS, name=member.name, subresource="status"),
                                         {"status": status})
        except KubeError as exc:
            bound.warning("status not written", error=str(exc))
            return False
        return True

    async def _announce(self, member: Member, bound: Any) -> None:
        health = member.health
        if health.status == "True":
            bound.info("cluster ready")
            await self.recorder.record(member.cluster, "Normal", "ClusterReady",
                                       f"cluster {member.name} is Ready")
        else:
            bound.warning("cluster not ready", reason=health.reason, message=health.message)
            await self.recorder.record(member.cluster, "Warning", "ClusterNotReady",
                                       f"cluster {member.name} is not Ready: {health.reason}: "
                                       f"{health.message}")

