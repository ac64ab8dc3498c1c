"""What propagation remembers of each plane object, in one record per object (and one per
copy of it in a member), so that everything it held goes at once when the object goes.

Some of it must outlive the plane object: a write still running in a member, a copy left
behind in an unreachable member (swept when it returns), the workloads that use a name
(the object may be created later). A record is forgotten once none of that is left."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from federator.domain import dependencies

Key = tuple[str, str, str]  # (kind with its group: Deployment.apps, namespace, name)


@dataclass(frozen=True)
class Outcome:
    """What writing one member's copy came to: an error to report, or an action done
    (reason, what was done, cluster), or neither (it was right already)."""

    error: str | None = None
    action: tuple[str, str, str] | None = None
    waiting: str | None = None  # not written yet, and why: no failure (a CRD on its way)


@dataclass
class Copy:
    """What is remembered of an object's copy in one member."""

    applied: str | None = None  # the copy last written (its fingerprint: writing.digest)
    normal: str | None = None  # and what the member made of it (writing.content)
    error: str | None = None  # the error last announced
    capacity: tuple[int, float] | None = None  # room learned by overflow, until a deadline
    overflowed: bool = False  # room learned, not yet announced
    released: bool | None = None  # left behind (unreachable): True if orphan-deleted
    writing: asyncio.Future[Outcome] | None = None  # a write still running
    late: Outcome | None = None  # what a write that went on alone came to

    def idle(self) -> bool:
        """Nothing in it that outlives the plane object."""
        return self.writing is None and self.late is None and self.released is None


@dataclass
class Memory:
    """What is remembered of one plane object."""

    orphaned: bool = False  # seen deleted with the orphan finalizer
    plan: dict[str, int] | None = None  # the spread last announced
    reported: str | None = None  # the placement problem last announced
    settled: tuple[Any, ...] | None = None  # made right, and what that depended on
    recheck: float | None = None  # overflow may next be decided this soon
    uses: frozenset[dependencies.Reference] = frozenset()  # a workload's ConfigMaps, ...
    users: set[Key] = field(default_factory=set)  # the workloads that use this object
    copies: dict[str, Copy] = field(default_factory=dict)

    def copy(self, cluster: str) -> Copy:
        found = self.copies.get(cluster)
        if found is None:
            found = self.copies[cluster] = Copy()
        return found

    def forget_gone(self) -> None:
        """The plane object is gone: what only it needed goes."""
        self.orphaned = False
        self.plan = self.reported = self.settled = self.recheck = None
        for cluster, copy in list(self.copies.items()):
            copy.applied = copy.normal = copy.error = copy.capacity = None
            copy.overflowed = False
            if copy.idle():
                del self.copies[cluster]

    def idle(self) -> bool:
        """Nothing in it that outlives the plane object."""
        return (not self.orphaned and not self.uses and not self.users
                and all(c.idle() for c in self.copies.values()))


class Memories:
    """Every object's record, made when first needed; `present` says whether the plane
    still holds an object (while it does, its record stays)."""

    def __init__(self, present: Callable[[Key], bool]) -> None:
        self._records: dict[Key, Memory] = {}
        self._present = present

    def __len__(self) -> int:
        return len(self._records)

    def of(self, key: Key) -> Memory:
        found = self._records.get(key)
        if found is None:
            found = self._records[key] = Memory()
        return found

    def peek(self, key: Key) -> Memory | None:
        return self._records.get(key)

    def copy(self, key: Key, cluster: str) -> Copy | None:
        found = self._records.get(key)
        return None if found is None else found.copies.get(cluster)

    def gone(self, key: Key) -> None:
        """The plane object is gone: forget what only it needed, all of it if nothing
        else is left."""
        found = self._records.get(key)
        if found is not None:
            found.forget_gone()
            self.tidy(key)

    def tidy(self, key: Key) -> None:
        """Forget an object the plane no longer holds once its record holds nothing that
        outlives it."""
        found = self._records.get(key)
        if found is not None and found.idle() and not self._present(key):
            del self._records[key]

    def forget_cluster(self, cluster: str) -> None:
        """A member left: what was remembered of copies there goes (a write still running
        there keeps its record until it ends)."""
        for key, found in list(self._records.items()):
            copy = found.copies.get(cluster)
            if copy is not None and copy.writing is None:
                del found.copies[cluster]
                self.tidy(key)
