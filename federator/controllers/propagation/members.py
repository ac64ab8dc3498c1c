"""federator's copies in each member: one watch per (member, kind in use), labelled as
federator's, and the member's pending pods (for overflow); what is known of its namespaces
and of its writes in flight. Which members may be written now."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from federator.clusters.registry import Registry
from federator.domain.naming import FEDERATION_NAMESPACE, MANAGED_BY, PLANE_UID
from federator.domain.propagation import group_kind_of
from federator.kube.client import KubeClient, KubeError, Object
from federator.kube.resources import KINDS, Resource, path
from federator.kube.watching import METADATA_LIST, Handler, Reflector, SharedReflectors

from .memory import Key


class MemberView:
    """federator's copies in one member, one watch per federated kind; and what is known of
    its namespaces and its writes."""

    def __init__(self, client: KubeClient, federation: str, on_pending: Handler,
                 concurrency: int, shared: SharedReflectors) -> None:
        self.client = client
        self.shared = shared  # a kind's copies may be followed by DNS too (Services)
        self.federation = federation
        self.reflectors: dict[str, Reflector] = {}
        self.watching: dict[str, asyncio.Task[None]] = {}
        self.pending = Reflector(self.client, path(KINDS[("v1", "Pod")]), on_pending,
                                 field_selector="status.phase=Pending")
        self.tasks: list[asyncio.Task[None]] = []
        self.pending_followed = False
        self.limit = asyncio.Semaphore(concurrency)
        self.namespaces: set[str] = set()  # known to exist there
        self.fresh: set[str] = set()  # made by federator: what is in them is federator's
        # When each write in flight started, oldest first: a member whose oldest is older
        # than member_wait is stalled, and nothing waits for it any more.
        self.since: dict[Key, float] = {}

    def add(self, kind: str, resource: Resource, on_change: Handler,
            listed: Callable[[], Awaitable[None]]) -> None:
        """Watch federator's copies of a kind. A kind federator may not list there (a member
        joined before federator propagated it) or that the member does not serve (a custom
        resource whose definition has not arrived) counts as empty: its writes wait or fail
        and say so, and the member's other kinds go on. `listed` runs once it is listed."""
        subscription = self.shared.subscribe(
            self.client, path(resource), on_change,
            label_selector=f"{MANAGED_BY}={self.federation}", absent_is_empty=True)
        reflector = self.reflectors[kind] = subscription.reflector

        async def watch() -> None:
            running = asyncio.ensure_future(subscription.run())
            try:
                await reflector.synced.wait()
                await listed()
                await running
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)

        self.watching[kind] = task = asyncio.create_task(watch())
        self.tasks.append(task)

    def follow_pending(self) -> None:
        """Watch the member's pending pods (for overflow), once a workload kind is watched
        there."""
        if not self.pending_followed:
            self.pending_followed = True
            self.tasks.append(asyncio.create_task(self.pending.run()))

    async def holds_copies(self, resource: Resource) -> bool:
        """Whether the member holds any of federator's copies of a kind (copies carry their
        plane object's uid; federator's own identity there, made by join, is no copy). A
        kind it does not serve, or may not be listed, holds none that federator could
        remove; an answer that says nothing (a member away), or a first page without a copy
        and more pages, counts as yes."""
        try:
            found = await self.client.get(path(resource), accept=METADATA_LIST, limit="10",
                                          labelSelector=f"{MANAGED_BY}={self.federation}")
        except KubeError as exc:
            return exc.code not in (403, 404)
        for item in found.get("items") or []:
            meta = item.get("metadata") or {}
            if (PLANE_UID in (meta.get("annotations") or {})
                    and FEDERATION_NAMESPACE not in (meta.get("namespace"), meta.get("name"))):
                return True
        return bool((found.get("metadata") or {}).get("continue"))

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

    def serves(self, kind: str) -> bool:
        """Whether the member serves a kind (a custom kind: once its definition is there)."""
        reflector = self.reflectors.get(kind)
        return reflector is None or not reflector.missing

    def remember(self, obj: Object) -> None:
        """What was just written, before its watch event arrives."""
        reflector = self.reflectors.get(group_kind_of(obj))
        if reflector is not None:
            reflector.remember(obj)

    def copy(self, kind: str, namespace: str, name: str) -> Object | None:
        reflector = self.reflectors.get(kind)
        return None if reflector is None else reflector.objects.get((namespace, name))

    def stalled(self, now: float, wait: float) -> bool:
        """Whether its oldest write in flight has run longer than `wait`."""
        oldest = next(iter(self.since.values()), None)
        return oldest is not None and now - oldest > wait


class Members:
    """Each followed member's view (kept in step with the registry by `Registry.follow`)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.views: dict[str, MemberView] = {}

    def ready(self, cluster: str) -> bool:
        member = self.registry.members.get(cluster)
        return member is not None and member.ready

    def listing(self, cluster: str, kind: str) -> bool:
        """Ready, but its copies of a kind not listed yet (right after federator starts, or
        the kind is new)."""
        member = self.registry.members.get(cluster)
        view = self.views.get(cluster)
        return (member is not None and member.ready and member.client is not None
                and (view is None or not view.listed(kind)))

    def writable(self, cluster: str, kind: str) -> bool:
        """Ready, and its copies of a kind known: what reconcile may write to."""
        view = self.views.get(cluster)
        return view is not None and view.listed(kind) and self.ready(cluster)
