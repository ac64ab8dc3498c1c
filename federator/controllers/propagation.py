"""Propagation: every federated object in the plane (of every kind the plane serves, bar the
cluster-local ones: `domain.kinds`) is made to exist, as its member copy, in each Ready member
it is placed in; workloads spread their replicas; the members' copies are watched so that
drift is undone and status flows back; deletion goes through a finalizer so that member
copies are removed (or released) first. The kinds follow the plane's discovery, read again
whenever a CustomResourceDefinition changes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from federator.clusters.registry import Registry
from federator.domain import dependencies, kinds, propagation
from federator.domain import policy as policy_rules
from federator.domain import replicas as replica_rules
from federator.domain.capacity import overflow
from federator.domain.decision import Cluster, decide, targets_of
from federator.domain.naming import FEDERATION_NAMESPACE, MANAGED_BY, PLANE_UID
from federator.domain.objects import contains, difference
from federator.domain.overrides import PatchError, apply_patch
from federator.domain.preferences import PreferencesError
from federator.domain.propagation import (
    ADOPT_ANNOTATION,
    CLUSTER_STATUS,
    FINALIZER,
    ORPHAN_FINALIZER,
    STATUS_KINDS,
    WORKLOADS,
    PlacementError,
    group_kind_of,
    managed_by,
    member_copy,
)
from federator.domain.status import MemberState, aggregate, aggregate_job, aggregate_scaled
from federator.kube.client import KubeClient, KubeError, Object
from federator.kube.discovery import discover
from federator.kube.events import EventRecorder
from federator.kube.resources import KINDS, Resource, path
from federator.kube.watching import METADATA, Handler, Reflector

from .queue import WorkQueue

log = structlog.get_logger(__name__)

Key = tuple[str, str, str]  # (kind with its group: Deployment.apps, namespace, name)
NAMESPACES = KINDS[("v1", "Namespace")]
POLICIES = KINDS[("federator.io/v1alpha1", "FederationPolicy")]
CRD_KIND = "CustomResourceDefinition.apiextensions.k8s.io"
DISCOVERY_PERIOD = 60.0  # discovery is read again this often (and whenever a CRD changes)
WAITING_RETRY = 2.0  # a member that does not serve a kind yet is tried again this soon


@dataclass(frozen=True)
class Outcome:
    """What writing one member's copy came to: an error to report, or an action done
    (reason, what was done, cluster), or neither (it was right already)."""

    error: str | None = None
    action: tuple[str, str, str] | None = None
    waiting: str | None = None  # not written yet, and why: no failure (a CRD on its way)


@dataclass(frozen=True)
class PropagationSettings:
    workers: int = 16
    member_concurrency: int = 16
    deletion_timeout: float = 60.0  # an unreachable member holds a deletion this long
    unschedulable_after: float = 60.0  # pods unschedulable this long mean the member is full
    capacity_ttl: float = 300.0  # then a full member is offered its share again
    member_wait: float = 1.0  # a member's write that takes longer goes on alone
    exclude: tuple[str, ...] = ()  # resources kept in the plane besides the cluster-local


def _key(obj: Object) -> Key:
    meta = obj["metadata"]
    return (group_kind_of(obj), meta.get("namespace", ""), meta["name"])


def _settled(copy: Object) -> bool:
    """Whether a member's controller has acted on the copy's current spec: only then do its
    pending pods say anything about room (not while a scale-down is still on its way)."""
    status = copy.get("status") or {}
    return (status.get("observedGeneration") == copy["metadata"].get("generation")
            and status.get("replicas") == (copy.get("spec") or {}).get("replicas"))


def _holds(actual: Object, status: Object) -> bool:
    """Whether a stored status already says `status`, a zero count being the same as none
    (the apiserver does not store zero counts)."""
    return all(actual.get(key, 0) == value if value == 0 else contains(actual.get(key), value)
               for key, value in status.items())


def _content(obj: Object) -> str:
    """What a copy holds that federator writes: all but its status and the metadata the
    server keeps (versions, managed fields)."""
    meta = obj.get("metadata") or {}
    return json.dumps({**{k: v for k, v in obj.items() if k not in ("status", "metadata")},
                       "labels": meta.get("labels"), "annotations": meta.get("annotations")},
                      sort_keys=True)


def _outcome(task: asyncio.Future[Outcome], cluster: str, key: Key) -> Outcome:
    """What a finished write came to; a crash of it is logged and reported as an error."""
    error = task.exception()
    if error is None:
        return task.result()
    log.error("write crashed", cluster=cluster, kind=key[0], namespace=key[1], object=key[2],
              exc_info=error)
    return Outcome(error="internal error; federator's log has the details")


class _MemberView:
    """federator's copies in one member, one watch per federated kind; and what is known of
    its namespaces."""

    def __init__(self, client: KubeClient, federation: str, on_pending: Handler,
                 concurrency: int) -> None:
        self.client = client
        self.federation = federation
        self.reflectors: dict[str, Reflector] = {}
        self.watching: dict[str, asyncio.Task[None]] = {}
        self.pending = Reflector(self.client, path(KINDS[("v1", "Pod")]), on_pending,
                                 field_selector="status.phase=Pending")
        self.tasks: list[asyncio.Task[None]] = [asyncio.create_task(self.pending.run())]
        self.limit = asyncio.Semaphore(concurrency)
        self.namespaces: set[str] = set()  # known to exist there
        self.fresh: set[str] = set()  # made by federator: what is in them is federator's

    def add(self, kind: str, resource: Resource, on_change: Handler,
            listed: Callable[[], Awaitable[None]]) -> None:
        """Watch federator's copies of a kind. A kind federator may not list there (a member
        joined before federator propagated it) or that the member does not serve (a custom
        resource whose definition has not arrived) counts as empty: its writes wait or fail
        and say so, and the member's other kinds go on. `listed` runs once it is listed."""
        reflector = Reflector(self.client, path(resource), on_change,
                              label_selector=f"{MANAGED_BY}={self.federation}",
                              absent_is_empty=True)
        self.reflectors[kind] = reflector

        async def watch() -> None:
            running = asyncio.ensure_future(reflector.run())
            try:
                await reflector.synced.wait()
                await listed()
                await running
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)

        self.watching[kind] = task = asyncio.create_task(watch())
        self.tasks.append(task)

    def drop(self, kind: str) -> None:
        """No longer federated (its CustomResourceDefinition went): stop watching it."""
        self.reflectors.pop(kind, None)
        task = self.watching.pop(kind, None)
        if task is not None:
            task.cancel()
            self.tasks.remove(task)

    def listed(self, kind: str) -> bool:
        """Whether the copies of a kind there have been listed once (until then none of
        that kind is written there)."""
        reflector = self.reflectors.get(kind)
        return reflector is not None and reflector.synced.is_set()

    def remember(self, obj: Object) -> None:
        """What was just written, before its watch event arrives."""
        reflector = self.reflectors.get(group_kind_of(obj))
        if reflector is not None:
            reflector.remember(obj)

    def copy(self, kind: str, namespace: str, name: str) -> Object | None:
        reflector = self.reflectors.get(kind)
        return None if reflector is None else reflector.objects.get((namespace, name))


