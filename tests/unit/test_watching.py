"""What a Reflector remembers of a write before its watch event arrives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from federator.kube.client import KubeError
from federator.kube.watching import Reflector


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

    async def get(self, url: str, *, accept: str | None = None, **params: str) -> Any:
        if not self.allowed.is_set():
            raise KubeError(403, "Forbidden", "statefulsets.apps is forbidden")
        return {"kind": "StatefulSetList", "apiVersion": "apps/v1",
                "metadata": {"resourceVersion": "5"},
                "items": [{"metadata": {"name": "db", "namespace": "shop",
                                        "resourceVersion": "5"}}]}

    async def watch(self, url: str, **options: Any) -> AsyncIterator[Any]:
        await asyncio.Event().wait()
        yield {}


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
        for _ in range(200):
            if mirror.objects:
                break
            await asyncio.sleep(0.05)
        assert list(mirror.objects) == [("shop", "db")] and seen == [("ADDED", "db")]
        assert mirror.denied is None
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_without_the_option_a_forbidden_list_is_not_synced() -> None:
    mirror = Reflector(_Member(), "/apis/apps/v1/statefulsets", ignore,  # type: ignore[arg-type]
                       backoff_max=0.2)
    running = asyncio.ensure_future(mirror.run())
    try:
        for _ in range(10):
            await asyncio.sleep(0.05)
        assert not mirror.synced.is_set() and mirror.denied is None
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
