"""What a Reflector remembers of a write before its watch event arrives."""

from __future__ import annotations

from typing import Any

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


def test_an_older_version_does_not_replace_a_newer_one() -> None:
    mirror = Reflector(None, "/api/v1/configmaps", ignore)  # type: ignore[arg-type]
    mirror.remember(obj("9"))
    mirror.remember(obj("8"))
    assert mirror.objects[("default", "c")]["metadata"]["resourceVersion"] == "9"
