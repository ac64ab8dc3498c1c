from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from federator.domain.propagation import SPEC_HASH, spec_hash
from federator.domain.status import (
    SUMMED,
    MemberState,
    aggregate,
    aggregate_job,
    aggregate_scaled,
)

PLANE = {"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 3},
         "status": {"observedGeneration": 1}}


OLD_SPEC = spec_hash({"spec": {"replicas": 2}})


def copy(replicas: int, *, spec: str = spec_hash(PLANE), observed: bool = True,
         available: str = "True") -> dict[str, Any]:
    return {"metadata": {"generation": 5, "annotations": {SPEC_HASH: spec}},
            "status": {"observedGeneration": 5 if observed else 4, "replicas": replicas,
                       "updatedReplicas": replicas, "readyReplicas": replicas,
                       "availableReplicas": replicas,
                       "conditions": [{"type": "Available", "status": available,
                                       "reason": "MinimumReplicasAvailable"},
                                      {"type": "Progressing", "status": "True",
                                       "reason": "NewReplicaSetAvailable"}]}}


def test_sum_and_generation_when_every_member_observed() -> None:
    status, breakdown = aggregate(PLANE, {"a": MemberState(2, copy(2)),
                                          "b": MemberState(1, copy(1))})
    assert status["readyReplicas"] == 3 and status["availableReplicas"] == 3
    assert status["observedGeneration"] == 2
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Available": "True", "Progressing": "True"}
    assert breakdown == {"a": {"desired": 2, "replicas": 2, "ready": 2},
                         "b": {"desired": 1, "replicas": 1, "ready": 1}}


def test_generation_waits_for_a_member_behind() -> None:
    for lagging in (copy(1, spec=OLD_SPEC), copy(1, observed=False), None):
        status, _ = aggregate(PLANE, {"a": MemberState(2, copy(2)),
                                      "b": MemberState(1, lagging, error="unreachable")})
        assert status["observedGeneration"] == 1


def test_conditions_name_the_clusters_that_lag() -> None:
    status, breakdown = aggregate(PLANE, {"a": MemberState(2, copy(2, available="False")),
                                          "b": MemberState(1, None, error="boom")})
    available = next(c for c in status["conditions"] if c["type"] == "Available")
    assert available["status"] == "False"
    assert available["message"] == "a: MinimumReplicasAvailable; b: not reported"
    assert breakdown["b"] == {"desired": 1, "replicas": 0, "ready": 0, "error": "boom"}


STATEFUL = {"kind": "StatefulSet", "metadata": {"generation": 1}, "spec": {"replicas": 4}}


def stateful_copy(ready: int, current: str, update: str) -> dict[str, Any]:
    return {"metadata": {"generation": 3, "annotations": {SPEC_HASH: spec_hash(STATEFUL)}},
            "status": {"observedGeneration": 3, "replicas": ready, "readyReplicas": ready,
                       "currentReplicas": ready, "updatedReplicas": ready,
                       "availableReplicas": ready, "currentRevision": current,
                       "updateRevision": update}}


def test_a_statefulset_sums_and_reports_revisions_as_its_members_agree() -> None:
    done = {"a": MemberState(2, stateful_copy(2, "db-7f", "db-7f")),
            "b": MemberState(2, stateful_copy(2, "db-7f", "db-7f"))}
    status, _ = aggregate(STATEFUL, done)
    assert (status["readyReplicas"], status["currentReplicas"], status["observedGeneration"]
            ) == (4, 4, 1)
    assert (status["currentRevision"], status["updateRevision"]) == ("db-7f", "db-7f")
    # One member still rolling: the plane's revisions differ, so rollout status waits.
    rolling = {**done, "b": MemberState(2, stateful_copy(2, "db-6c", "db-7f"))}
    status, _ = aggregate(STATEFUL, rolling)
    assert status["updateRevision"] == "db-7f"
    assert status["currentRevision"] != status["updateRevision"]
    # Members that disagree on the update revision (or report none yet): none is claimed.
    for other in (stateful_copy(2, "db-9a", "db-9a"), None):
        status, _ = aggregate(STATEFUL, {**done, "b": MemberState(2, other)})
        assert "updateRevision" not in status and "currentRevision" not in status


