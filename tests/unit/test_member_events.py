"""Which plane object a member event concerns, how repeats coalesce, the rate limit."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from federator.domain import member_events as rules
from federator.domain.member_events import Target, TokenBucket, Unknown
from federator.domain.naming import CLUSTER_LABEL, MANAGED_BY, PLANE_UID

FED = "fed"


def _meta(name: str, uid: str, *, managed: bool = False, plane_uid: str = "",
          owner: tuple[str, str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "shop", "uid": uid}
    if managed:
        meta["labels"] = {MANAGED_BY: FED}
        meta["annotations"] = {PLANE_UID: plane_uid}
    if owner:
        kind, owner_name, owner_uid = owner
        meta["ownerReferences"] = [{"kind": kind, "name": owner_name, "uid": owner_uid,
                                    "controller": True}]
    return {"metadata": meta}


DEPLOYMENTS = {("shop", "web"): _meta("web", "m-web", managed=True, plane_uid="p-web"),
               ("shop", "theirs"): _meta("theirs", "m-theirs")}
REPLICASETS = {
    ("shop", "web-5d8f"): _meta("web-5d8f", "m-rs", owner=("Deployment", "web", "m-web")),
    ("shop", "theirs-77"): _meta("theirs-77", "m-rs2",
                                 owner=("Deployment", "theirs", "m-theirs")),
    ("shop", "batch"): _meta("batch", "m-batch", managed=True, plane_uid="p-batch"),
}
WEB = Target("apps/v1", "Deployment", "shop", "web", "p-web")


def _event(kind: str, name: str, uid: str = "", **more: Any) -> dict[str, Any]:
    involved = {"kind": kind, "name": name, "namespace": "shop"}
    if uid:
        involved["uid"] = uid
    return {"metadata": {"uid": "e1", "namespace": "shop"}, "involvedObject": involved,
            "reason": "Scheduled", "message": "assigned", "type": "Normal", **more}


def _target(event: dict[str, Any]) -> Target | Unknown | None:
    return rules.target(event, DEPLOYMENTS, REPLICASETS, FED)


def test_the_deployment_copy_its_replicasets_and_pods_point_at_the_plane_deployment() -> None:
    assert _target(_event("Deployment", "web", "m-web")) == WEB
    assert _target(_event("ReplicaSet", "web-5d8f")) == WEB
    assert _target(_event("Pod", "web-5d8f-x7k2p")) == WEB


def test_a_propagated_replicaset_and_its_pods_point_at_the_plane_replicaset() -> None:
    batch = Target("apps/v1", "ReplicaSet", "shop", "batch", "p-batch")
    assert _target(_event("ReplicaSet", "batch")) == batch
    assert _target(_event("Pod", "batch-abcde")) == batch


def test_objects_federator_did_not_propagate_are_left_alone() -> None:
    assert _target(_event("Deployment", "theirs")) is None
    assert _target(_event("ReplicaSet", "theirs-77")) is None
    assert _target(_event("Pod", "theirs-77-abcde")) is None
    assert _target(_event("Pod", "lonely")) is None  # not made by a ReplicaSet
    assert _target(_event("Node", "node-1")) is None
    # a Deployment of the same name made again outside federator (another uid)
    assert _target(_event("Deployment", "web", "someone-else")) is None


def test_objects_not_seen_yet_are_asked_about_again() -> None:
    assert _target(_event("ReplicaSet", "web-99")) == Unknown("ReplicaSet", "shop", "web-99")
    assert _target(_event("Pod", "web-99-abcde")) == Unknown("ReplicaSet", "shop", "web-99")
    assert _target(_event("Deployment", "api")) == Unknown("Deployment", "shop", "api")


def test_occurrence_reads_both_event_apis() -> None:
    core = _event("Pod", "p", count=3, firstTimestamp="2026-01-01T00:00:00Z",
                  lastTimestamp="2026-01-01T00:05:00Z")
    assert rules.occurrence(core) == (3, "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z")
    series = _event("Pod", "p", eventTime="2026-01-01T00:00:00.123456Z",
                    series={"count": 4, "lastObservedTime": "2026-01-01T00:09:00.5Z"})
    assert rules.occurrence(series) == (4, "2026-01-01T00:00:00Z", "2026-01-01T00:09:00Z")
    bare = _event("Pod", "p", eventTime="2026-01-01T00:00:00.000001Z")
    assert rules.occurrence(bare) == (1, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")


def test_the_plane_event_names_the_cluster_source_and_member_object() -> None:
    event = _event("Pod", "web-5d8f-x7k2p", source={"component": "default-scheduler"})
    body = rules.plane_event("member-1", event, WEB, sources={"e1": 2, "e2": 1},
                             first="2026-01-01T00:00:00Z", last="2026-01-01T00:01:00Z",
                             instance="fed-0")
    assert body["involvedObject"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "namespace": "shop", "name": "web", "uid": "p-web"}
    assert body["message"] == "[member-1] Pod web-5d8f-x7k2p: assigned"
    assert body["source"] == {"component": "default-scheduler", "host": "member-1"}
    assert body["count"] == 3
    assert body["metadata"]["labels"] == {CLUSTER_LABEL: "member-1"}
    assert rules.read_sources(body) == {"e1": 2, "e2": 1}
    own = rules.plane_event("member-1", _event("Deployment", "web"), WEB, sources={"e": 1},
                            first="", last="", instance="fed-0")
    assert own["message"] == "[member-1] assigned"


def test_repeats_share_a_name_and_differences_do_not() -> None:
    one = rules.copy_name("member-1", _event("Pod", "web-5d8f-x7k2p"), WEB)
    again = _event("Pod", "web-5d8f-x7k2p")
    again["metadata"]["uid"] = "e9"
    assert rules.copy_name("member-1", again, WEB) == one
    assert one.startswith("web.")
    assert rules.copy_name("member-2", again, WEB) != one
    assert rules.copy_name("member-1", {**again, "reason": "Failed"}, WEB) != one


@given(st.lists(st.tuples(st.sampled_from([f"e{i}" for i in range(60)]),
                          st.integers(1, 1000)), max_size=200))
def test_sources_sum_to_the_largest_count_of_each_member_event(
        updates: list[tuple[str, int]]) -> None:
    sources: dict[str, int] = {}
    for uid, count in updates:
        sources = rules.add_source(sources, uid, count)
        assert len(sources) <= rules.MAX_SOURCES + 1
    expected: dict[str, int] = {}
    for uid, count in updates:  # while nothing is folded, each uid keeps its highest count
        expected[uid] = max(count, expected.get(uid, 0))
    if len(expected) <= rules.MAX_SOURCES:
        assert sources == expected
    assert sum(sources.values()) >= sum(expected.values())  # folding never loses a repeat


def test_unreadable_sources_count_as_none() -> None:
    assert rules.read_sources({"metadata": {"annotations": {
        rules.SOURCES_ANNOTATION: "not json"}}}) == {}
    assert rules.read_sources({"metadata": {"annotations": {
        rules.SOURCES_ANNOTATION: json.dumps([1])}}}) == {}


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == 0.1
    assert bucket.take(0.1) == 0.0
    assert bucket.take(10.0) == 0.0  # refilled, but never past the burst
    assert [bucket.take(10.0) for _ in range(3)][-1] > 0
