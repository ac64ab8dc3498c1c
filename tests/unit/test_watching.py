"""What a Reflector remembers of a write before its watch event arrives."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from federator.kube.client import KubeError
from federator.kube.watching import Reflector, SharedReflectors, unwatched
from tests import clock


def obj(version: str, **meta: Any) -> dict[str, Any]:
    return {"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default",
                                              "resourceVersion": version, **meta}}


async def ignore(kind: str, changed: dict[str, Any]) -> None:
    return None


def test_a_write_that_deleted_the_object_is_not_remembered() -> None:
    """Lifting the last finalizer of an object being deleted deletes it. Its DELETED event
    may come before the write's answer: remembering the answer then would leave a ghost
    that no event ever removes (seen: a sweep took a deleted plane object for present)."""
    mirror = Reflector(None, "/api/v1/configmaps", ignore)  # type: ignore[arg-type]
    mirror.remember(obj("7", deletionTimestamp="2026-12-03T15:40:18Z", finalizers=[]))
    assert mirror.objects == {}
    mirror.remember(obj("8", deletionTimestamp="2026-12-03T15:40:18Z",
                        finalizers=["orphan"]))
    assert list(mirror.objects) == [("default", "c")]  # still there: a finalizer holds it


def test_a_mirror_keeps_no_managed_fields() -> None:
    mirror = Reflector(None, "/api/v1/configmaps", ignore)  # type: ignore[arg-type]
    mirror.remember(obj("9", managedFields=[{"manager": "kubectl", "fieldsV1": {}}],
                        labels={"a": "b"}))
    kept = mirror.objects[("default", "c")]["metadata"]
    assert "managedFields" not in kept and kept["labels"] == {"a": "b"}


def test_an_older_version_does_not_replace_a_newer_one() -> None:
    mirror = Reflector(None, "/api/v1/configmaps", ignore)  # type: ignore[arg-type]
    mirror.remember(obj("9"))
    mirror.remember(obj("8"))
    assert mirror.objects[("default", "c")]["metadata"]["resourceVersion"] == "9"


class _Member:
    """An apiserver that forbids the list until `allowed` is set, then lists one object and
    keeps the watch open without events."""

    server = "https://member.invalid"

    def __init__(self) -> None:
        self.allowed = asyncio.Event()
        self.refused = 0  # lists refused

    async def get(self, url: str, *, accept: str | None = None, **params: str) -> Any:
        if not self.allowed.is_set():
            self.refused += 1
            raise KubeError(403, "Forbidden", "statefulsets.apps is forbidden")
        return {"kind": "StatefulSetList", "apiVersion": "apps/v1",
                "metadata": {"resourceVersion": "5"},
                "items": [{"metadata": {"name": "db", "namespace": "shop",
                                        "resourceVersion": "5"}}]}

    async def watch(self, url: str, **options: Any) -> AsyncIterator[Any]:
        await asyncio.Event().wait()
        yield {}


@clock.virtual
async def test_a_forbidden_list_counts_as_empty_until_it_is_allowed() -> None:
    """A member joined before federator propagated a kind lets it list nothing of it: that
    kind is synced and empty (the member's other kinds go on), and listed for real once
    the rights are granted."""
    member = _Member()
    seen: list[tuple[str, str]] = []

    async def record(kind: str, changed: dict[str, Any]) -> None:
        seen.append((kind, changed["metadata"]["name"]))

    mirror = Reflector(member, "/apis/apps/v1/statefulsets", record,  # type: ignore[arg-type]
                       absent_is_empty=True, backoff_max=0.2)
    running = asyncio.ensure_future(mirror.run())
    try:
        await mirror.synced.wait()
        assert (mirror.objects, seen) == ({}, [])
        assert mirror.denied == "statefulsets.apps is forbidden"
        member.allowed.set()
        await clock.until(lambda: mirror.objects, "the kind listed once allowed")
        assert list(mirror.objects) == [("shop", "db")] and seen == [("ADDED", "db")]
        assert mirror.denied is None
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


@clock.virtual
async def test_without_the_option_a_forbidden_list_is_not_synced() -> None:
    member = _Member()
    mirror = Reflector(member, "/apis/apps/v1/statefulsets", ignore,  # type: ignore[arg-type]
                       backoff_max=0.2)
    running = asyncio.ensure_future(mirror.run())
    try:
        await clock.until(lambda: member.refused >= 3, "the list refused and tried again")
        assert not mirror.synced.is_set() and mirror.denied is None
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


class _Counted(_Member):
    """Lists one object (the list allowed from the start) and counts lists and watches."""

    def __init__(self) -> None:
        super().__init__()
        self.allowed.set()
        self.lists = 0
        self.watching = 0

    async def get(self, url: str, *, accept: str | None = None, **params: str) -> Any:
        self.lists += 1
        return await super().get(url, accept=accept, **params)

    async def watch(self, url: str, **options: Any) -> AsyncIterator[Any]:
        self.watching += 1
        try:
            await asyncio.Event().wait()
            yield {}
        finally:
            self.watching -= 1


@clock.virtual
async def test_controllers_share_one_watch_of_a_collection() -> None:
    """Two followers of one collection: one list, one watch; the second, coming once it is
    listed, hears what is there as ADDED; the watch stops when the last follower goes, and
    a follower of another collection (or selector) gets a watch of its own."""
    member = _Counted()
    shared = SharedReflectors()
    heard: dict[str, list[tuple[str, str]]] = {"dns": [], "propagation": []}

    def into(who: str) -> Any:
        async def hear(kind: str, changed: dict[str, Any]) -> None:
            heard[who].append((kind, changed["metadata"]["name"]))
        return hear

    url = "/api/v1/services"
    first = shared.subscribe(member, url, into("propagation"),  # type: ignore[arg-type]
                             label_selector="federator.io/managed-by=f")
    running = [asyncio.ensure_future(first.run())]
    await first.reflector.synced.wait()
    second = shared.subscribe(member, url, into("dns"),  # type: ignore[arg-type]
                              label_selector="federator.io/managed-by=f")
    other = shared.subscribe(member, url, ignore)  # type: ignore[arg-type]
    running += [asyncio.ensure_future(second.run()), asyncio.ensure_future(other.run())]
    try:
        await clock.until(lambda: heard["dns"] and member.watching == 2,
                          "the late follower heard, and both watches open")
        assert second.reflector is first.reflector and other.reflector is not first.reflector
        assert heard == {"dns": [("ADDED", "db")], "propagation": [("ADDED", "db")]}
        assert (member.lists, member.watching, len(shared)) == (2, 2, 2)
        running[0].cancel()  # propagation goes: DNS still hears
        await asyncio.gather(running[0], return_exceptions=True)
        await asyncio.sleep(1)  # on the virtual clock: a second for a watch to stop
        assert (member.watching, len(shared)) == (2, 2)
        running[1].cancel()  # the last follower of the Services goes: their watch stops
        await asyncio.gather(running[1], return_exceptions=True)
        await clock.until(lambda: (member.watching, len(shared)) == (1, 1),
                          "the Services' watch stopped with its last follower")
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


def test_a_mirror_holds_each_string_once() -> None:
    """The plane's object and a member's copy, decoded apart, share their equal strings
    (names, keys, the data itself) once mirrored; nothing else about them changes."""
    text = json.dumps({"kind": "ConfigMap", "metadata": {
        "name": "shared", "namespace": "default", "resourceVersion": "5",
        "labels": {"app": "web-frontend"}},
        "data": {"payload": "p" * 4096, "list": ["alpha", ["beta-value"]]}})
    plane = Reflector(None, "/api/v1/configmaps", ignore)  # type: ignore[arg-type]
    member = Reflector(None, "/api/v1/configmaps", ignore)  # type: ignore[arg-type]
    plane.remember(json.loads(text))
    member.remember(json.loads(text))
    mine, theirs = plane.objects[("default", "shared")], member.objects[("default", "shared")]
    assert mine == theirs == json.loads(text)
    assert mine["data"]["payload"] is theirs["data"]["payload"]
    assert mine["data"]["list"][1][0] is theirs["data"]["list"][1][0]
    assert next(iter(mine["metadata"])) is next(iter(theirs["metadata"]))
    assert mine["metadata"]["labels"]["app"] is theirs["metadata"]["labels"]["app"]


class _Flaky(_Counted):
    """Its watch fails `failures` times before the server accepts one."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def watch(self, url: str, **options: Any) -> AsyncIterator[Any]:
        if self.failures:
            self.failures -= 1
            raise KubeError(503, "ServiceUnavailable", "the plane is away")
        options["opened"]()
        await asyncio.Event().wait()
        yield {}


@clock.virtual
async def test_a_collection_counts_as_watched_only_while_its_watch_is_open() -> None:
    """What /readyz asks after an outage: listed is not enough, the watch must be open
    again (a reflector in its backoff would leave changes waiting)."""
    member = _Flaky(failures=3)
    mirror = Reflector(member, "/apis/apps/v1/statefulsets", ignore)  # type: ignore[arg-type]
    running = asyncio.ensure_future(mirror.run())
    try:
        await mirror.synced.wait()
        assert unwatched(member) == ["/apis/apps/v1/statefulsets"]  # type: ignore[arg-type]
        await clock.until(lambda: mirror.watching, "the watch open after its failures")
        assert member.failures == 0
        assert unwatched(member) == []  # type: ignore[arg-type]
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert not mirror.watching and unwatched(member) == []  # type: ignore[arg-type]