class Propagator:
    def __init__(self, plane: KubeClient, registry: Registry, federation: str,
                 recorder: EventRecorder,
                 settings: PropagationSettings | None = None) -> None:
        self.plane = plane
        self.registry = registry
        self.federation = federation
        self.recorder = recorder
        self.settings = settings or PropagationSettings()
        self.queue: WorkQueue[Key] = WorkQueue()
        # The federated kinds (from the plane's discovery), and the plane's objects of each.
        self.resources: dict[str, Resource] = {}
        self.plane_views: dict[str, Reflector] = {}
        self._plane_tasks: dict[str, asyncio.Future[None]] = {}
        self._rediscover = asyncio.Event()
        self.policies = Reflector(plane, path(POLICIES), self._on_policy)
        self.members: dict[str, _MemberView] = {}
        self.orphaned: set[Key] = set()
        self.applied: dict[tuple[str, Key], str] = {}  # what was last written, per member
        self.normal: dict[tuple[str, Key], str] = {}  # and what the member made of it
        self.plans: dict[Key, dict[str, int]] = {}
        # Which ConfigMaps and Secrets each workload's pods use, and the other way round:
        # they go where their workloads go.
        self.uses: dict[Key, frozenset[dependencies.Reference]] = {}
        self.users: dict[Key, set[Key]] = {}
        self.reported: dict[Key, str] = {}  # the placement problem last announced
        self.errors: dict[tuple[str, Key], str] = {}  # last error announced, per member
        # Learned by overflow: replicas a member can run of a workload, until a deadline.
        self.capacity: dict[tuple[str, Key], tuple[int, float]] = {}
        self.recheck: dict[Key, float] = {}  # when overflow may next be decided
        self.overflowed: set[tuple[str, Key]] = set()  # learned, not yet announced
        # Config objects made right, and what that depended on (see _signature).
        self.settled: dict[Key, tuple[Any, ...]] = {}
        self.epoch = 0  # moves when clusters or policies change
        self._following = False  # member views follow the registry once policies are listed
        # (cluster, kind) swept since listed and Ready (again: a member's return sweeps)
        self.swept: set[tuple[str, str]] = set()
        self.released: dict[tuple[str, Key], bool] = {}  # left behind: orphan-deleted?
        self.writing: dict[tuple[str, Key], asyncio.Future[Outcome]] = {}  # slow writes
        # When each member's writes in flight started, oldest first: a member whose oldest
        # is older than member_wait is stalled, and nothing waits for it any more.
        self.since: dict[str, dict[Key, float]] = {}
        self.late: dict[tuple[str, Key], Outcome] = {}  # what they came to

    # kinds -------------------------------------------------------------------------------
    def _url(self, kind: str, namespace: str, name: str | None = None) -> str:
        return path(self.resources[kind], namespace=namespace or None, name=name)

    async def _discover(self) -> None:
        """Read the plane's discovery and follow it: watch the kinds that came, stop
        watching those that went. A group whose discovery cannot be read keeps the kinds it
        had (an aggregated API down for a moment takes nothing away)."""
        found = await discover(self.plane)
        chosen = {r.group_kind: Resource(r.group, r.version, r.plural, r.namespaced)
                  for r in kinds.federated(found.resources, self.settings.exclude)}
        for kind, resource in self.resources.items():
            if kind not in chosen and (resource.group in found.failed
                                       or self._definition(kind) is not None):
                # Kept: discovery of its group failed, or its definition is still in the
                # plane (being deleted: its custom resources' finalizers are still ours
                # to lift).
                chosen[kind] = resource
        for group, why in sorted(found.failed.items()):
            log.warning("discovery of a group failed: its kinds are kept as they were",
                        group=group, error=why)
        for kind in [k for k, r in self.resources.items() if chosen.get(k) != r]:
            self._drop_kind(kind)
        for kind, resource in chosen.items():
            if kind not in self.resources:
                self._add_kind(kind, resource)

    def _add_kind(self, kind: str, resource: Resource) -> None:
        log.info("kind federated", kind=kind, version=resource.version)
        self.resources[kind] = resource
        view = self.plane_views[kind] = Reflector(self.plane, path(resource), self._on_plane)
        self._plane_tasks[kind] = asyncio.ensure_future(view.run())
        for cluster, copies in self.members.items():
            self._watch_kind(cluster, copies, kind)

    def _drop_kind(self, kind: str) -> None:
        log.info("kind no longer served by the plane: not federated", kind=kind)
        del self.resources[kind]
        del self.plane_views[kind]
        self._plane_tasks.pop(kind).cancel()
        for cluster, copies in self.members.items():
            copies.drop(kind)
            self.swept.discard((cluster, kind))

    def _watch_kind(self, cluster: str, copies: _MemberView, kind: str) -> None:
        copies.add(kind, self.resources[kind],
                   functools.partial(self._on_member, cluster),
                   functools.partial(self._kind_listed, cluster, kind))

    async def _discovering(self) -> None:
        """Discovery again whenever a CustomResourceDefinition changes (a moment later:
        they come in bursts), and every DISCOVERY_PERIOD."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rediscover.wait(), DISCOVERY_PERIOD)
            await asyncio.sleep(0.5)
            self._rediscover.clear()
            try:
                await self._discover()
            except KubeError as exc:
                log.warning("discovery failed: the kinds are kept as they were",
                            error=str(exc))

    # wiring ------------------------------------------------------------------------------
    async def _on_plane(self, kind: str, obj: Object) -> None:
        key = _key(obj)
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and ORPHAN_FINALIZER in (meta.get("finalizers") or []):
            self.orphaned.add(key)  # seen before the plane's GC lifts it
        if kind == "DELETED":
            self.plans.pop(key, None)
            self.reported.pop(key, None)
            self.settled.pop(key, None)
        if key[0] == CRD_KIND:
            self._rediscover.set()
        if key[0] in dependencies.USING_KINDS:
            self._index_uses(key, frozenset() if kind == "DELETED"
                             else dependencies.references(obj))
        self.queue.add(key)

    def _index_uses(self, workload: Key, uses: frozenset[dependencies.Reference]) -> None:
        """Remember what a workload uses; what it used or uses now is decided again (its
        placement may have changed too)."""
        before = self.uses.pop(workload, frozenset())
        if uses:
            self.uses[workload] = uses
        for used_kind, name in before | uses:
            used = (used_kind, workload[1], name)
            users = self.users.setdefault(used, set())
            if (used_kind, name) in uses:
                users.add(workload)
            else:
                users.discard(workload)
            if not users:
                del self.users[used]
            if used_kind in self.resources:
                self.queue.add(used)

    def _needed_by(self, obj: Object, joined: dict[str, Any]) -> dict[str, str]:
        """Where the workloads that use a ConfigMap, Secret, ServiceAccount or claim are
        placed: cluster -> the first such workload (none if the object opts out)."""
        if not dependencies.follows(obj):
            return {}
        found: dict[str, str] = {}
        for user in sorted(self.users.get(_key(obj), ())):
            view = self.plane_views.get(user[0])
            workload = None if view is None else view.objects.get((user[1], user[2]))
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

    async def _on_policy(self, kind: str, policy: Object) -> None:
        """A policy changed: every object of its namespace may be governed differently."""
        namespace = policy["metadata"].get("namespace")
        self.epoch += 1
        for view in self.plane_views.values():
            for obj in view.objects.values():
                if policy_rules.policy_namespace(obj) == namespace:
                    self.queue.add(_key(obj))

    async def _on_member(self, cluster: str, kind: str, obj: Object) -> None:
        key = _key(obj)
        self.queue.add(key)
        if key[0] == CRD_KIND:
            # A definition arrived there: its custom resources may be served now.
            spec = obj.get("spec") or {}
            plural = (spec.get("names") or {}).get("plural")
            copies = self.members.get(cluster)
            for custom, resource in self.resources.items():
                if (resource.group, resource.plural) == (spec.get("group"), plural) and copies:
                    reflector = copies.reflectors.get(custom)
                    if reflector is not None and reflector.missing:
                        reflector.wake()

    async def _on_pending(self, kind: str, pod: Object) -> None:
        """A pending pod changed: the workloads it belongs to may overflow."""
        namespace = pod["metadata"].get("namespace", "")
        labels = pod["metadata"].get("labels") or {}
        for workload in WORKLOADS:
            view = self.plane_views.get(workload)
            for (ns, name), obj in list(view.objects.items() if view else ()):
                selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels")
                if ns == namespace and selector and selector.items() <= labels.items():
                    self.queue.add((workload, ns, name))

    def _on_cluster(self, name: str) -> None:
        """A member joined, left, or changed readiness: every object may move."""
        if self._following:
            self.registry.follow(name, self.members, self._watch)
        member, copies = self.registry.members.get(name), self.members.get(name)
        if member is None or not member.ready:
            self.swept = {(c, k) for c, k in self.swept if c != name}
        elif copies is not None:
            for kind in list(copies.reflectors):
                self._sweep_once(name, copies, kind)
        self.epoch += 1
        for view in self.plane_views.values():
            for obj in view.objects.values():
                self.queue.add(_key(obj))

    def _sweep_once(self, cluster: str, copies: _MemberView, kind: str) -> None:
        """Sweep a kind's copies in a member once they are listed and it is Ready, and again
        each time it is Ready again."""
        member = self.registry.members.get(cluster)
        if (member is not None and member.ready and copies.listed(kind)
                and (cluster, kind) not in self.swept):
            self.swept.add((cluster, kind))
            copies.tasks.append(asyncio.create_task(self._sweep(cluster, copies, kind)))

    def _watch(self, name: str, client: KubeClient) -> _MemberView:
        copies = _MemberView(client, self.federation, self._on_pending,
                             self.settings.member_concurrency)
        for kind in self.resources:
            self._watch_kind(name, copies, kind)
        return copies

    async def _kind_listed(self, cluster: str, kind: str) -> None:
        """A kind's copies in a member are listed: its objects may be written there."""
        log.info("member copies listed", cluster=cluster, kind=kind)
        copies, view = self.members.get(cluster), self.plane_views.get(kind)
        if copies is None or view is None:
            return
        self._sweep_once(cluster, copies, kind)
        for obj in view.objects.values():
            self.queue.add(_key(obj))

    async def _sweep(self, cluster: str, copies: _MemberView, kind: str) -> None:
        """Remove every copy of a kind in `cluster` whose plane object is gone: deleted while
        federator was down, before its finalizer landed, or while this member was away
        (LeftBehind). Released instead where the plane object was orphan-deleted. Runs once
        both sides are listed, and again whenever the member returns."""
        view = self.plane_views.get(kind)
        reflector = copies.reflectors.get(kind)
        if view is None or reflector is None:
            return
        await view.synced.wait()
        swept = 0
        for (namespace, name), copy in list(reflector.objects.items()):
            key = (kind, namespace, name)
            # Only copies: they carry their plane object's uid. federator's own identity in
            # the member (made by join, in federation-system) is managed too: never.
            annotations = copy["metadata"].get("annotations") or {}
            if ((namespace, name) in view.objects
                    or not managed_by(copy, self.federation)
                    or PLANE_UID not in annotations
                    or FEDERATION_NAMESPACE in (namespace, name)
                    or not self._writable(cluster, kind)):
                continue
            orphan = self.released.pop((cluster, key), False) or key in self.orphaned
            outcome = await self._drop(cluster, copies, key, orphan)
            if outcome.error:
                log.warning("sweep failed", cluster=cluster, kind=kind, namespace=namespace,
                            object=name, error=outcome.error)
                continue
            swept += 1
            log.info("copy of a deleted plane object " + ("released" if orphan else "removed"),
                     cluster=cluster, kind=kind, namespace=namespace, object=name)
        if swept:
            log.info("member swept", cluster=cluster, kind=kind, removed=swept)

    async def _release(self, copies: _MemberView, key: Key) -> None:
        """Leave a copy to the member: no longer federator's (orphan deletion)."""
        await copies.client.merge_patch(self._url(*key), {"metadata": {
            "labels": {MANAGED_BY: None}, "annotations": {PLANE_UID: None}}})

    def _listing(self, cluster: str, kind: str) -> bool:
        """Ready, but its copies of a kind not listed yet (right after federator starts, or
        the kind is new)."""
        member = self.registry.members.get(cluster)
        copies = self.members.get(cluster)
        return (member is not None and member.ready and member.client is not None
                and (copies is None or not copies.listed(kind)))

    def _writable(self, cluster: str, kind: str) -> bool:
        """Ready, and its copies of a kind known: what reconcile may write to."""
        copies = self.members.get(cluster)
        member = self.registry.members.get(cluster)
        return (copies is not None and copies.listed(kind) and member is not None
                and member.ready)

    async def run(self) -> None:
        self.registry.listeners.append(self._on_cluster)
        tasks: list[asyncio.Future[None]] = [asyncio.ensure_future(self.policies.run())]
        try:
            delay = 0.5
            while True:  # nothing is federated before the kinds are known
                try:
                    await self._discover()
                    break
                except KubeError as exc:
                    log.warning("discovery failed", error=str(exc), retry_in=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
            tasks.append(asyncio.ensure_future(self._discovering()))
            await self.registry.synced.wait()
            await self.policies.synced.wait()
            self._following = True
            for name in list(self.registry.members):
                self.registry.follow(name, self.members, self._watch)
            tasks += [asyncio.ensure_future(self._worker())
                      for _ in range(self.settings.workers)]
            await asyncio.gather(*tasks)
        finally:
            # Everything stops at once, before the first await: a controller cancelled again
            # while it stops (a lost lease) must leave no watch, sweep or write running.
            self._following = False
            stopped = self.registry.unfollow(self.members, self._on_cluster)
            tasks += self._plane_tasks.values()
            for task in tasks:
                task.cancel()
            for write in self.writing.values():
                write.cancel()
            self.queue.close()
            await asyncio.gather(*tasks, *self.writing.values(), stopped,
                                 return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                again = await self.reconcile(key)
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
        kind, namespace, name = key
        view = self.plane_views.get(kind)
        obj = None if view is None else view.objects.get((namespace, name))
        if obj is None:
            await self._gone(key)
            return None
        if not propagation.propagated(obj):
            return None
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return await self._delete(key, obj)
        finalizing = None
        if FINALIZER not in (meta.get("finalizers") or []):
            # Added while the copies are written (one round trip less per new object); should
            # the object be deleted before it lands, reconcile finds it gone and removes them.
            finalizing = asyncio.ensure_future(self._set_finalizers(
                obj, [*(meta.get("finalizers") or []), FINALIZER]))
        try:
            return await self._propagate(key, obj, finalizing)
        finally:
            if finalizing is not None:  # returned early: let it land all the same
                await asyncio.gather(finalizing, return_exceptions=True)

    async def _propagate(self, key: Key, obj: Object,
                         finalizing: asyncio.Future[Object | None] | None) -> float | None:
        kind = key[0]
        joined = {n: m.cluster["metadata"].get("labels") or {}
                  for n, m in self.registry.members.items()}
        needed = self._needed_by(obj, joined)
        summed = self._summed(kind)
        if not summed and self.settled.get(key) == self._signature(key, obj, needed):
            return None  # nothing it depends on changed since it was last made right
        clusters = {n: Cluster(labels, self._writable(n, kind)) for n, labels in joined.items()}
        policy = policy_rules.governing(self.policies.objects.values(), obj)
        try:
            writable = [n for n, cluster in clusters.items() if cluster.ready]
            workload = kind in WORKLOADS
            scale = self._scale(kind)
            field = replica_rules.field_of(kind, scale)
            decision = decide(obj, policy, clusters,
                              capacity=self._capacity(key, obj, writable) if workload else None,
                              current=self._current(key, writable, field) if field else None,
                              needed_by=needed, scale=scale)
            targets, replicas = decision.targets, decision.replicas
            ready = [c for c in targets if clusters[c].ready]
        except (PlacementError, PreferencesError) as exc:
            await self._invalid(key, obj, str(exc))
            return None
        self.reported.pop(key, None)  # valid (again): a later problem is announced anew
        if any(self._listing(c, kind) for c in targets):
            return None  # a Ready member's copies are still being listed: it comes back then
        jobs: dict[str, Callable[[], Awaitable[Outcome]]] = {
            c: functools.partial(self._sync, c, key, obj, replicas.get(c) if replicas else None,
                                 field, (decision.completions or {}).get(c),
                                 policy_rules.overrides(policy, c, joined[c]) if policy else [])
            for c in ready}
        jobs.update({c: functools.partial(self._remove_copy, c, key)
                     for c in sorted(set(self.members) - set(targets))
                     if self._writable(c, kind)})
        outcomes, waiting = await self._write(key, jobs)
        errors = {c: o.error for c, o in outcomes.items() if o.error and c in ready}
        await self._announce(key, obj, [o.action for o in outcomes.values() if o.action])
        waits = {c: o.waiting for c, o in outcomes.items() if o.waiting and c in ready}
        await self._report(key, obj, targets, ready, replicas, errors, waits)
        for cluster in ready:
            if (cluster, key) in self.overflowed:
                self.overflowed.discard((cluster, key))
                limit = self.capacity[(cluster, key)][0]
                await self.recorder.record(obj, "Warning", "Overflow",
                                           f"cluster {cluster} is full at {limit} replicas "
                                           "(pods unschedulable there); the rest go elsewhere")
        if finalizing is not None:
            patched = await finalizing
            if patched is None:
                return None  # changed or gone meanwhile: its watch event brings it back
            obj = patched
        if not summed and not errors and not waiting and not waits:
            self.settled[key] = self._signature(key, obj, needed)
        delays = [d for d in (5.0 if errors else None, WAITING_RETRY if waits else None,
                              self.recheck.get(key)) if d is not None]
        return min(delays) if delays else None

    async def _write(self, key: Key, jobs: dict[str, Callable[[], Awaitable[Outcome]]]
                     ) -> tuple[dict[str, Outcome], set[str]]:
        """Run each member's write for one object as a task of its own and wait for them up
        to `member_wait` (not at all for a stalled member): what they came to, and the
        members whose write goes on. A write that goes on (a slow or hung member) delays
        nothing else: when it ends, what it came to is kept for the next reconcile of the
        object, which it brings about. One write per copy at a time: a member whose last
        write still runs is left out."""
        now = asyncio.get_running_loop().time()
        started: dict[str, asyncio.Future[Outcome]] = {}
        waited = []
        for cluster, job in jobs.items():
            if (cluster, key) in self.writing:
                continue
            if not self._stalled(cluster, now):
                waited.append(cluster)
            started[cluster] = self.writing[(cluster, key)] = asyncio.ensure_future(job())
            self.since.setdefault(cluster, {})[key] = now
        if waited:
            await self._wait_for([started[c] for c in waited], now)
        outcomes: dict[str, Outcome] = {}
        for cluster, task in started.items():
            if task.done():
                self._written(cluster, key)
                outcomes[cluster] = _outcome(task, cluster, key)
            else:
                task.add_done_callback(functools.partial(self._written_late, cluster, key))
        for cluster in jobs:
            late = self.late.pop((cluster, key), None)
            if late is not None:
                fresh = outcomes.get(cluster, Outcome())
                outcomes[cluster] = Outcome(error=fresh.error if cluster in started
                                            else late.error,
                                            action=fresh.action or late.action)
        return outcomes, {c for c in jobs if (c, key) in self.writing}

    async def _wait_for(self, tasks: list[asyncio.Future[Outcome]], began: float) -> None:
        """Until every write is done, but no longer than member_wait, and once the first is
        done, the others get twice as long as it took (at least 0.1 s): a member far slower
        than its peers is not waited for."""
        loop = asyncio.get_running_loop()
        _, pending = await asyncio.wait(tasks, timeout=self.settings.member_wait,
                                        return_when=asyncio.FIRST_COMPLETED)
        spent = loop.time() - began
        grace = min(self.settings.member_wait - spent, max(0.1, 2 * spent))
        if pending and grace > 0:
            await asyncio.wait(pending, timeout=grace)

    def _stalled(self, cluster: str, now: float) -> bool:
        """Whether a member's oldest write in flight has run longer than member_wait."""
        oldest = next(iter(self.since.get(cluster, {}).values()), None)
        return oldest is not None and now - oldest > self.settings.member_wait

    def _written(self, cluster: str, key: Key) -> None:
        self.writing.pop((cluster, key), None)
        self.since.get(cluster, {}).pop(key, None)

    def _written_late(self, cluster: str, key: Key, task: asyncio.Future[Outcome]) -> None:
        if self.writing.get((cluster, key)) is task:
            self._written(cluster, key)
        if not task.cancelled():
            self.late[(cluster, key)] = _outcome(task, cluster, key)
            log.info("slow write ended", cluster=cluster, kind=key[0], namespace=key[1],
                     object=key[2])
            self.queue.add(key)

    def _signature(self, key: Key, obj: Object, needed: dict[str, str]) -> tuple[Any, ...]:
        """What reconciling a config object depends on: its version, its copies' versions,
        which members are writable, the epoch of clusters and policies, and where the
        workloads that use it are placed."""
        copies = []
        for cluster, view in sorted(self.members.items()):
            copy = view.copy(*key)
            copies.append((cluster, self._writable(cluster, key[0]),
                           copy["metadata"].get("resourceVersion") if copy else None))
        return (obj["metadata"].get("resourceVersion"), self.epoch, tuple(copies),
                tuple(sorted(needed)))

    def learned(self, key: Key) -> dict[str, int]:
        """What overflow has taught of members' room for a workload, while it holds."""
        now = asyncio.get_running_loop().time()
        return {cluster: limit for (cluster, learned_key), (limit, until)
                in self.capacity.items() if learned_key == key and until > now}

    def _current(self, key: Key, writable: list[str], field: replica_rules.ReplicaField
                 ) -> dict[str, int]:
        """Replicas each writable member's copy of a workload asks for now."""
        current = {}
        for cluster in writable:
            copy = self.members[cluster].copy(*key)
            if copy is not None:
                current[cluster] = replica_rules.count(copy, field)
        return current

    def _definition(self, kind: str) -> Object | None:
        """The plane's CustomResourceDefinition of a custom kind."""
        resource = self.resources.get(kind)
        definitions = self.plane_views.get(CRD_KIND)
        if resource is None or definitions is None:
            return None
        return definitions.objects.get(("", f"{resource.plural}.{resource.group}"))

    def _scale(self, kind: str) -> Object | None:
        """The scale subresource a custom kind's definition declares, if any."""
        definition = self._definition(kind)
        if definition is None:
            return None
        scale = replica_rules.scale_of(definition, self.resources[kind].version)
        return dict(scale) if scale is not None else None

    def _summed(self, kind: str) -> bool:
        """Whether a kind's status is summed from its members' copies (so its reconcile is
        never skipped as settled: a copy's status change is news)."""
        return kind in STATUS_KINDS or kind == replica_rules.JOB or self._scale(kind) is not None

    def _capacity(self, key: Key, obj: Object, ready: list[str]) -> dict[str, int]:
        """What each member can run of a workload, as far as overflow has shown."""
        loop = asyncio.get_running_loop()
        now = datetime.datetime.now(datetime.UTC)
        selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        limits = {}
        self.recheck.pop(key, None)
        for cluster in ready:
            view = self.members[cluster]
            copy = view.copy(*key)
            learned = self.capacity.get((cluster, key))
            if learned is not None and learned[1] <= loop.time():
                del self.capacity[(cluster, key)]
                learned = None
            if copy is not None and _settled(copy):
                found = overflow(view.pending.objects.values(), key[1], selector, now=now,
                                 threshold=self.settings.unschedulable_after)
                if found.soonest is not None:
                    self._recheck_within(key, found.soonest)
                if found.unschedulable:
                    running = int((copy.get("spec") or {}).get("replicas") or 0)
                    limit = max(0, running - found.unschedulable)
                    if learned is None or limit < learned[0]:
                        learned = (limit, loop.time() + self.settings.capacity_ttl)
                        self.capacity[(cluster, key)] = learned
                        self.overflowed.add((cluster, key))
            if learned is not None:
                limits[cluster] = learned[0]
                # Decided again when the cap expires: nothing else may touch the object.
                self._recheck_within(key, max(0.0, learned[1] - loop.time()))
        return limits

    def _recheck_within(self, key: Key, seconds: float) -> None:
        self.recheck[key] = min(self.recheck.get(key, seconds), seconds)

    async def _sync(self, cluster: str, key: Key, obj: Object, replicas: int | None,
                    field: replica_rules.ReplicaField | None, completions: int | None,
                    patches: list[dict[str, Any]]) -> Outcome:
        """Write one member's copy if it differs."""
        view = self.members[cluster]
        existing = view.copy(*key)
        if completions is not None and existing is not None:
            # A Job's completions cannot change: the member keeps the share it was given.
            kept = (existing.get("spec") or {}).get("completions")
            completions = kept if isinstance(kept, int) else completions
        desired = member_copy(obj, federation=self.federation, replicas=replicas, field=field,
                              completions=completions)
        if patches:
            try:
                desired = apply_patch(desired, patches)
            except PatchError as exc:
                return Outcome(error=f"override not applied, nothing written: {exc}")
        kind, namespace, name = key
        reflector = view.reflectors.get(kind)
        if reflector is not None and reflector.missing:
            return Outcome(waiting=f"{self.resources[kind].plural} not served there yet")
        copy = view.copy(*key)
        other = None
        fingerprint = json.dumps(desired, sort_keys=True)
        changed = difference(copy, desired) if copy is not None else None
        if copy is not None and (changed is None or (
                self.applied.get((cluster, key)) == fingerprint
                and self.normal.get((cluster, key)) == _content(copy))):
            # Right, or as the member made of what was written (it normalises some values).
            self.applied[(cluster, key)] = fingerprint
            return Outcome()
        async with view.limit:
            if not self._writable(cluster, kind):
                return Outcome()  # went away while waiting for a slot: decided again then
            url = self._url(kind, namespace, name)
            try:
                if copy is None:
                    if namespace and namespace not in view.namespaces:
                        await self._ensure_namespace(view, namespace)
                    other = await self._owner(view, kind, namespace, name, url)
                    if other is not None and not managed_by(other, self.federation):
                        annotations = obj["metadata"].get("annotations") or {}
                        if annotations.get(ADOPT_ANNOTATION) != "true":
                            return Outcome(error=self._clash(obj["kind"], name))
                # A first write does not force: should an object of that name have appeared
                # meanwhile, its owner's fields make it fail (409) instead of being taken.
                written = await view.client.apply(url, desired,
                                                  force=copy is not None or other is not None)
            except KubeError as exc:
                if exc.conflict and copy is None:
                    return Outcome(error=self._clash(obj["kind"], name))
                return Outcome(error=f"{exc.reason}: {exc.message}"[:300])
        written.setdefault("kind", obj["kind"])
        written.setdefault("apiVersion", obj["apiVersion"])
        view.remember(written)
        if kind == "Namespace" and copy is None and other is None:
            view.fresh.add(name)
        previous = self.applied.get((cluster, key))
        self.applied[(cluster, key)] = fingerprint
        self.normal[(cluster, key)] = _content(written)
        if copy is None and previous is None:
            return Outcome(action=("CreatedInCluster", "created", cluster))
        if copy is None:
            return Outcome(action=("DriftCorrected", "recreated (deleted there)", cluster))
        if previous == fingerprint:
            return Outcome(action=("DriftCorrected", f"restored {changed} (changed there)",
                                   cluster))
        return Outcome(action=("UpdatedInCluster", f"updated {changed}", cluster))

    @staticmethod
    async def _owner(view: _MemberView, kind: str, namespace: str, name: str, url: str
                     ) -> Object | None:
        """Who holds the name in a member where federator has no copy: the object there
        (metadata only), or None. A namespace federator made holds nothing else of that name
        (the first write, which does not force, fails should that change)."""
        if namespace and namespace in view.fresh:
            return None
        try:
            found: Object = await view.client.get(url, accept=METADATA)
        except KubeError as exc:
            if exc.not_found:
                return None
            raise
        return found

    @staticmethod
    def _clash(kind: str, name: str) -> str:
        return (f"a {kind} {name} that federator does not manage exists there; it is left "
                f"alone (annotate the plane object {ADOPT_ANNOTATION}=true to adopt it)")

    async def _ensure_namespace(self, view: _MemberView, namespace: str) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": namespace, "labels": {MANAGED_BY: self.federation}}}
        try:
            await view.client.create(path(NAMESPACES), body)
            view.fresh.add(namespace)
        except KubeError as exc:
            if not exc.conflict:
                raise
        view.namespaces.add(namespace)

    async def _remove_copy(self, cluster: str, key: Key) -> Outcome:
        """A copy where the object is no longer placed."""
        view = self.members[cluster]
        if view.copy(*key) is None:
            return Outcome()
        dropped = await self._drop(cluster, view, key, orphan=False)
        if dropped.error:
            return dropped
        return Outcome(action=("RemovedFromCluster", "removed (no longer placed there)",
                               cluster))

    # status, events ----------------------------------------------------------------------
    async def _announce(self, key: Key, obj: Object,
                        actions: list[tuple[str, str, str]]) -> None:
        """One event per kind of action, naming every cluster it was done in."""
        by_reason: dict[tuple[str, str], list[str]] = {}
        for reason, what, cluster in actions:
            by_reason.setdefault((reason, what), []).append(cluster)
        for (reason, what), clusters in sorted(by_reason.items()):
            message = (f"{what} {key[0]} {key[2]} in cluster{'s' if len(clusters) > 1 else ''}"
                       f" {', '.join(sorted(clusters))}")
            log.info(message, kind=key[0], namespace=key[1], object=key[2])
            await self.recorder.record(obj, "Normal", reason, message)

    async def _report(self, key: Key, obj: Object, targets: list[str], ready: list[str],
                      replicas: dict[str, int] | None, errors: dict[str, str],
                      waits: dict[str, str]) -> None:
        """Events for a new spread and new errors; the per-cluster breakdown (what is wrong
        or waited for) in an annotation, the members' status summed into the plane's."""
        kind, namespace, name = key
        if replicas is not None and self.plans.get(key) != replicas:
            self.plans[key] = replicas
            layout = ", ".join(f"{c}={n}" for c, n in sorted(replicas.items())) or "none"
            await self.recorder.record(obj, "Normal", "Scheduled",
                                       f"replicas per cluster: {layout}")
        for cluster in ready:
            error = errors.get(cluster)
            if error is None:
                self.errors.pop((cluster, key), None)
            elif self.errors.get((cluster, key)) != error:
                self.errors[(cluster, key)] = error
                await self.recorder.record(obj, "Warning", "PropagationFailed",
                                           f"cluster {cluster}: {error}")
        status: dict[str, Any] | None = None
        summed = self._summed(kind)
        states = {c: MemberState((replicas or {}).get(c, 0), self.members[c].copy(*key),
                                 errors.get(c)) for c in ready}
        if kind in STATUS_KINDS:
            status, breakdown = aggregate(obj, states)
        elif kind == replica_rules.JOB:
            status, breakdown = aggregate_job(states)
        elif summed:
            field = replica_rules.field_of(kind, self._scale(kind))
            status, breakdown = aggregate_scaled(field.status if field else None, states)
            definition = self._definition(kind) or {}
            if not replica_rules.has_status(definition, self.resources[kind].version):
                status = None  # no status subresource to write it to
        else:
            breakdown = {c: {"error": e} for c, e in errors.items()}
        for cluster, waiting in waits.items():
            breakdown.setdefault(cluster, {})["waiting"] = waiting
        for cluster in targets:
            if cluster not in ready:
                breakdown[cluster] = {"error": "cluster not ready"}
        # Workloads always carry their breakdown; other kinds only while something is wrong.
        annotation: str | None = json.dumps(breakdown, sort_keys=True, separators=(",", ":"))
        if not summed and not breakdown:
            annotation = None
        current = (obj["metadata"].get("annotations") or {}).get(CLUSTER_STATUS)
        if annotation != current and (annotation is not None or current is not None):
            obj = await self._patch_plane(obj, self._url(*key), {"metadata": {"annotations": {
                CLUSTER_STATUS: annotation}}})
        if status and not _holds(obj.get("status") or {}, status):
            # Zeros are sent as null: the apiserver leaves zero counts out of what it stores.
            await self._patch_plane(obj, path(self.resources[kind], namespace=namespace,
                                              name=name, subresource="status"),
                                    {"status": {k: v if v != 0 else None
                                                for k, v in status.items()}})

    async def _invalid(self, key: Key, obj: Object, problem: str) -> None:
        """Bad placement or preferences: say so, propagate nothing of it."""
        annotation = json.dumps({"error": problem}, separators=(",", ":"))
        if self.reported.get(key) == annotation:
            return
        self.reported[key] = annotation
        log.warning("not propagated", kind=key[0], namespace=key[1], object=key[2],
                    problem=problem)
        await self.recorder.record(obj, "Warning", "InvalidPlacement", problem)
        await self._patch_plane(obj, self._url(*key), {"metadata": {"annotations": {
            CLUSTER_STATUS: annotation}}})

    # deletion ----------------------------------------------------------------------------
    async def _delete(self, key: Key, obj: Object) -> float | None:
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or []
        if FINALIZER not in finalizers:
            return None
        orphan = key in self.orphaned or ORPHAN_FINALIZER in finalizers
        if any(self._listing(c, key[0]) for c in self.registry.members):
            return None  # nothing is decided before a member's copies are listed
        left: list[str] = []
        jobs: dict[str, Callable[[], Awaitable[Outcome]]] = {}
        for cluster in sorted(set(self.members) | set(self.registry.members)):
            member, view = self.registry.members.get(cluster), self.members.get(cluster)
            if view is None or not view.listed(key[0]):
                if member is not None:
                    left.append(cluster)  # away since federator started: copies unknown
                continue
            if view.copy(*key) is None:
                continue
            if member is None or not member.ready:
                left.append(cluster)
                continue
            jobs[cluster] = functools.partial(self._drop, cluster, view, key, orphan)
        outcomes, waiting = await self._write(key, jobs)
        left += sorted(waiting | {c for c, o in outcomes.items() if o.error})
        if left:
            if not self._deletion_timed_out(meta):
                return 5.0
            for cluster in left:  # its copy is swept (or released) when it returns
                self.released[(cluster, key)] = orphan
            await self.recorder.record(obj, "Warning", "LeftBehind",
                                       f"{obj['kind']} {key[2]} may be left in unreachable "
                                       f"cluster(s) {', '.join(sorted(left))} until they "
                                       "return")
        verb = "released" if orphan else "deleted"
        log.info(f"member copies {verb}", kind=key[0], namespace=key[1], object=key[2])
        lifted = await self._set_finalizers(obj, [f for f in finalizers if f != FINALIZER])
        if lifted is not None:
            # Only once the finalizer is off: should the plane's GC have taken the orphan
            # finalizer first (409), the next try must still know that it releases.
            self.orphaned.discard(key)
        return None

    async def _drop(self, cluster: str, view: _MemberView, key: Key, orphan: bool) -> Outcome:
        """Delete (or release) one member's copy: its plane object is being deleted, gone, or
        no longer placed there."""
        try:
            if orphan:
                await self._release(view, key)
            else:
                await view.client.delete(self._url(*key))
        except KubeError as exc:
            if not exc.not_found:
                return Outcome(error=f"{exc.reason}: {exc.message}"[:300])
        self.applied.pop((cluster, key), None)
        self.normal.pop((cluster, key), None)
        if key[0] == "Namespace":
            view.fresh.discard(key[2])
            view.namespaces.discard(key[2])
        return Outcome()

    async def _gone(self, key: Key) -> None:
        """The plane object is gone without its finalizer having done its work (it was
        deleted while its first copies were written): remove the copies written then."""
        orphan = key in self.orphaned
        self.orphaned.discard(key)
        for cluster, view in self.members.items():
            self.normal.pop((cluster, key), None)
            if self.applied.pop((cluster, key), None) is None or orphan:
                continue
            if view.copy(*key) is not None and self._writable(cluster, key[0]):
                await view.client.delete(self._url(*key))
                log.info("copy of a deleted object removed", cluster=cluster, kind=key[0],
                         namespace=key[1], object=key[2])

    def _deletion_timed_out(self, meta: dict[str, Any]) -> bool:
        since = datetime.datetime.strptime(meta["deletionTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
        age = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - since
        return age.total_seconds() > self.settings.deletion_timeout

    async def _set_finalizers(self, obj: Object, finalizers: list[str]) -> Object | None:
        """The object with these finalizers, or None if it changed meanwhile (409)."""
        meta = obj["metadata"]
        try:
            return await self._patch_plane(obj, self._url(*_key(obj)), {"metadata": {
                "finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}})
        except KubeError as exc:
            if exc.conflict or exc.not_found:
                return None
            raise

    async def _patch_plane(self, obj: Object, url: str, patch: Object) -> Object:
        """Merge-patch a plane object (or its status); the result, also remembered, so that
        reconciles until its watch event arrives do not act on the version before."""
        patched: Object = await self.plane.merge_patch(url, patch)
        patched.setdefault("kind", obj["kind"])
        patched.setdefault("apiVersion", obj["apiVersion"])
        view = self.plane_views.get(group_kind_of(patched))
        if view is not None:
            view.remember(patched)
        return patched
