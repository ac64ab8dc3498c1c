"""Overflow: a member whose pods of a workload stay unschedulable (`unschedulable_after`)
is full at what it runs; that room is remembered for `capacity_ttl` (the rest of the
replicas go elsewhere), then the member is offered its share again."""

from __future__ import annotations

import asyncio
import datetime

from federator.domain.capacity import overflow
from federator.kube.client import Object
from federator.kube.events import EventRecorder

from .members import Members
from .memory import Key, Memories


def _settled(copy: Object) -> bool:
    """Whether a member's controller has acted on the copy's current spec: only then do its
    pending pods say anything about room (not while a scale-down is still on its way)."""
    status = copy.get("status") or {}
    return (status.get("observedGeneration") == copy["metadata"].get("generation")
            and status.get("replicas") == (copy.get("spec") or {}).get("replicas"))


class Overflow:
    def __init__(self, members: Members, memories: Memories, recorder: EventRecorder,
                 unschedulable_after: float, capacity_ttl: float) -> None:
        self.members = members
        self.memories = memories
        self.recorder = recorder
        self.unschedulable_after = unschedulable_after
        self.capacity_ttl = capacity_ttl

    def learned(self, key: Key) -> dict[str, int]:
        """What overflow has taught of members' room for a workload, while it holds."""
        now = asyncio.get_running_loop().time()
        memory = self.memories.peek(key)
        return {cluster: copy.capacity[0] for cluster, copy in
                (memory.copies.items() if memory else ())
                if copy.capacity is not None and copy.capacity[1] > now}

    def capacity(self, key: Key, obj: Object, ready: list[str]) -> dict[str, int]:
        """What each member can run of a workload, as far as overflow has shown."""
        now = asyncio.get_running_loop().time()
        wall = datetime.datetime.now(datetime.UTC)
        selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        limits = {}
        memory = self.memories.of(key)
        memory.recheck = None
        for cluster in ready:
            view = self.members.views[cluster]
            found = view.copy(*key)
            remembered = memory.copy(cluster)
            if remembered.capacity is not None and remembered.capacity[1] <= now:
                remembered.capacity = None
            if found is not None and _settled(found):
                pending = overflow(view.pending.objects.values(), key[1], selector, now=wall,
                                   threshold=self.unschedulable_after)
                if pending.soonest is not None:
                    self._recheck_within(key, pending.soonest)
                if pending.unschedulable:
                    running = int((found.get("spec") or {}).get("replicas") or 0)
                    limit = max(0, running - pending.unschedulable)
                    if remembered.capacity is None or limit < remembered.capacity[0]:
                        remembered.capacity = (limit, now + self.capacity_ttl)
                        remembered.overflowed = True
            if remembered.capacity is not None:
                limits[cluster] = remembered.capacity[0]
                # Decided again when the cap expires: nothing else may touch the object.
                self._recheck_within(key, max(0.0, remembered.capacity[1] - now))
        return limits

    def _recheck_within(self, key: Key, seconds: float) -> None:
        memory = self.memories.of(key)
        memory.recheck = seconds if memory.recheck is None else min(memory.recheck, seconds)

    async def announce(self, key: Key, obj: Object, ready: list[str]) -> None:
        """An event for each member newly found full."""
        memory = self.memories.of(key)
        for cluster in ready:
            copy = memory.copies.get(cluster)
            if copy is not None and copy.overflowed and copy.capacity is not None:
                copy.overflowed = False
                await self.recorder.record(obj, "Warning", "Overflow",
                                           f"cluster {cluster} is full at {copy.capacity[0]} "
                                           "replicas (pods unschedulable there); the rest go "
                                           "elsewhere")
