"""Propagation: every federated object in the plane is made to exist, as its member copy,
in each Ready member it is placed in; Deployments and ReplicaSets spread their replicas; the
members' copies are watched so that drift is undone and status flows back; deletion goes
through a finalizer so that member copies are removed (or released) first."""

from __future__ import annotations

import asyncio
import datetime
import json
from dataclasses import dataclass
from typing import Any

import structlog

from federator.clusters.registry import Member, Registry
from federator.domain import policy as policy_rules
from federator.domain import preferences, propagation
from federator.domain.capacity import overflow
from federator.domain.naming import MANAGED_BY, PLANE_UID
from federator.domain.objects import contains, difference
from federator.domain.overrides import PatchError, apply_patch
from federator.domain.preferences import PreferencesError
from federator.domain.propagation import (
    ADOPT_ANNOTATION,
    CLUSTER_STATUS,
    FEDERATED,
    FINALIZER,
    ORPHAN_FINALIZER,
    WORKLOADS,
    PlacementError,
    managed_by,
    member_copy,
)
from federator.domain.spreading import spread
from federator.domain.status import MemberState, aggregate
from federator.kube.client import KubeClient, KubeError, Object
from federator.kube.events import EventRecorder
from federator.kube.resources import KINDS, Resource, path
from federator.kube.watching import Reflector

from .queue import WorkQueue

log = structlog.get_logger(__name__)

Key = tuple[str, str, str]  # (kind, namespace, name)
KIND_RESOURCES: dict[str, Resource] = {kind: KINDS[(api, kind)] for api, kind in FEDERATED}
NAMESPACES = KIND_RESOURCES["Namespace"]
POLICIES = KINDS[("federator.io/v1alpha1", "FederationPolicy")]


@dataclass(frozen=True)
class Outcome:
    """What writing one member's copy came to: an error to report, or an action done
    (reason, what was done, cluster), or neither (it was right already)."""

    error: str | None = None
    action: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class PropagationSettings:
    workers: int = 16
    member_concurrency: int = 16
    deletion_timeout: float = 60.0  # an unreachable member holds a deletion this long
    unschedulable_after: float = 60.0  # pods unschedulable this long mean the member is full
    capacity_ttl: float = 300.0  # then a full member is offered its share again


def _key(obj: Object) -> Key:
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace", ""), meta["name"])


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


def _url(kind: str, namespace: str, name: str | None = None) -> str:
    return path(KIND_RESOURCES[kind], namespace=namespace or None, name=name)