def test_a_daemonset_sums_its_members_counters() -> None:
    plane = {"kind": "DaemonSet", "metadata": {"generation": 2}, "spec": {}}

    def member(nodes: int, ready: int) -> dict[str, Any]:
        return {"metadata": {"generation": 1, "annotations": {SPEC_HASH: spec_hash(plane)}},
                "status": {"observedGeneration": 1, "desiredNumberScheduled": nodes,
                           "currentNumberScheduled": nodes, "updatedNumberScheduled": nodes,
                           "numberReady": ready, "numberAvailable": ready,
                           "numberUnavailable": nodes - ready}}

    status, breakdown = aggregate(plane, {"a": MemberState(0, member(2, 2)),
                                          "b": MemberState(0, member(3, 1))})
    assert (status["desiredNumberScheduled"], status["numberReady"],
            status["numberUnavailable"], status["observedGeneration"]) == (5, 3, 2, 2)
    assert breakdown == {"a": {"desired": 2, "replicas": 2, "ready": 2},
                         "b": {"desired": 3, "replicas": 3, "ready": 1}}


def _job(active: int = 0, succeeded: int = 0, failed: int = 0,
         conditions: tuple[str, ...] = (), start: str | None = None,
         end: str | None = None) -> MemberState:
    status: dict[str, Any] = {"active": active, "succeeded": succeeded, "failed": failed,
                              "conditions": [{"type": t, "status": "True", "reason": t}
                                             for t in conditions]}
    if start:
        status["startTime"] = start
    if end:
        status["completionTime"] = end
    return MemberState(2, {"status": status})


