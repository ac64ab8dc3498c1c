"""The status of a federated Deployment, ReplicaSet, StatefulSet or DaemonSet: the sum over its
members, with an observedGeneration that advances only when every targeted member has observed
the plane's current spec (so `kubectl rollout status` waits for all of them). A StatefulSet's
revisions are its members' when they agree: `rollout status` is complete once every member
runs its update revision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from federator.domain.propagation import SPEC_HASH, spec_hash

SUMMED = {
    "Deployment": ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                   "unavailableReplicas"),
    "ReplicaSet": ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas"),
    "StatefulSet": ("replicas", "readyReplicas", "currentReplicas", "updatedReplicas",
                    "availableReplicas"),
    "DaemonSet": ("desiredNumberScheduled", "currentNumberScheduled", "updatedNumberScheduled",
                  "numberReady", "numberAvailable", "numberUnavailable", "numberMisscheduled"),
}
# The breakdown's (desired, replicas, ready) in a member's status, for kinds that are not
# spread (a DaemonSet's desired count is its member's, one pod per node).
BREAKDOWN = {"DaemonSet": ("desiredNumberScheduled", "currentNumberScheduled", "numberReady")}
ROLLING = "rolling update in progress"  # currentRevision while members' revisions differ


@dataclass(frozen=True)
class MemberState:
    """One targeted member: the replicas it should run, its copy as last seen, and why it
    could not be written, if it could not."""

    desired: int
    copy: dict[str, Any] | None
    error: str | None = None


def _observed(plane_spec: str, copy: dict[str, Any] | None) -> bool:
    """Whether a member copy carries the plane's current spec and its own controller has
    acted on it."""
    if copy is None:
        return False
    meta = copy.get("metadata") or {}
    status = copy.get("status") or {}
    return ((meta.get("annotations") or {}).get(SPEC_HASH) == plane_spec
            and status.get("observedGeneration") == meta.get("generation"))


def _conditions(kind: str, states: dict[str, MemberState]) -> list[dict[str, Any]]:
    if kind != "Deployment" or not states:
        return []
    result = []
    for type_ in ("Available", "Progressing"):
        per_member: dict[str, dict[str, Any] | None] = {}
        for cluster, state in sorted(states.items()):
            found = [c for c in ((state.copy or {}).get("status") or {}).get("conditions") or []
                     if c.get("type") == type_]
            per_member[cluster] = found[0] if found else None
        missing = sorted(c for c, cond in per_member.items() if cond is None)
        false = {c: cond for c, cond in per_member.items()
                 if cond is not None and cond.get("status") != "True"}
        if not missing and not false:
            reasons = {cond["reason"] for cond in per_member.values() if cond}
            result.append({"type": type_, "status": "True",
                           "reason": reasons.pop() if len(reasons) == 1 else "AllClusters",
                           "message": f"{type_} in every cluster"})
            continue
        deadline = any(c.get("reason") == "ProgressDeadlineExceeded" for c in false.values())
        parts = [f"{c}: {cond.get('reason')}" for c, cond in sorted(false.items())]
        parts += [f"{c}: not reported" for c in missing]
        result.append({"type": type_, "status": "False" if false else "Unknown",
                       "reason": "ProgressDeadlineExceeded" if deadline else "ClustersPending",
                       "message": "; ".join(parts)})
    return result


def _revisions(states: dict[str, MemberState]) -> dict[str, str]:
    """updateRevision: the members' own when they agree (the same template gives the same
    revision name everywhere); currentRevision the same once every member runs it."""
    reported = [((s.copy or {}).get("status") or {}) for s in states.values()]
    updates = {r.get("updateRevision") for r in reported}
    if not reported or len(updates) != 1 or None in updates:
        return {}
    update = str(updates.pop())
    done = all(r.get("currentRevision") == update for r in reported)
    return {"updateRevision": update, "currentRevision": update if done else ROLLING}


def aggregate(plane: dict[str, Any], states: dict[str, MemberState]
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(status for the plane object, per-cluster breakdown for its annotation)."""
    kind = plane["kind"]
    generation = int((plane.get("metadata") or {}).get("generation") or 0)
    status: dict[str, Any] = {}
    for field in SUMMED[kind]:
        status[field] = sum(int(((s.copy or {}).get("status") or {}).get(field) or 0)
                            for s in states.values())
    previous = (plane.get("status") or {}).get("observedGeneration")
    current = spec_hash(plane)
    if all(_observed(current, s.copy) for s in states.values()):
        status["observedGeneration"] = generation
    elif previous is not None:
        status["observedGeneration"] = previous
    if kind == "StatefulSet":
        status.update(_revisions(states))
    conditions = _conditions(kind, states)
    if conditions:
        status["conditions"] = conditions
    breakdown = {}
    for cluster, state in sorted(states.items()):
        member_status = (state.copy or {}).get("status") or {}
        if kind in BREAKDOWN:
            desired, replicas, ready = (int(member_status.get(field) or 0)
                                        for field in BREAKDOWN[kind])
        else:
            desired = state.desired
            replicas = int(member_status.get("replicas") or 0)
            ready = int(member_status.get("readyReplicas") or 0)
        entry: dict[str, Any] = {"desired": desired, "replicas": replicas, "ready": ready}
        if state.error:
            entry["error"] = state.error
        breakdown[cluster] = entry
    return status, breakdown


