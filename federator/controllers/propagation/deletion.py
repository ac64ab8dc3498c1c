"""Deletion: a plane object being deleted has its copies removed (or released, when it is
orphan-deleted) before federator's finalizer is lifted; an unreachable member holds that no
longer than `deletion_timeout` (its copy is swept when it returns). Sweeping: copies whose
plane object is gone, found once a member's copies of a kind are listed and each time the
member is Ready again."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from typing import Any

import structlog

from federator.domain.naming import FEDERATION_NAMESPACE, PLANE_UID
from federator.domain.propagation import FINALIZER, ORPHAN_FINALIZER, managed_by
from federator.kube.client import Object
from federator.kube.events import EventRecorder

from .members import Members, MemberView
from .memory import Key, Memories
from .plane import Plane
from .writing import Job, Writer

log = structlog.get_logger(__name__)


class Deleter:
    def __init__(self, plane: Plane, members: Members, memories: Memories, writer: Writer,
                 recorder: EventRecorder, federation: str, timeout: float) -> None:
        self.plane = plane
        self.members = members
        self.memories = memories
        self.writer = writer
        self.recorder = recorder
        self.federation = federation
        self.timeout = timeout

    async def delete(self, key: Key, obj: Object) -> float | None:
        """The plane object is being deleted: its copies go (or are released), then its
        finalizer. Returns a delay to look again, if any."""
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or []
        if FINALIZER not in finalizers:
            return None
        memory = self.memories.of(key)
        orphan = memory.orphaned or ORPHAN_FINALIZER in finalizers
        registry = self.members.registry
        if any(self.members.listing(c, key[0]) for c in registry.members):
            return None  # nothing is decided before a member's copies are listed
        left: list[str] = []
        jobs: dict[str, Job] = {}
        for cluster in sorted(set(self.members.views) | set(registry.members)):
            member, view = registry.members.get(cluster), self.members.views.get(cluster)
            if view is None or not view.listed(key[0]):
                if member is not None:
                    left.append(cluster)  # away since federator started: copies unknown
                continue
            if view.copy(*key) is None:
                continue
            if member is None or not member.ready:
                left.append(cluster)
                continue
            jobs[cluster] = functools.partial(self.writer.drop, cluster, view, key, orphan)
        outcomes, waiting = await self.writer.write(key, jobs)
        left += sorted(waiting | {c for c, o in outcomes.items() if o.error})
        if left:
            if not self._timed_out(meta):
                return 5.0
            for cluster in left:  # its copy is swept (or released) when it returns
                memory.copy(cluster).released = orphan
            await self.recorder.record(obj, "Warning", "LeftBehind",
                                       f"{obj['kind']} {key[2]} may be left in unreachable "
                                       f"cluster(s) {', '.join(sorted(left))} until they "
                                       "return")
        verb = "released" if orphan else "deleted"
        log.info(f"member copies {verb}", kind=key[0], namespace=key[1], object=key[2])
        lifted = await self.plane.set_finalizers(obj, [f for f in finalizers if f != FINALIZER])
        if lifted is not None:
            # Only once the finalizer is off: should the plane's GC have taken the orphan
            # finalizer first (409), the next try must still know that it releases.
            memory.orphaned = False
        return None

    def _timed_out(self, meta: dict[str, Any]) -> bool:
        since = datetime.datetime.strptime(meta["deletionTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
        age = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - since
        return age.total_seconds() > self.timeout

    async def gone(self, key: Key) -> None:
        """The plane object is gone without its finalizer having done its work (it was
        deleted while its first copies were written): remove the copies written then. Then
        what was remembered of it goes."""
        memory = self.memories.peek(key)
        if memory is None:
            return
        for cluster, view in self.members.views.items():
            copy = memory.copies.get(cluster)
            if copy is None or copy.applied is None or memory.orphaned:
                continue
            copy.applied = copy.normal = None
            if view.copy(*key) is not None and self.members.writable(cluster, key[0]):
                await view.client.delete(self.plane.url(*key))
                log.info("copy of a deleted object removed", cluster=cluster, kind=key[0],
                         namespace=key[1], object=key[2])
        self.memories.gone(key)

    async def sweep(self, cluster: str, view: MemberView, kind: str,
                    owns: Callable[[Key], bool]) -> None:
        """Remove every copy of a kind in `cluster` whose plane object is gone: deleted while
        federator was down, before its finalizer landed, or while this member was away
        (LeftBehind). Released instead where the plane object was orphan-deleted. Runs once
        both sides are listed, again whenever the member returns, and when this replica
        takes shards; only copies of objects in this replica's shards (`owns`)."""
        plane_view = self.plane.views.get(kind)
        reflector = view.reflectors.get(kind)
        if plane_view is None or reflector is None:
            return
        await plane_view.synced.wait()
        swept = 0
        for (namespace, name), found in list(reflector.objects.items()):
            key = (kind, namespace, name)
            # Only copies: they carry their plane object's uid. federator's own identity in
            # the member (made by join, in federation-system) is managed too: never.
            annotations = found["metadata"].get("annotations") or {}
            if ((namespace, name) in plane_view.objects
                    or not owns(key)
                    or not managed_by(found, self.federation)
                    or PLANE_UID not in annotations
                    or FEDERATION_NAMESPACE in (namespace, name)
                    or not self.members.writable(cluster, kind)):
                continue
            memory = self.memories.peek(key)
            copy = None if memory is None else memory.copies.get(cluster)
            orphan = bool(copy is not None and copy.released) or bool(memory and memory.orphaned)
            outcome = await self.writer.drop(cluster, view, key, orphan)
            if outcome.error:
                log.warning("sweep failed", cluster=cluster, kind=kind, namespace=namespace,
                            object=name, error=outcome.error)
                continue
            if copy is not None:
                copy.released = None
            self.memories.tidy(key)
            swept += 1
            log.info("copy of a deleted plane object " + ("released" if orphan else "removed"),
                     cluster=cluster, kind=kind, namespace=namespace, object=name)
        if swept:
            log.info("member swept", cluster=cluster, kind=kind, removed=swept)
