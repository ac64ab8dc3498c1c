"""The Events federator writes, and what it recalls of them after a restart."""

from __future__ import annotations

from typing import Any

from federator.domain.events import (
    CLUSTERS,
    COMPONENT,
    CREATED,
    creations,
    event,
    seconds,
    unannounced,
)

CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "web", "namespace": "team", "uid": "u-1",
                          "resourceVersion": "7"}}


def test_an_event_names_its_clusters_in_an_annotation() -> None:
    made = event(CONFIGMAP, "Normal", CREATED, "created", now="2026-12-07T13:50:06Z",
                 instance="a", clusters=["member-2", "member-1"])
    assert made["metadata"]["annotations"] == {CLUSTERS: "member-1,member-2"}
    assert made["involvedObject"]["uid"] == "u-1"
    plain = event(CONFIGMAP, "Warning", "Overflow", "full", now="2026-12-07T13:50:06Z",
                  instance="a")
    assert "annotations" not in plain["metadata"]


def _posted(reason: str, uid: str, clusters: str | None, component: str = COMPONENT
            ) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web.1"}
    if clusters is not None:
        meta["annotations"] = {CLUSTERS: clusters}
    return {"metadata": meta, "reason": reason, "reportingComponent": component,
            "involvedObject": {"uid": uid}}


def test_creations_are_read_from_federators_created_events_only() -> None:
    found = creations([
        _posted(CREATED, "u-1", "member-1,member-2"),
        _posted(CREATED, "u-2", "member-3"),
        _posted("UpdatedInCluster", "u-3", "member-1"),      # another reason
        _posted(CREATED, "u-4", "member-1", component="x"),  # another writer
        _posted(CREATED, "u-5", None),                       # no clusters named
        _posted(CREATED, "", "member-1"),                    # no uid
    ])
    assert found == {("u-1", "member-1"), ("u-1", "member-2"), ("u-2", "member-3")}


def test_timestamps_as_the_apiserver_writes_them() -> None:
    assert seconds("1970-01-01T00:01:40Z") == 100.0
    assert seconds("2026-12-07T13:50:06Z") == seconds("2026-12-07T14:50:06+01:00")
    for bad in (None, 100, "", "yesterday", "2026-12-07T13:50:06"):  # no zone: unknown
        assert seconds(bad) is None


def test_a_creation_is_due_only_if_made_in_the_window_and_not_announced() -> None:
    announced = {("u-1", "member-1")}

    def due(uid: str, created: float | None, at: float | None = 10_000.0) -> bool:
        return unannounced(uid, "member-1", created, announced, at, 3600.0)

    assert due("u-2", 9_000.0)
    assert not due("u-1", 9_000.0)          # announced already
    assert not due("u-2", 6_000.0)          # before the window: its event may have expired
    assert not due("u-2", 10_001.0)         # after the recall: this process made it
    assert not due("u-2", None)             # no creation time
    assert not due("u-2", 9_000.0, None)    # the recall failed: nothing is known
    assert due("u-2", 6_400.0) and due("u-2", 10_000.0)  # the window's bounds