JOB_SUMMED = ("active", "succeeded", "failed", "ready", "terminating")
_JOB_FINISHED = {"Complete": "SuccessCriteriaMet", "Failed": "FailureTarget"}


def _job_conditions(reported: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Complete (after SuccessCriteriaMet) once every member's Job is; Failed (after
    FailureTarget) once any member's is, as the member said it."""
    def found(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
        for condition in status.get("conditions") or []:
            if condition.get("type") == type_ and condition.get("status") == "True":
                return dict(condition)
        return None

    failed = [c for c in (found(r, "Failed") for r in reported) if c]
    if failed:
        target = [c for c in (found(r, "FailureTarget") for r in reported) if c]
        return [*target[:1], failed[0]]
    complete = [c for c in (found(r, "Complete") for r in reported) if c]
    if reported and len(complete) == len(reported):
        criteria = [c for c in (found(r, "SuccessCriteriaMet") for r in reported) if c]
        return [*criteria[:1], {**complete[-1], "message": "complete in every cluster"}]
    return []


def aggregate_job(states: dict[str, MemberState], current: dict[str, Any] | None = None
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Job's status from its members': the counts summed, the earliest start, and Complete
    with the latest completion time once every member's copy is complete. What the plane's
    Job already says (`current`) of its start and its end stands: the apiserver refuses to
    change a running Job's startTime, its completionTime, or a finished Job's conditions."""
    current = current or {}
    reported = [dict((s.copy or {}).get("status") or {}) for s in states.values()]
    status: dict[str, Any] = {field: sum(int(r.get(field) or 0) for r in reported)
                              for field in JOB_SUMMED}
    starts = sorted(str(r["startTime"]) for r in reported if r.get("startTime"))
    if current.get("startTime"):
        status["startTime"] = current["startTime"]
    elif starts:
        status["startTime"] = starts[0]
    finished = any(c.get("type") in _JOB_FINISHED and c.get("status") == "True"
                   for c in current.get("conditions") or [])
    conditions = (list(current.get("conditions") or []) if finished
                  else _job_conditions(reported))
    if conditions:
        status["conditions"] = conditions
        ends = sorted(str(r["completionTime"]) for r in reported if r.get("completionTime"))
        if current.get("completionTime"):
            status["completionTime"] = current["completionTime"]
        elif conditions[-1]["type"] == "Complete" and ends:
            status["completionTime"] = ends[-1]
    breakdown = {}
    for cluster, state in sorted(states.items()):
        member = (state.copy or {}).get("status") or {}
        entry: dict[str, Any] = {"desired": state.desired,
                                 **{f: int(member.get(f) or 0)
                                    for f in ("active", "succeeded", "failed")}}
        if state.error:
            entry["error"] = state.error
        breakdown[cluster] = entry
    return status, breakdown


def aggregate_scaled(path: tuple[str, ...] | None, states: dict[str, MemberState]
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A custom resource with a scale subresource: the members' counts at its
    statusReplicasPath summed (nothing when it declares none)."""
    breakdown: dict[str, Any] = {}
    total = 0
    for cluster, state in sorted(states.items()):
        node: Any = state.copy or {}
        for name in path or ():
            node = node.get(name) if isinstance(node, dict) else None
        replicas = node if isinstance(node, int) and not isinstance(node, bool) else 0
        total += replicas
        breakdown[cluster] = {"desired": state.desired, "replicas": replicas}
        if state.error:
            breakdown[cluster]["error"] = state.error
    status: dict[str, Any] = {}
    if path is not None and path[0] == "status" and len(path) > 1:
        node = status
        for name in path[1:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = total
    return status, breakdown
