"""Writing members' copies: one copy made right (server-side apply, only when it differs
from what is wanted), removed or released; and the writes for one object run side by side,
waited for no longer than `member_wait`, so that a slow or hung member delays nothing
else."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from federator.domain import replicas as replica_rules
from federator.domain.events import CREATED
from federator.domain.naming import MANAGED_BY, PLANE_UID
from federator.domain.objects import difference
from federator.domain.overrides import PatchError, apply_patch
from federator.domain.propagation import ADOPT_ANNOTATION, managed_by, member_copy
from federator.kube.client import KubeError, Object
from federator.kube.resources import KINDS, path
from federator.kube.watching import METADATA

from .members import Members, MemberView
from .memory import Key, Memories, Outcome
from .plane import Plane
from .reporting import Recall

log = structlog.get_logger(__name__)

NAMESPACES = KINDS[("v1", "Namespace")]
Job = Callable[[], Awaitable[Outcome]]


def digest(value: Any) -> str:
    """A short fingerprint of a JSON value (what is remembered of a copy instead of it)."""
    return hashlib.blake2b(json.dumps(value, sort_keys=True).encode(), digest_size=16
                           ).hexdigest()


def content(obj: Object) -> str:
    """The fingerprint of what a copy holds that federator writes: all but its status and
    the metadata the server keeps (versions, managed fields)."""
    meta = obj.get("metadata") or {}
    return digest({**{k: v for k, v in obj.items() if k not in ("status", "metadata")},
                   "labels": meta.get("labels"), "annotations": meta.get("annotations")})


def clash(kind: str, name: str) -> str:
    return (f"a {kind} {name} that federator does not manage exists there; it is left "
            f"alone (annotate the plane object {ADOPT_ANNOTATION}=true to adopt it)")


def _outcome(task: asyncio.Future[Outcome], cluster: str, key: Key) -> Outcome:
    """What a finished write came to; a crash of it is logged and reported as an error."""
    error = task.exception()
    if error is None:
        return task.result()
    log.error("write crashed", cluster=cluster, kind=key[0], namespace=key[1], object=key[2],
              exc_info=error)
    return Outcome(error="internal error; federator's log has the details")


class Writer:
    def __init__(self, plane: Plane, members: Members, memories: Memories, federation: str,
                 member_wait: float, again: Callable[[Key], None], recall: Recall) -> None:
        self.plane = plane
        self.recall = recall
        self.members = members
        self.memories = memories
        self.federation = federation
        self.member_wait = member_wait
        self.again = again  # look at an object again (a slow write ended)
        self.running: dict[asyncio.Future[Outcome], Key] = {}  # write -> its object

    # one object, every member -----------------------------------------------------------
    async def write(self, key: Key, jobs: dict[str, Job]) -> tuple[dict[str, Outcome], set[str]]:
        """Run each member's write for one object as a task of its own and wait for them up
        to `member_wait` (not at all for a stalled member): what they came to, and the
        members whose write goes on. A write that goes on (a slow or hung member) delays
        nothing else: when it ends, what it came to is kept for the next reconcile of the
        object, which it brings about. One write per copy at a time: a member whose last
        write still runs is left out."""
        now = asyncio.get_running_loop().time()
        memory = self.memories.of(key)
        started: dict[str, asyncio.Future[Outcome]] = {}
        waited = []
        for cluster, job in jobs.items():
            copy = memory.copy(cluster)
            view = self.members.views[cluster]
            if copy.writing is not None:
                continue
            if not view.stalled(now, self.member_wait):
                waited.append(cluster)
            started[cluster] = copy.writing = asyncio.ensure_future(job())
            self.running[copy.writing] = key
            view.since[key] = now
        if waited:
            await self._wait_for([started[c] for c in waited], now)
        outcomes: dict[str, Outcome] = {}
        for cluster, task in started.items():
            if task.done():
                self._written(cluster, key, task)
                outcomes[cluster] = _outcome(task, cluster, key)
            else:
                task.add_done_callback(functools.partial(self._written_late, cluster, key))
        for cluster in jobs:
            copy = memory.copy(cluster)
            late, copy.late = copy.late, None
            if late is not None:
                fresh = outcomes.get(cluster, Outcome())
                outcomes[cluster] = Outcome(error=fresh.error if cluster in started
                                            else late.error,
                                            action=fresh.action or late.action)
        return outcomes, {c for c in jobs if memory.copy(c).writing is not None}

    async def _wait_for(self, tasks: list[asyncio.Future[Outcome]], began: float) -> None:
        """Until every write is done, but no longer than member_wait, and once the first is
        done, the others get twice as long as it took (at least 0.1 s): a member far slower
        than its peers is not waited for."""
        loop = asyncio.get_running_loop()
        _, pending = await asyncio.wait(tasks, timeout=self.member_wait,
                                        return_when=asyncio.FIRST_COMPLETED)
        spent = loop.time() - began
        grace = min(self.member_wait - spent, max(0.1, 2 * spent))
        if pending and grace > 0:
            await asyncio.wait(pending, timeout=grace)

    def _written(self, cluster: str, key: Key, task: asyncio.Future[Outcome]) -> None:
        self.running.pop(task, None)
        copy = self.memories.copy(key, cluster)
        if copy is not None and copy.writing is task:
            copy.writing = None
        view = self.members.views.get(cluster)
        if view is not None:
            view.since.pop(key, None)

    def _written_late(self, cluster: str, key: Key, task: asyncio.Future[Outcome]) -> None:
        self._written(cluster, key, task)
        if task.cancelled():
            self.memories.tidy(key)
            return
        self.memories.of(key).copy(cluster).late = _outcome(task, cluster, key)
        log.info("slow write ended", cluster=cluster, kind=key[0], namespace=key[1],
                 object=key[2])
        self.again(key)

    def stop(self, which: Callable[[Key], bool] = lambda _: True
             ) -> list[asyncio.Future[Outcome]]:
        """Cancel every write still running (of the objects `which` picks); what to await
        for their ends."""
        stopped = [task for task, key in self.running.items() if which(key)]
        for task in stopped:
            task.cancel()
        return stopped

    # one copy ---------------------------------------------------------------------------
    async def sync(self, cluster: str, key: Key, obj: Object, replicas: int | None,
                   field: replica_rules.ReplicaField | None, completions: int | None,
                   patches: list[dict[str, Any]]) -> Outcome:
        """Write one member's copy if it differs."""
        view = self.members.views[cluster]
        memory = self.memories.of(key).copy(cluster)
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
        if not view.serves(kind):
            return Outcome(waiting=f"{self.plane.resources[kind].plural} not served there yet")
        copy = view.copy(*key)
        other = None
        fingerprint = digest(desired)
        changed = difference(copy, desired) if copy is not None else None
        if copy is not None and (changed is None or (
                memory.applied == fingerprint and memory.normal == content(copy))):
            # Right, or as the member made of what was written (it normalises some values).
            first, memory.applied = memory.applied is None, fingerprint
            if first and await self.recall.due(obj, cluster, copy):
                # Written by a replica that stopped before it announced the creation.
                return Outcome(action=(CREATED, "created", cluster))
            return Outcome()
        async with view.limit:
            if not self.members.writable(cluster, kind):
                return Outcome()  # went away while waiting for a slot: decided again then
            url = self.plane.url(kind, namespace, name)
            try:
                if copy is None:
                    if namespace and namespace not in view.namespaces:
                        await self._ensure_namespace(view, namespace)
                    other = await self._owner(view, namespace, url)
                    if other is not None and not managed_by(other, self.federation):
                        annotations = obj["metadata"].get("annotations") or {}
                        if annotations.get(ADOPT_ANNOTATION) != "true":
                            return Outcome(error=clash(obj["kind"], name))
                # A first write does not force: should an object of that name have appeared
                # meanwhile, its owner's fields make it fail (409) instead of being taken.
                written = await view.client.apply(url, desired,
                                                  force=copy is not None or other is not None)
            except KubeError as exc:
                if exc.conflict and copy is None:
                    return Outcome(error=clash(obj["kind"], name))
                return Outcome(error=f"{exc.reason}: {exc.message}"[:300])
        written.setdefault("kind", obj["kind"])
        written.setdefault("apiVersion", obj["apiVersion"])
        view.remember(written)
        if kind == "Namespace" and copy is None and other is None:
            view.fresh.add(name)
        previous, memory.applied = memory.applied, fingerprint
        memory.normal = content(written)
        if copy is None and previous is None:
            return Outcome(action=(CREATED, "created", cluster))
        if copy is None:
            return Outcome(action=("DriftCorrected", "recreated (deleted there)", cluster))
        if previous == fingerprint:
            return Outcome(action=("DriftCorrected", f"restored {changed} (changed there)",
                                   cluster))
        return Outcome(action=("UpdatedInCluster", f"updated {changed}", cluster))

    @staticmethod
    async def _owner(view: MemberView, namespace: str, url: str) -> Object | None:
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

    async def _ensure_namespace(self, view: MemberView, namespace: str) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": namespace, "labels": {MANAGED_BY: self.federation}}}
        try:
            await view.client.create(path(NAMESPACES), body)
            view.fresh.add(namespace)
        except KubeError as exc:
            if not exc.conflict:
                raise
        view.namespaces.add(namespace)

    async def remove(self, cluster: str, key: Key) -> Outcome:
        """A copy where the object is no longer placed."""
        view = self.members.views[cluster]
        if view.copy(*key) is None:
            return Outcome()
        dropped = await self.drop(cluster, view, key, orphan=False)
        if dropped.error:
            return dropped
        return Outcome(action=("RemovedFromCluster", "removed (no longer placed there)",
                               cluster))

    async def drop(self, cluster: str, view: MemberView, key: Key, orphan: bool) -> Outcome:
        """Delete (or release: leave to the member, no longer federator's) one member's
        copy: its plane object is being deleted, gone, or no longer placed there."""
        url = self.plane.url(*key)
        try:
            if orphan:
                await view.client.merge_patch(url, {"metadata": {
                    "labels": {MANAGED_BY: None}, "annotations": {PLANE_UID: None}}})
            else:
                await view.client.delete(url)
        except KubeError as exc:
            if not exc.not_found:
                return Outcome(error=f"{exc.reason}: {exc.message}"[:300])
        copy = self.memories.copy(key, cluster)
        if copy is not None:
            copy.applied = copy.normal = None
        if key[0] == "Namespace":
            view.fresh.discard(key[2])
            view.namespaces.discard(key[2])
        return Outcome()
