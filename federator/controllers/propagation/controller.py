"""The propagation controller: the queue of plane objects and what puts them on it (the
plane's objects, FederationPolicies, members' copies, their pending pods, the clusters'
readiness), and reconcile, which decides one object's placement and spread (the same
`domain.decision.decide` that `/plan` answers with) and has every member's copy written,
removed or deleted through the other modules of this package."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from federator import metrics
from federator.clusters.registry import Registry
from federator.domain import dependencies, propagation
from federator.domain import policy as policy_rules
from federator.domain import replicas as replica_rules
from federator.domain.decision import Cluster, decide, targets_of
from federator.domain.preferences import PreferencesError
from federator.domain.propagation import (
    FINALIZER,
    ORPHAN_FINALIZER,
    WORKLOADS,
    PlacementError,
)
from federator.kube.client import KubeClient, KubeError, Object
from federator.kube.events import EventRecorder
from federator.kube.resources import KINDS, path
from federator.kube.watching import Reflector

from ..queue import WorkQueue
from .deletion import Deleter
from .members import Members, MemberView
from .memory import Key, Memories
from .overflow import Overflow
from .plane import CRD_KIND, Plane, key_of
from .reporting import Recall, Reporter
from .writing import Job, Writer

log = structlog.get_logger(__name__)

POLICIES = KINDS[("federator.io/v1alpha1", "FederationPolicy")]
WAITING_RETRY = 2.0  # a member that does not serve a kind yet is tried again this soon
ERROR_RETRY = 5.0  # a member's write that failed is tried again this soon


@dataclass(frozen=True)
class PropagationSettings:
    workers: int = 16
    member_concurrency: int = 16
    deletion_timeout: float = 60.0  # an unreachable member holds a deletion this long
    unschedulable_after: float = 60.0  # pods unschedulable this long mean the member is full
    capacity_ttl: float = 300.0  # then a full member is offered its share again
    member_wait: float = 1.0  # a member's write that takes longer goes on alone
    exclude: tuple[str, ...] = ()  # resources kept in the plane besides the cluster-local


class Propagator:
    """Reconciles the objects of the shards it holds (`gain`, `drop`); with no `shard_of`
    there is one shard, held from the start."""

    def __init__(self, plane: KubeClient, registry: Registry, federation: str,
                 recorder: EventRecorder, settings: PropagationSettings | None = None,
                 shard_of: Callable[[str, str, str], int] | None = None) -> None:
        self.shard_of = shard_of or (lambda kind, namespace, name: 0)
        self.sharded = shard_of is not None
        self.shards: frozenset[int] = frozenset({0} if shard_of is None else ())
        self.registry = registry
        self.federation = federation
        self.settings = settings = settings or PropagationSettings()
        self.queue: WorkQueue[Key] = WorkQueue(waited=metrics.QUEUE_WAIT.observe)
        self.plane = Plane(plane, settings.exclude, self._on_plane, self._kind_added,
                           self._kind_dropped)
        self.policies = Reflector(plane, path(POLICIES), self._on_policy)
        self.members = Members(registry)
        self.memories = Memories(self.plane.holds)
        self.recall = Recall(plane)
        self.writer = Writer(self.plane, self.members, self.memories, federation,
                             settings.member_wait, self.queue.add, self.recall)
        self.deleter = Deleter(self.plane, self.members, self.memories, self.writer, recorder,
                               federation, settings.deletion_timeout)
        self.overflow = Overflow(self.members, self.memories, recorder,
                                 settings.unschedulable_after, settings.capacity_ttl)
        self.reporter = Reporter(self.plane, self.members, self.memories, recorder)
        self.epoch = 0  # moves when clusters or policies change
        self._following = False  # member views follow the registry once policies are listed
        # (cluster, kind) swept since listed and Ready (again: a member's return sweeps)
        self.swept: set[tuple[str, str]] = set()
        # Workloads queued as urgent after clusters or policies changed, not yet decided.
        self.moving: set[Key] = set()
        self.moving_since = 0.0
        self.moving_cause = ""
        self.moved = 0

    # shards ------------------------------------------------------------------------------
    def _owns(self, key: Key) -> bool:
        return self.shard_of(*key) in self.shards

    def gain(self, shards: frozenset[int]) -> None:
        """Shards taken: their objects are decided afresh (another replica may have left
        them half done), and copies whose plane object is gone are swept."""
        self.shards |= shards
        self.recall.start()
        for obj in self.plane.objects():
            key = key_of(obj)
            if self.shard_of(*key) in shards:
                memory = self.memories.peek(key)
                if memory is not None:
                    memory.settled = None
                self.queue.add(key)
        self.swept.clear()
        for cluster, view in self.members.views.items():
            for kind in list(view.reflectors):
                self._sweep_once(cluster, view, kind)

    def drop(self, shards: frozenset[int]) -> None:
        """Shards given up or lost: nothing of theirs is handed to a worker any more, and
        their writes that went on alone are cancelled (the new holder writes them again)."""
        self.shards -= shards
        self.writer.stop(lambda key: self.shard_of(*key) in shards)

    async def settled(self, shards: frozenset[int]) -> None:
        """Returns once no reconcile of an object in `shards` runs."""
        await self.queue.finished(lambda key: self.shard_of(*key) in shards)

    def learned(self, key: Key) -> dict[str, int]:
        """What overflow has taught of members' room for a workload (for /plan)."""
        return self.overflow.learned(key)

    # kinds -------------------------------------------------------------------------------
    # A kind is watched in a member once the plane holds an object of it to propagate, or
    # once the member is found to hold copies of it (left by objects deleted while federator
    # was away: swept once listed). A member with nothing federated costs no watch per kind.
    def _kind_added(self, kind: str) -> None:
        for cluster, view in self.members.views.items():
            view.tasks.append(asyncio.create_task(self._probe(cluster, view, [kind])))

    def _use(self, kind: str) -> None:
        """The plane holds an object of this kind to propagate: watch it in every member."""
        for cluster, view in self.members.views.items():
            if kind not in view.reflectors:
                self._watch_kind(cluster, view, kind)

    def _used(self) -> set[str]:
        return {key_of(obj)[0] for obj in self.plane.objects() if propagation.propagated(obj)}

    async def _probe(self, cluster: str, view: MemberView, kinds: list[str]) -> None:
        """Watch those of `kinds` that the member holds copies of (8 lists at a time)."""
        limit = asyncio.Semaphore(8)

        async def one(kind: str) -> None:
            async with limit:
                resource = self.plane.resources.get(kind)
                if (resource is not None and kind not in view.reflectors
                        and await view.holds_copies(resource)
                        and kind not in view.reflectors and kind in self.plane.resources):
                    self._watch_kind(cluster, view, kind)

        await asyncio.gather(*(one(kind) for kind in kinds))

    def _kind_dropped(self, kind: str) -> None:
        for cluster, view in self.members.views.items():
            view.drop(kind)
            self.swept.discard((cluster, kind))

    def _watch_kind(self, cluster: str, view: MemberView, kind: str) -> None:
        if kind in WORKLOADS:
            view.follow_pending()
        view.add(kind, self.plane.resources[kind], functools.partial(self._on_member, cluster),
                 functools.partial(self._kind_listed, cluster, kind))

    # wiring ------------------------------------------------------------------------------
    async def _on_plane(self, event: str, obj: Object) -> None:
        key = key_of(obj)
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and ORPHAN_FINALIZER in (meta.get("finalizers") or []):
            self.memories.of(key).orphaned = True  # seen before the plane's GC lifts it
        if key[0] == CRD_KIND:
            self.plane.rediscover.set()
        if event != "DELETED" and propagation.propagated(obj):
            self._use(key[0])
        if key[0] in dependencies.USING_KINDS:
            self._index_uses(key, frozenset() if event == "DELETED"
                             else dependencies.references(obj))
        self.queue.add(key)

    def _index_uses(self, workload: Key, uses: frozenset[dependencies.Reference]) -> None:
        """Remember what a workload uses; what it used or uses now is decided again (its
        placement may have changed too)."""
        memory = self.memories.peek(workload)
        before = memory.uses if memory is not None else frozenset()
        if uses or before:
            self.memories.of(workload).uses = uses
        for used_kind, name in before | uses:
            used = (used_kind, workload[1], name)
            users = self.memories.of(used).users
            if (used_kind, name) in uses:
                users.add(workload)
            else:
                users.discard(workload)
            self.memories.tidy(used)
            if used_kind in self.plane.resources:
                self.queue.add(used)
        self.memories.tidy(workload)

    def _needed_by(self, key: Key, obj: Object, joined: dict[str, Any]) -> dict[str, str]:
        """Where the workloads that use a ConfigMap, Secret, ServiceAccount or claim are
        placed: cluster -> the first such workload (none if the object opts out)."""
        memory = self.memories.peek(key)
        if memory is None or not memory.users or not dependencies.follows(obj):
            return {}
        found: dict[str, str] = {}
        for user in sorted(memory.users):
            workload = self.plane.get(user)
            if (workload is None or not propagation.propagated(workload)
                    or workload["metadata"].get("deletionTimestamp")):
                continue
            policy = policy_rules.governing(self.policies.objects.values(), workload)
            try:
                for cluster in targets_of(workload, policy, joined):
                    found.setdefault(cluster, f"{workload['kind']} {user[2]}")
            except PlacementError:
                continue  # the workload's own problem, reported on it
        return found

    def _spread(self, kind: str) -> bool:
        """Whether a kind's replicas are spread (its objects move when members change)."""
        return replica_rules.field_of(kind, self.plane.scale(kind)) is not None

    def _decide_again(self, objects: list[Object], cause: str, *,
                      spread_only: bool = False) -> None:
        """Queue objects to be decided again, those whose replicas are spread as urgent (no
        other object is handed out before they are done), the others too unless
        `spread_only`; log, once the urgent ones are done, how many and how long it took."""
        spread = {kind for kind in self.plane.resources if self._spread(kind)}
        keys = [key for key in map(key_of, objects) if self._owns(key)]
        urgent = [key for key in keys if key[0] in spread]
        for key in urgent:
            self.queue.add(key, urgent=True)
        if not spread_only:
            for key in keys:
                self.queue.add(key)
        if urgent:
            if not self.moving:
                self.moving_since = asyncio.get_running_loop().time()
            self.moving.update(urgent)
            self.moving_cause = cause

    def _decided(self, key: Key) -> None:
        if key not in self.moving:
            return
        self.moving.discard(key)
        self.moved += 1
        if not self.moving:
            took = asyncio.get_running_loop().time() - self.moving_since
            log.info("workloads decided again after clusters changed", cause=self.moving_cause,
                     workloads=self.moved, seconds=round(took, 3))
            self.moved = 0

    async def _on_policy(self, event: str, policy: Object) -> None:
        """A policy changed: every object of its namespace may be governed differently."""
        namespace = policy["metadata"].get("namespace")
        self.epoch += 1
        self._decide_again([obj for obj in self.plane.objects()
                            if policy_rules.policy_namespace(obj) == namespace],
                           f"policy {namespace}/{policy['metadata'].get('name')}")

    async def _on_member(self, cluster: str, event: str, obj: Object) -> None:
        key = key_of(obj)
        self.queue.add(key)
        if key[0] == CRD_KIND:
            # A definition arrived there: its custom resources may be served now.
            spec = obj.get("spec") or {}
            plural = (spec.get("names") or {}).get("plural")
            view = self.members.views.get(cluster)
            for custom, resource in self.plane.resources.items():
                if (resource.group, resource.plural) == (spec.get("group"), plural) and view:
                    reflector = view.reflectors.get(custom)
                    if reflector is not None and reflector.missing:
                        reflector.wake()

    async def _on_pending(self, event: str, pod: Object) -> None:
        """A pending pod changed: the workloads it belongs to may overflow."""
        namespace = pod["metadata"].get("namespace", "")
        labels = pod["metadata"].get("labels") or {}
        for workload in WORKLOADS:
            view = self.plane.views.get(workload)
            for (ns, name), obj in list(view.objects.items() if view else ()):
                selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels")
                if ns == namespace and selector and selector.items() <= labels.items():
                    self.queue.add((workload, ns, name))

    def _on_cluster(self, name: str) -> None:
        """A member joined, left, changed readiness or labels: every object may move. Not
        when it turns not Ready: then only the objects whose replicas are spread are decided
        again (nothing is written to a member that is not Ready, and where the others are
        placed does not depend on readiness; the Cluster says it is not Ready)."""
        if self._following:
            self.registry.follow(name, self.members.views, self._watch)
        member, view = self.registry.members.get(name), self.members.views.get(name)
        if member is None:
            self.memories.forget_cluster(name)
        if member is None or not member.ready:
            self.swept = {(c, k) for c, k in self.swept if c != name}
        elif view is not None:
            for kind in list(view.reflectors):
                self._sweep_once(name, view, kind)
        self.epoch += 1
        state = "gone" if member is None else "Ready" if member.ready else "not Ready"
        self._decide_again(self.plane.objects(), f"cluster {name} {state}",
                           spread_only=member is not None and not member.ready)

    def _sweep_once(self, cluster: str, view: MemberView, kind: str) -> None:
        """Sweep a kind's copies in a member once they are listed and it is Ready, and again
        each time it is Ready again."""
        if (self.members.ready(cluster) and view.listed(kind)
                and (cluster, kind) not in self.swept):
            self.swept.add((cluster, kind))
            view.tasks.append(asyncio.create_task(self.deleter.sweep(cluster, view, kind,
                                                                     self._owns)))

    def _watch(self, name: str, client: KubeClient) -> MemberView:
        view = MemberView(client, self.federation, self._on_pending,
                          self.settings.member_concurrency, self.registry.watches)
        used = self._used()
        for kind in self.plane.resources:
            if kind in used:
                self._watch_kind(name, view, kind)
        view.tasks.append(asyncio.create_task(self._probe(
            name, view, [kind for kind in self.plane.resources if kind not in used])))
        return view

    async def _kind_listed(self, cluster: str, kind: str) -> None:
        """A kind's copies in a member are listed: its objects may be written there."""
        log.info("member copies listed", cluster=cluster, kind=kind)
        view, plane_view = self.members.views.get(cluster), self.plane.views.get(kind)
        if view is None or plane_view is None:
            return
        self._sweep_once(cluster, view, kind)
        for obj in plane_view.objects.values():
            self.queue.add(key_of(obj))

    async def run(self) -> None:
        self.registry.listeners.append(self._on_cluster)
        tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(self.policies.run())]
        try:
            delay = 0.5
            while True:  # nothing is federated before the kinds are known
                try:
                    await self.plane.discover()
                    break
                except KubeError as exc:
                    log.warning("discovery failed", error=str(exc), retry_in=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
            tasks.append(asyncio.ensure_future(self.plane.following()))
            await self.registry.synced.wait()
            await self.policies.synced.wait()
            self._following = True
            if not self.sharded:
                self.recall.start()  # one shard, held from the start: no gain to start it
            for name in list(self.registry.members):
                self.registry.follow(name, self.members.views, self._watch)
            tasks += [asyncio.ensure_future(self._worker())
                      for _ in range(self.settings.workers)]
            await asyncio.gather(*tasks)
        finally:
            # Everything stops at once, before the first await: a controller cancelled again
            # while it stops (a lost lease) must leave no watch, sweep or write running.
            self._following = False
            stopped = self.registry.unfollow(self.members.views, self._on_cluster)
            tasks += self.plane.stop()
            for task in tasks:
                task.cancel()
            writes = self.writer.stop()
            self.recall.stop()
            self.queue.close()
            await asyncio.gather(*tasks, *writes, stopped, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                if not self._owns(key):
                    self.queue.forget(key)
                    continue  # another replica's (done at once: finally)
                metrics.RECONCILES.inc()
                with metrics.RECONCILE_SECONDS.time():
                    again = await self.reconcile(key)
                self._decided(key)
                self.queue.forget(key)
                if again is not None:
                    self.queue.add_after(key, again)
            except KubeError as exc:
                delay = self.queue.retry(key)
                log.warning("reconcile failed", kind=key[0], namespace=key[1], object=key[2],
                            error=str(exc), retry_in=round(delay, 2))
            except Exception:
                delay = self.queue.retry(key)
                log.exception("reconcile crashed", kind=key[0], namespace=key[1],
                              object=key[2], retry_in=round(delay, 2))
            finally:
                self.queue.done(key)

    # reconcile ---------------------------------------------------------------------------
    async def reconcile(self, key: Key) -> float | None:
        """Make the members match one plane object. Returns a delay to look again, if any."""
        obj = self.plane.get(key)
        if obj is None:
            await self.deleter.gone(key)
            return None
        if not propagation.propagated(obj):
            return None
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return await self.deleter.delete(key, obj)
        finalizing = None
        if FINALIZER not in (meta.get("finalizers") or []):
            # Added while the copies are written (one round trip less per new object); should
            # the object be deleted before it lands, reconcile finds it gone and removes them.
            finalizing = asyncio.ensure_future(self.plane.set_finalizers(
                obj, [*(meta.get("finalizers") or []), FINALIZER]))
        try:
            return await self._propagate(key, obj, finalizing)
        finally:
            if finalizing is not None:  # returned early: let it land all the same
                await asyncio.gather(finalizing, return_exceptions=True)

    async def _propagate(self, key: Key, obj: Object,
                         finalizing: asyncio.Future[Object | None] | None) -> float | None:
        kind = key[0]
        holder = self.plane.get(("Namespace", "", key[1])) if key[1] else None
        if holder is not None and holder["metadata"].get("deletionTimestamp"):
            # Its namespace is going (its objects are deleted next): nothing is written, or
            # the member's namespace, deleted already, would be made again for it.
            return None
        joined = {n: m.cluster["metadata"].get("labels") or {}
                  for n, m in self.registry.members.items()}
        needed = self._needed_by(key, obj, joined)
        summed = self.plane.summed(kind)
        memory = self.memories.of(key)
        if not summed and memory.settled == self._signature(key, obj, needed):
            return None  # nothing it depends on changed since it was last made right
        clusters = {n: Cluster(labels, self.members.writable(n, kind))
                    for n, labels in joined.items()}
        policy = policy_rules.governing(self.policies.objects.values(), obj)
        try:
            writable = [n for n, cluster in clusters.items() if cluster.ready]
            workload = kind in WORKLOADS
            scale = self.plane.scale(kind)
            field = replica_rules.field_of(kind, scale)
            decision = decide(obj, policy, clusters,
                              capacity=(self.overflow.capacity(key, obj, writable)
                                        if workload else None),
                              current=self._current(key, writable, field) if field else None,
                              needed_by=needed, scale=scale)
            targets, replicas = decision.targets, decision.replicas
            ready = [c for c in targets if clusters[c].ready]
        except (PlacementError, PreferencesError) as exc:
            await self.reporter.invalid(key, obj, str(exc))
            return None
        memory.reported = None  # valid (again): a later problem is announced anew
        listing = {c for c in targets if self.members.listing(c, kind)}
        if listing and field is not None:
            # Where replicas go depends on every Ready member's copies: decided once they
            # are listed (the listing brings the object back). Other kinds are written to
            # the members whose copies are known, and wait for the others.
            return None
        jobs: dict[str, Job] = {
            c: functools.partial(self.writer.sync, c, key, obj,
                                 replicas.get(c) if replicas else None, field,
                                 (decision.completions or {}).get(c),
                                 policy_rules.overrides(policy, c, joined[c]) if policy else [])
            for c in ready}
        jobs.update({c: functools.partial(self.writer.remove, c, key)
                     for c in sorted(set(self.members.views) - set(targets))
                     if self.members.writable(c, kind)})
        outcomes, waiting = await self.writer.write(key, jobs)
        errors = {c: o.error for c, o in outcomes.items() if o.error and c in ready}
        await self.reporter.announce(key, obj, [o.action for o in outcomes.values() if o.action])
        waits = {c: o.waiting for c, o in outcomes.items() if o.waiting and c in ready}
        waits.update({c: "its copies of this kind are being listed" for c in listing})
        await self.reporter.report(key, obj, targets, ready, replicas, errors, waits)
        await self.overflow.announce(key, obj, ready)
        if finalizing is not None:
            patched = await finalizing
            if patched is None:
                return None  # changed or gone meanwhile: its watch event brings it back
            obj = patched
        if not summed and not errors and not waiting and not waits:
            memory.settled = self._signature(key, obj, needed)
        delays = [d for d in (ERROR_RETRY if errors else None,
                              WAITING_RETRY if waits else None, memory.recheck)
                  if d is not None]
        return min(delays) if delays else None

    def _signature(self, key: Key, obj: Object, needed: dict[str, str]) -> tuple[Any, ...]:
        """What reconciling a config object depends on: its version, its copies' versions,
        which members are writable, the epoch of clusters and policies, and where the
        workloads that use it are placed."""
        copies = []
        for cluster, view in sorted(self.members.views.items()):
            copy = view.copy(*key)
            copies.append((cluster, self.members.writable(cluster, key[0]),
                           copy["metadata"].get("resourceVersion") if copy else None))
        return (obj["metadata"].get("resourceVersion"), self.epoch, tuple(copies),
                tuple(sorted(needed)))

    def _current(self, key: Key, writable: list[str], field: replica_rules.ReplicaField
                 ) -> dict[str, int]:
        """Replicas each writable member's copy of a workload asks for now."""
        current = {}
        for cluster in writable:
            copy = self.members.views[cluster].copy(*key)
            if copy is not None:
                current[cluster] = replica_rules.count(copy, field)
        return current
