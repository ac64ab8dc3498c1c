"""Federated events: what members say about the objects federator propagated (a Deployment,
its ReplicaSets and Pods) is copied into the plane, re-pointed at the plane object, so that
`kubectl describe` and `kubectl get events` in the federation show each cluster's story.

Repeats coalesce into one plane event (see domain.member_events); each member has a token
bucket, and what waits for it is bounded, so that a storm in one member cannot flood the
plane: past the bound, new events of that member are dropped, counted and reported."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog

from federator import metrics
from federator.clusters.registry import Registry
from federator.domain import member_events as rules
from federator.domain.member_events import TokenBucket, Unknown
from federator.domain.naming import CLUSTER_LABEL, MANAGED_BY
from federator.kube.client import KubeClient, KubeError, Object
from federator.kube.events import EventRecorder
from federator.kube.resources import EVENTS, KINDS, path
from federator.kube.watching import Handler, Reflector

log = structlog.get_logger(__name__)

Key = tuple[str, str]  # (namespace, name) of a plane event
DEPLOYMENTS = KINDS[("apps/v1", "Deployment")]
REPLICASETS = KINDS[("apps/v1", "ReplicaSet")]
MAX_PARKED = 1000  # events per member waiting for the object they name to be seen


@dataclass(frozen=True)
class EventSettings:
    rate: float = 20.0  # plane event writes per second per member, on average
    burst: int = 200  # and at once
    max_pending: int = 2000  # plane events waiting per member; past that, new ones dropped


@dataclass
class _Copy:
    """One plane event: the member events it counts, and whether the plane holds it."""

    sources: dict[str, int]
    first: str
    last: str
    stored: bool
    body: Object | None = None  # what to write next


@dataclass
class _Member:
    cluster: str
    client: KubeClient
    deployments: Reflector
    replicasets: Reflector
    events: Reflector | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    parked: OrderedDict[tuple[str, str, str], list[Object]] = field(
        default_factory=OrderedDict)
    federated: asyncio.Event = field(default_factory=asyncio.Event)  # holds a copy of ours
    pending: OrderedDict[Key, None] = field(default_factory=OrderedDict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0  # since the backlog last emptied


class EventFederator:
    """Copies the events about objects in the shards it holds (`gain`, `drop`); with no
    `shard_of` there is one shard, held from the start."""

    def __init__(self, plane: KubeClient, registry: Registry, federation: str,
                 recorder: EventRecorder, instance: str,
                 settings: EventSettings | None = None,
                 shard_of: Callable[[str, str, str], int] | None = None) -> None:
        self.shard_of = shard_of or (lambda kind, namespace, name: 0)
        self.shards: frozenset[int] = frozenset({0} if shard_of is None else ())
        self.plane = plane
        self.registry = registry
        self.federation = federation
        self.recorder = recorder
        self.instance = instance
        self.settings = settings or EventSettings()
        self.stored = Reflector(plane, path(EVENTS), self._on_stored,
                                label_selector=CLUSTER_LABEL)
        self.copies: dict[Key, _Copy] = {}
        self.members: dict[str, _Member] = {}
        self._background: set[asyncio.Future[None]] = set()

    async def run(self) -> None:
        watcher = asyncio.ensure_future(self.stored.run())
        try:
            await self.registry.synced.wait()
            await self.stored.synced.wait()  # what was written before: nothing twice
            self.registry.listeners.append(self._on_cluster)
            for name in list(self.registry.members):
                self._on_cluster(name)
            await watcher
        finally:
            watcher.cancel()
            stopped = self.registry.unfollow(self.members, self._on_cluster)
            await asyncio.gather(watcher, stopped, return_exceptions=True)

    # shards ------------------------------------------------------------------------------
    def gain(self, shards: frozenset[int]) -> None:
        """Shards taken: every member's events are listed again (those about objects of
        these shards were passed over; what the plane holds already is not written twice)."""
        self.shards |= shards
        for member in self.members.values():
            if member.tasks:
                member.tasks[-1].cancel()
                member.tasks[-1] = asyncio.create_task(self._follow(member))

    def drop(self, shards: frozenset[int]) -> None:
        self.shards -= shards

    def _owns(self, namespace: str) -> bool:
        """Whether events about objects of this namespace are this replica's to copy."""
        return self.shard_of("", namespace, "") in self.shards

    async def settled(self, shards: frozenset[int]) -> None:
        """Nothing to wait for: each copy is written whole, and what waits is passed over."""

    # members -----------------------------------------------------------------------------
    def _on_cluster(self, name: str) -> None:
        """A member joined, left, or changed: watch its events with its current client."""
        self.registry.follow(name, self.members, self._watch)

    def _watch(self, cluster: str, client: KubeClient) -> _Member:
        def unpark(owner_kind: str) -> Handler:
            async def on_owner(kind: str, obj: Object) -> None:
                meta = obj["metadata"]
                if (meta.get("labels") or {}).get(MANAGED_BY) == self.federation:
                    member.federated.set()
                parked = member.parked.pop((owner_kind, meta.get("namespace", ""),
                                            meta["name"]), [])
                for event in parked if kind != "DELETED" else []:
                    self._on_member_event(member, event)
            return on_owner

        member = _Member(cluster, client,
                         Reflector(client, path(DEPLOYMENTS), unpark("Deployment"),
                                   metadata_only=True),
                         Reflector(client, path(REPLICASETS), unpark("ReplicaSet"),
                                   metadata_only=True))
        member.tasks = [asyncio.ensure_future(member.deployments.run()),
                        asyncio.ensure_future(member.replicasets.run()),
                        asyncio.ensure_future(self._flush(member)),
                        asyncio.ensure_future(self._follow(member))]  # last: gain renews it
        return member

    async def _follow(self, member: _Member) -> None:
        """Once its Deployments and ReplicaSets are listed and it holds one of federator's,
        follow the member's events (a member with none costs no watch of its events)."""
        await member.deployments.synced.wait()
        await member.replicasets.synced.wait()
        await member.federated.wait()

        async def on_event(kind: str, event: Object) -> None:
            if kind != "DELETED":
                self._on_member_event(member, event)

        member.events = Reflector(member.client, path(EVENTS), on_event, keep=False)
        await member.events.run()

    # events ------------------------------------------------------------------------------
    def _on_member_event(self, member: _Member, event: Object) -> None:
        to = rules.target(event, member.deployments.objects,
                          member.replicasets.objects, self.federation)
        if isinstance(to, Unknown):
            self._park(member, to, event)
            return
        if to is None or not to.uid or not self._owns(to.namespace):
            return
        key = (to.namespace, rules.copy_name(member.cluster, event, to))
        count, first, last = rules.occurrence(event)
        uid = str(event["metadata"].get("uid", ""))
        copy = self.copies.get(key)
        if copy is None:
            if self._full(member, key):
                return
            copy = self.copies[key] = _Copy({}, first, last, stored=False)
        sources = rules.add_source(copy.sources, uid, count)
        first, last = min(first, copy.first), max(last, copy.last)
        if copy.stored and (sources, first, last) == (copy.sources, copy.first, copy.last):
            return  # the plane says this already (a relist, or a restart)
        copy.sources, copy.first, copy.last = sources, first, last
        copy.body = rules.plane_event(member.cluster, event, to, sources=sources, first=first,
                                      last=last, instance=self.instance)
        if key not in member.pending:
            member.pending[key] = None
            member.wake.set()

    def _park(self, member: _Member, unknown: Unknown, event: Object) -> None:
        member.parked.setdefault((unknown.kind, unknown.namespace, unknown.name), []).append(
            event)
        while len(member.parked) > MAX_PARKED:  # names that never show up: forget the oldest
            member.parked.popitem(last=False)

    def _full(self, member: _Member, key: Key) -> bool:
        """Whether a new plane event of this member must be dropped: too many wait."""
        if len(member.pending) < self.settings.max_pending:
            return False
        member.dropped += 1
        metrics.MEMBER_EVENTS.labels(member.cluster, "dropped").inc()
        if member.dropped == 1:
            log.warning("member events dropped: too many waiting", cluster=member.cluster,
                        waiting=len(member.pending), rate=self.settings.rate)
            cluster = self.registry.members.get(member.cluster)
            if cluster is not None:
                self._later(self.recorder.record(
                    cluster.cluster, "Warning", "EventsDropped",
                    f"more than {self.settings.max_pending} events of cluster "
                    f"{member.cluster} wait to be copied into the federation (at most "
                    f"{self.settings.rate:g}/s); new ones are dropped until they are through"))
        return True

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _on_stored(self, kind: str, stored: Object) -> None:
        key = (stored["metadata"].get("namespace", ""), stored["metadata"]["name"])
        if kind == "DELETED":  # expired (the plane's event TTL) or removed by someone
            self.copies.pop(key, None)
            return
        if key in self.copies:
            self.copies[key].stored = True
            return
        self.copies[key] = _Copy(rules.read_sources(stored),
                                 str(stored.get("firstTimestamp") or ""),
                                 str(stored.get("lastTimestamp") or ""), stored=True)

    # writing -----------------------------------------------------------------------------
    async def _flush(self, member: _Member) -> None:
        bucket = TokenBucket(self.settings.rate, self.settings.burst, time.monotonic())
        while True:
            await member.wake.wait()
            member.wake.clear()
            while member.pending:
                wait = bucket.take(time.monotonic())
                if wait:
                    await asyncio.sleep(wait)
                    continue
                key, _ = member.pending.popitem(last=False)
                copy = self.copies.get(key)
                if copy is not None and copy.body is not None and self._owns(key[0]):
                    body, copy.body = copy.body, None
                    await self._write(member.cluster, key, copy, body)
            if member.dropped:
                log.info("member events flowing again", cluster=member.cluster,
                         dropped=member.dropped)
                member.dropped = 0

    async def _write(self, cluster: str, key: Key, copy: _Copy, body: Object) -> None:
        url = path(EVENTS, namespace=key[0], name=key[1])
        change = {"metadata": {"annotations": body["metadata"]["annotations"]},
                  "count": body["count"], "firstTimestamp": body["firstTimestamp"],
                  "lastTimestamp": body["lastTimestamp"]}
        try:
            try:
                if copy.stored:
                    self._remember(await self.plane.merge_patch(url, change))
                else:
                    self._remember(await self.plane.create(path(EVENTS, namespace=key[0]),
                                                           body))
            except KubeError as exc:
                if exc.code == 409:  # written before this federator knew: bring it up to date
                    self._remember(await self.plane.merge_patch(url, change))
                elif exc.not_found and copy.stored:  # expired meanwhile: write it anew
                    self._remember(await self.plane.create(path(EVENTS, namespace=key[0]),
                                                           body))
                else:
                    raise
        except KubeError as exc:
            metrics.MEMBER_EVENTS.labels(cluster, "failed").inc()
            log.warning("member event not copied", cluster=cluster, namespace=key[0],
                        event=key[1], reason=body["reason"], error=str(exc))
            return
        copy.stored = True
        metrics.MEMBER_EVENTS.labels(cluster, "copied").inc()

    def _remember(self, written: Any) -> None:
        if isinstance(written, dict) and written.get("metadata"):
            self.stored.remember(written)