def test_a_job_is_complete_when_every_member_s_is() -> None:
    done = ("SuccessCriteriaMet", "Complete")
    status, breakdown = aggregate_job({
        "a": _job(succeeded=4, conditions=done, start="2026-01-01T00:00:02Z",
                  end="2026-01-01T00:01:00Z"),
        "b": _job(active=1, succeeded=3, start="2026-01-01T00:00:01Z")})
    assert (status["active"], status["succeeded"], status["failed"]) == (1, 7, 0)
    assert status["startTime"] == "2026-01-01T00:00:01Z"
    assert "conditions" not in status and "completionTime" not in status
    assert breakdown["b"] == {"desired": 2, "active": 1, "succeeded": 3, "failed": 0}
    status, _ = aggregate_job({
        "a": _job(succeeded=4, conditions=done, start="2026-01-01T00:00:02Z",
                  end="2026-01-01T00:01:00Z"),
        "b": _job(succeeded=4, conditions=done, start="2026-01-01T00:00:01Z",
                  end="2026-01-01T00:02:00Z")})
    assert [c["type"] for c in status["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert status["completionTime"] == "2026-01-01T00:02:00Z"


def test_a_jobs_start_and_end_once_in_the_plane_stand() -> None:
    """The apiserver refuses to change a running Job's startTime or a finished Job's
    completionTime and conditions: a member that reports an earlier start later, or a copy
    made again after the end, changes neither."""
    done = ("SuccessCriteriaMet", "Complete")
    plane = {"startTime": "2026-01-01T00:00:05Z"}
    status, _ = aggregate_job({"a": _job(active=2, start="2026-01-01T00:00:01Z")}, plane)
    assert status["startTime"] == "2026-01-01T00:00:05Z"
    finished = {"startTime": "2026-01-01T00:00:05Z", "completionTime": "2026-01-01T00:03:00Z",
                "conditions": [{"type": "Complete", "status": "True"}]}
    status, _ = aggregate_job({"a": _job(active=1, start="2026-01-01T00:04:00Z"),
                               "b": _job(succeeded=2, conditions=done,
                                         end="2026-01-01T00:05:00Z")}, finished)
    assert status["completionTime"] == "2026-01-01T00:03:00Z"
    assert status["conditions"] == finished["conditions"]


def test_a_job_failed_in_one_member_has_failed() -> None:
    status, _ = aggregate_job({"a": _job(failed=3, conditions=("FailureTarget", "Failed")),
                               "b": _job(active=2)})
    assert [c["type"] for c in status["conditions"]] == ["FailureTarget", "Failed"]
    assert "completionTime" not in status


def test_a_scaled_custom_resource_sums_its_status_path() -> None:
    status, breakdown = aggregate_scaled(("status", "running"), {
        "a": MemberState(2, {"status": {"running": 2}}),
        "b": MemberState(1, {"status": {}}), "c": MemberState(1, None)})
    assert status == {"running": 2}
    assert breakdown["a"] == {"desired": 2, "replicas": 2}
    assert aggregate_scaled(None, {"a": MemberState(1, None)})[0] == {}


# Properties: whatever the members report, the plane's status is their sum, and the plane's
# observedGeneration / Complete only say "done" when every member is.
COUNTS = st.integers(min_value=0, max_value=10**6)
MEMBER_NAMES = st.lists(st.sampled_from(["member-1", "member-2", "member-3", "member-4"]),
                        min_size=1, max_size=4, unique=True)


# The counts of each workload's status, as the Kubernetes API reference lists them (written
# out here, not read from the module under test).
COUNTED = {
    "Deployment": ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                   "unavailableReplicas"),
    "ReplicaSet": ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas"),
    "StatefulSet": ("replicas", "readyReplicas", "currentReplicas", "updatedReplicas",
                    "availableReplicas"),
    "DaemonSet": ("desiredNumberScheduled", "currentNumberScheduled", "updatedNumberScheduled",
                  "numberReady", "numberAvailable", "numberUnavailable", "numberMisscheduled"),
}


def test_every_count_of_every_workload_is_summed() -> None:
    assert {kind: set(fields) for kind, fields in SUMMED.items()} == {
        kind: set(fields) for kind, fields in COUNTED.items()}


@given(st.data(), MEMBER_NAMES, st.sampled_from(sorted(COUNTED)))
def test_a_workloads_status_is_the_sum_of_its_members(data: st.DataObject, names: list[str],
                                                      kind: str) -> None:
    plane = {**PLANE, "kind": kind}
    states = {}
    for name in names:
        reported = {f: data.draw(COUNTS) for f in COUNTED[kind]}
        observed = data.draw(st.booleans())
        states[name] = MemberState(data.draw(COUNTS), {
            "metadata": {"generation": 7, "annotations": {SPEC_HASH: spec_hash(plane)}},
            "status": {**reported, "observedGeneration": 7 if observed else 6}})
    status, breakdown = aggregate(plane, states)
    for field in COUNTED[kind]:
        assert status[field] == sum(s.copy["status"][field] for s in states.values()
                                    if s.copy is not None)
    everyone = all(s.copy is not None and s.copy["status"]["observedGeneration"] == 7
                   for s in states.values())
    assert (status.get("observedGeneration") == 2) == everyone
    assert sorted(breakdown) == sorted(names)


@given(st.data(), MEMBER_NAMES)
def test_a_jobs_status_sums_and_is_complete_only_when_every_member_is(
        data: st.DataObject, names: list[str]) -> None:
    states = {}
    for name in names:
        complete = data.draw(st.booleans())
        conditions = [{"type": "Complete", "status": "True"}] if complete else []
        states[name] = MemberState(data.draw(COUNTS), {"status": {
            "active": data.draw(COUNTS), "succeeded": data.draw(COUNTS),
            "failed": data.draw(COUNTS), "conditions": conditions}})
    status, _ = aggregate_job(states)
    for field in ("active", "succeeded", "failed"):
        assert status[field] == sum(s.copy["status"][field] for s in states.values()
                                    if s.copy is not None)
    done = [c for c in status.get("conditions", []) if c["type"] == "Complete"]
    assert bool(done) == all(s.copy is not None and s.copy["status"]["conditions"]
                                 for s in states.values())


@given(st.data(), MEMBER_NAMES)
def test_a_scaled_custom_resource_sums_what_its_status_path_holds(
        data: st.DataObject, names: list[str]) -> None:
    states = {name: MemberState(data.draw(COUNTS), {"status": {"ready": {
        "count": data.draw(st.one_of(COUNTS, st.none(), st.text(max_size=2)))}}})
        for name in names}
    status, breakdown = aggregate_scaled(("status", "ready", "count"), states)
    counted = [s.copy["status"]["ready"]["count"] for s in states.values() if s.copy]
    assert status == {"ready": {"count": sum(c for c in counted if isinstance(c, int))}}
    assert [b["desired"] for _, b in sorted(breakdown.items())] == [
        s.desired for _, s in sorted(states.items())]