class _MemberView:
    """federator's copies in one member, watched; and what was last applied there."""

    def __init__(self, member: Member, federation: str, on_change: Any, on_name: Any,
                 on_pending: Any, concurrency: int) -> None:
        assert member.client is not None
        self.client: KubeClient = member.client
        self.reflectors = {
            kind: Reflector(self.client, path(resource), on_change,
                            label_selector=f"{MANAGED_BY}={federation}")
            for kind, resource in KIND_RESOURCES.items()}
        # Every object of those kinds there, metadata only: who else owns a name.
        self.names = {kind: Reflector(self.client, path(resource), on_name, metadata_only=True)
                      for kind, resource in KIND_RESOURCES.items()}
        self.pending = Reflector(self.client, path(KINDS[("v1", "Pod")]), on_pending,
                                 field_selector="status.phase=Pending")
        self.tasks = [asyncio.ensure_future(r.run()) for r in
                      [*self.reflectors.values(), *self.names.values(), self.pending]]
        self.limit = asyncio.Semaphore(concurrency)
        self.namespaces: set[str] = set()  # known to exist there

    @property
    def synced(self) -> bool:
        """Whether every copy and name there has been listed once (until then nothing is
        written)."""
        return all(r.synced.is_set() for r in [*self.reflectors.values(), *self.names.values()])

    async def wait_synced(self) -> None:
        await asyncio.gather(*(r.synced.wait()
                               for r in [*self.reflectors.values(), *self.names.values()]))

    def remember(self, obj: Object) -> None:
        """What was just written, before its watch event arrives."""
        self.reflectors[obj["kind"]].remember(obj)
        self.names[obj["kind"]].remember(obj)

    def copy(self, kind: str, namespace: str, name: str) -> Object | None:
        return self.reflectors[kind].objects.get((namespace, name))


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
        self.plane_views = {kind: Reflector(plane, path(resource), self._on_plane)
                            for kind, resource in KIND_RESOURCES.items()}
        self.policies = Reflector(plane, path(POLICIES), self._on_policy)
        self.members: dict[str, _MemberView] = {}
        self.orphaned: set[Key] = set()
        self.applied: dict[tuple[str, Key], str] = {}  # what was last written, per member
        self.plans: dict[Key, dict[str, int]] = {}
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
        self.queue.add(key)

    async def _on_policy(self, kind: str, policy: Object) -> None:
        """A policy changed: every object of its namespace may be governed differently."""
        namespace = policy["metadata"].get("namespace")
        self.epoch += 1
        for view in self.plane_views.values():
            for obj in view.objects.values():
                if policy_rules.policy_namespace(obj) == namespace:
                    self.queue.add(_key(obj))

    async def _on_member(self, kind: str, obj: Object) -> None:
        self.queue.add(_key(obj))

    async def _on_name(self, kind: str, obj: Object) -> None:
        """Someone else's object went away: a plane object of that name may now go there."""
        if kind == "DELETED":
            meta = obj["metadata"]
            for plane_kind, view in self.plane_views.items():
                if (meta.get("namespace", ""), meta["name"]) in view.objects:
                    self.queue.add((plane_kind, meta.get("namespace", ""), meta["name"]))

    async def _on_pending(self, kind: str, pod: Object) -> None:
        """A pending pod changed: the workloads it belongs to may overflow."""
        namespace = pod["metadata"].get("namespace", "")
        labels = pod["metadata"].get("labels") or {}
        for workload in WORKLOADS:
            for (ns, name), obj in list(self.plane_views[workload].objects.items()):
                selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels")
                if ns == namespace and selector and selector.items() <= labels.items():
                    self.queue.add((workload, ns, name))

    def _on_cluster(self, name: str) -> None:
        """A member joined, left, or changed readiness: every object may move."""
        if self._following:
            self.registry.follow(name, self.members, self._watch)
        self.epoch += 1
        for view in self.plane_views.values():
            for obj in view.objects.values():
                self.queue.add(_key(obj))

    def _watch(self, name: str, client: KubeClient) -> _MemberView:
        member = self.registry.members[name]
        view = _MemberView(member, self.federation, self._on_member, self._on_name,
                           self._on_pending, self.settings.member_concurrency)
        view.tasks.append(asyncio.ensure_future(self._when_synced(name, view)))
        return view

    async def _when_synced(self, name: str, view: _MemberView) -> None:
        await view.wait_synced()
        log.info("member copies listed", cluster=name)
        self._on_cluster(name)

    def _listing(self, cluster: str) -> bool:
        """Ready, but its copies not listed yet (right after federator starts)."""
        member = self.registry.members.get(cluster)
        view = self.members.get(cluster)
        return (member is not None and member.ready and member.client is not None
                and (view is None or not view.synced))

    def _writable(self, cluster: str) -> bool:
        """Ready, and its copies known: what reconcile may write to."""
        view = self.members.get(cluster)
        member = self.registry.members.get(cluster)
        return view is not None and view.synced and member is not None and member.ready

    async def run(self) -> None:
        self.registry.listeners.append(self._on_cluster)
        tasks = [asyncio.ensure_future(v.run())
                 for v in [self.policies, *self.plane_views.values()]]
        await self.registry.synced.wait()
        await self.policies.synced.wait()
        self._following = True
        for name in list(self.registry.members):
            self.registry.follow(name, self.members, self._watch)
        tasks += [asyncio.ensure_future(self._worker()) for _ in range(self.settings.workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.registry.unfollow(self.members)
            self.queue.close()

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
        obj = self.plane_views[kind].objects.get((namespace, name))
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
        if kind not in WORKLOADS and self.settled.get(key) == self._signature(key, obj):
            return None  # nothing it depends on changed since it was last made right
        joined = {n: m.cluster["metadata"].get("labels") or {}
                  for n, m in self.registry.members.items()}
        policy = policy_rules.governing(self.policies.objects.values(), obj)
        try:
            if policy is not None:
                policy_rules.check_names(policy, joined)
            targets = self._targets(obj, policy, joined)
            ready = [c for c in targets if self._writable(c)]
            replicas = self._replicas(key, obj, policy, ready, joined)
        except (PlacementError, PreferencesError) as exc:
            await self._invalid(key, obj, str(exc))
            return None
        self.reported.pop(key, None)  # valid (again): a later problem is announced anew
        if any(self._listing(c) for c in targets):
            return None  # a Ready member's copies are still being listed: it comes back then
        outcomes = await asyncio.gather(
            *(self._sync(c, key, obj, replicas.get(c) if replicas else None,
                         policy_rules.overrides(policy, c, joined[c]) if policy else [])
              for c in ready))
        errors = {c: o.error for c, o in zip(ready, outcomes, strict=True) if o.error}
        await self._announce(key, obj, [o.action for o in outcomes if o.action])
        for cluster in sorted(set(self.members) - set(targets)):
            if self._writable(cluster):
                await self._remove_copy(cluster, key)
        await self._report(key, obj, targets, ready, replicas, errors)
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
        if kind not in WORKLOADS and not errors:
            self.settled[key] = self._signature(key, obj)
        delays = [d for d in (5.0 if errors else None, self.recheck.get(key)) if d is not None]
        return min(delays) if delays else None

    def _signature(self, key: Key, obj: Object) -> tuple[Any, ...]:
        """What reconciling a config object depends on: its version, its copies' versions,
        which members are writable, and the epoch of clusters and policies."""
        copies = []
        for cluster, view in sorted(self.members.items()):
            copy = view.copy(*key)
            copies.append((cluster, self._writable(cluster),
                           copy["metadata"].get("resourceVersion") if copy else None))
        return (obj["metadata"].get("resourceVersion"), self.epoch, tuple(copies))

    @staticmethod
    def _targets(obj: Object, policy: Object | None, joined: dict[str, Any]) -> list[str]:
        """Where an object goes: its own annotations, else its policy, else everywhere."""
        annotations = obj["metadata"].get("annotations") or {}
        own = {propagation.CLUSTERS_ANNOTATION, propagation.CLUSTER_SELECTOR_ANNOTATION}
        if policy is not None and not own & set(annotations):
            return policy_rules.placement(policy, joined)
        return propagation.placement(obj, joined)

    def _replicas(self, key: Key, obj: Object, policy: Object | None, ready: list[str],
                  joined: dict[str, Any]) -> dict[str, int] | None:
        """Replicas per writable target of a workload (None for other kinds)."""
        if obj["kind"] not in WORKLOADS:
            return None
        prefs = (preferences.of_object(obj)
                 or (policy_rules.replica_preferences(policy) if policy else None)
                 or preferences.EQUAL)
        unknown = sorted(prefs.named_clusters() - set(joined))
        if unknown:
            raise PreferencesError(f"preferences name clusters that are not joined: "
                                   f"{', '.join(unknown)}")
        total = int((obj.get("spec") or {}).get("replicas", 1))
        current = None
        if not prefs.rebalance:
            current = {}
            for cluster in ready:
                copy = self.members[cluster].copy(*key)
                if copy is not None:
                    current[cluster] = int((copy.get("spec") or {}).get("replicas") or 0)
        capacity = self._capacity(key, obj, ready)
        plan = spread(total, prefs.for_clusters(ready), capacity=capacity, current=current)
        return {c: plan.replicas.get(c, 0) for c in ready}

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
                    self.recheck[key] = min(self.recheck.get(key, found.soonest), found.soonest)
                if found.unschedulable:
                    running = int((copy.get("spec") or {}).get("replicas") or 0)
                    limit = max(0, running - found.unschedulable)
                    if learned is None or limit < learned[0]:
                        learned = (limit, loop.time() + self.settings.capacity_ttl)
                        self.capacity[(cluster, key)] = learned
                        self.overflowed.add((cluster, key))
            if learned is not None:
                limits[cluster] = learned[0]
        return limits

    async def _sync(self, cluster: str, key: Key, obj: Object, replicas: int | None,
                    patches: list[dict[str, Any]]) -> Outcome:
        """Write one member's copy if it differs."""
        view = self.members[cluster]
        desired = member_copy(obj, federation=self.federation, replicas=replicas)
        if patches:
            try:
                desired = apply_patch(desired, patches)
            except PatchError as exc:
                return Outcome(error=f"override not applied, nothing written: {exc}")
        kind, namespace, name = key
        copy = view.copy(*key)
        other = None
        fingerprint = json.dumps(desired, sort_keys=True)
        changed = difference(copy, desired) if copy is not None else None
        if copy is not None and changed is None:
            self.applied[(cluster, key)] = fingerprint
            return Outcome()
        async with view.limit:
            try:
                if copy is None:
                    other = view.names[kind].objects.get((namespace, name))
                    if other is not None and not managed_by(other, self.federation):
                        annotations = obj["metadata"].get("annotations") or {}
                        if annotations.get(ADOPT_ANNOTATION) != "true":
                            return Outcome(error=self._clash(kind, name))
                    if namespace and namespace not in view.namespaces:
                        await self._ensure_namespace(view, namespace)
                # A first write does not force: should an object of that name have appeared
                # meanwhile, its owner's fields make it fail (409) instead of being taken.
                written = await view.client.apply(_url(kind, namespace, name), desired,
                                                  force=copy is not None or other is not None)
            except KubeError as exc:
                if exc.conflict and copy is None:
                    return Outcome(error=self._clash(kind, name))
                return Outcome(error=f"{exc.reason}: {exc.message}"[:300])
        written.setdefault("kind", kind)
        written.setdefault("apiVersion", obj["apiVersion"])
        view.remember(written)
        previous = self.applied.get((cluster, key))
        self.applied[(cluster, key)] = fingerprint
        if copy is None and previous is None:
            return Outcome(action=("CreatedInCluster", "created", cluster))
        if copy is None:
            return Outcome(action=("DriftCorrected", "recreated (deleted there)", cluster))
        if previous == fingerprint:
            return Outcome(action=("DriftCorrected", f"restored {changed} (changed there)",
                                   cluster))
        return Outcome(action=("UpdatedInCluster", f"updated {changed}", cluster))

    @staticmethod
    def _clash(kind: str, name: str) -> str:
        return (f"a {kind} {name} that federator does not manage exists there; it is left "
                f"alone (annotate the plane object {ADOPT_ANNOTATION}=true to adopt it)")

    async def _ensure_namespace(self, view: _MemberView, namespace: str) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": namespace, "labels": {MANAGED_BY: self.federation}}}
        try:
            await view.client.create(path(NAMESPACES), body)
        except KubeError as exc:
            if not exc.conflict:
                raise
        view.namespaces.add(namespace)

    async def _remove_copy(self, cluster: str, key: Key) -> None:
        view = self.members[cluster]
        if view.copy(*key) is None:
            return
        await view.client.delete(_url(*key))
        self.applied.pop((cluster, key), None)

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
                      replicas: dict[str, int] | None, errors: dict[str, str]) -> None:
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
        if kind in WORKLOADS and replicas is not None:
            states = {c: MemberState(replicas.get(c, 0), self.members[c].copy(*key),
                                     errors.get(c)) for c in ready}
            status, breakdown = aggregate(obj, states)
        else:
            breakdown = {c: {"error": e} for c, e in errors.items()}
        for cluster in targets:
            if cluster not in ready:
                breakdown[cluster] = {"error": "cluster not ready"}
        # Workloads always carry their breakdown; other kinds only while something is wrong.
        annotation: str | None = json.dumps(breakdown, sort_keys=True, separators=(",", ":"))
        if kind not in WORKLOADS and not breakdown:
            annotation = None
        current = (obj["metadata"].get("annotations") or {}).get(CLUSTER_STATUS)
        if annotation != current and (annotation is not None or current is not None):
            obj = await self._patch_plane(obj, _url(*key), {"metadata": {"annotations": {
                CLUSTER_STATUS: annotation}}})
        if status is not None and not _holds(obj.get("status") or {}, status):
            # Zeros are sent as null: the apiserver leaves zero counts out of what it stores.
            await self._patch_plane(obj, path(KIND_RESOURCES[kind], namespace=namespace,
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
        await self._patch_plane(obj, _url(*key), {"metadata": {"annotations": {
            CLUSTER_STATUS: annotation}}})

    # deletion ----------------------------------------------------------------------------
    async def _delete(self, key: Key, obj: Object) -> float | None:
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or []
        if FINALIZER not in finalizers:
            return None
        orphan = key in self.orphaned or ORPHAN_FINALIZER in finalizers
        left: list[str] = []
        for cluster, view in self.members.items():
            member = self.registry.members.get(cluster)
            if view.copy(*key) is None:
                continue
            if member is None or not member.ready:
                left.append(cluster)
                continue
            try:
                if orphan:
                    await view.client.merge_patch(_url(*key), {"metadata": {
                        "labels": {MANAGED_BY: None}, "annotations": {PLANE_UID: None}}})
                else:
                    await view.client.delete(_url(*key))
            except KubeError as exc:
                if not exc.not_found:
                    left.append(cluster)
            self.applied.pop((cluster, key), None)
        if left:
            if not self._deletion_timed_out(meta):
                return 5.0
            await self.recorder.record(obj, "Warning", "LeftBehind",
                                       f"{obj['kind']} {key[2]} was left in unreachable "
                                       f"cluster(s) {', '.join(sorted(left))}")
        verb = "released" if orphan else "deleted"
        log.info(f"member copies {verb}", kind=key[0], namespace=key[1], object=key[2])
        await self._set_finalizers(obj, [f for f in finalizers if f != FINALIZER])
        self.orphaned.discard(key)
        return None

    async def _gone(self, key: Key) -> None:
        """The plane object is gone without its finalizer having done its work (it was
        deleted while its first copies were written): remove the copies written then."""
        orphan = key in self.orphaned
        self.orphaned.discard(key)
        for cluster, view in self.members.items():
            if self.applied.pop((cluster, key), None) is None or orphan:
                continue
            if view.copy(*key) is not None and self._writable(cluster):
                await view.client.delete(_url(*key))
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
            return await self._patch_plane(obj, _url(*_key(obj)), {"metadata": {
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
        self.plane_views[obj["kind"]].remember(patched)
        return patched
