"""Federated events: what the members say about propagated workloads, in the federation's
`kubectl describe` and `kubectl get events`, coalesced, counted once, and rate limited."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import DEPLOYMENT, EVENT_BACKLOG, MEMBERS
from tests.kube import eventually, get_json, kubectl
from tests.serving import Serve

pytestmark = pytest.mark.integration
FED = "federation"


def _now(offset: int = 0) -> str:
    at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _deploy(gateway: Path, name: str) -> dict[str, Any]:
    kubectl(gateway, FED, "apply", "-f", "-", stdin=DEPLOYMENT.format(name=name, replicas=3))
    kubectl(gateway, FED, "rollout", "status", f"deployment/{name}", "--timeout=120s")
    return dict(get_json(gateway, FED, "deployment", name))


def _plane_events(gateway: Path, name: str) -> list[dict[str, Any]]:
    found = get_json(gateway, FED, "events", "--field-selector",
                     f"involvedObject.kind=Deployment,involvedObject.name={name}")
    return list(found["items"])


def _member_event(name: str, copy: dict[str, Any], reason: str, message: str,
                  count: int = 1) -> dict[str, Any]:
    """An event about a member's copy, as a member's component would write it."""
    meta = copy["metadata"]
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment",
                               "name": meta["name"], "namespace": meta["namespace"],
                               "uid": meta["uid"]},
            "reason": reason, "message": message, "type": "Warning", "count": count,
            "firstTimestamp": _now(), "lastTimestamp": _now(),
            "source": {"component": "test-agent"}}


def test_member_events_show_in_describe_and_get_events(gateway: Path) -> None:
    plane = _deploy(gateway, "ev-web")

    def described() -> str | None:
        text = kubectl(gateway, FED, "describe", "deployment", "ev-web").stdout
        scaled = all(f"[{m}] Scaled up replica set ev-web-" in text for m in MEMBERS)
        return text if scaled else None

    text = eventually(described, "every member's ScalingReplicaSet in describe")
    assert re.search(r"deployment-controller +\[member-1\] Scaled up", text), text

    def told() -> list[str] | None:
        messages = [e["message"] for e in _plane_events(gateway, "ev-web")]
        replicasets = [m for m in messages if re.match(r"\[member-\d\] ReplicaSet ev-web-\S+: "
                                                       r"Created pod: ev-web-", m)]
        pods = [m for m in messages if re.match(r"\[member-\d\] Pod ev-web-\S+: Successfully "
                                                r"assigned default/ev-web-", m)]
        return messages if len(replicasets) == 3 and len(pods) == 3 else None

    eventually(told, "the ReplicaSets' and the pods' events of every member")
    for event in _plane_events(gateway, "ev-web"):
        assert event["involvedObject"]["uid"] == plane["metadata"]["uid"]
        if event["source"]["component"] != "federator":  # federator's own, or a member's
            assert event["message"].startswith(f"[{event['source']['host']}] ")
    listed = kubectl(gateway, FED, "get", "events", "--field-selector",
                     "involvedObject.name=ev-web").stdout
    assert "deployment/ev-web" in listed and "[member-2] Scaled up replica set" in listed
    kubectl(gateway, FED, "delete", "deployment", "ev-web")


def test_repeats_coalesce_and_a_restart_counts_nothing_twice(
        gateway: Path, federation: Path, serving: Serve) -> None:
    _deploy(gateway, "ev-repeat")
    copy = get_json(federation, "member-2", "deployment", "ev-repeat")
    first = _member_event("ev-repeat.probe-1", copy, "ProbeFailed", "health check failed")
    kubectl(federation, "member-2", "create", "-f", "-", stdin=json.dumps(first))

    def backoffs() -> list[dict[str, Any]]:
        return [e for e in _plane_events(gateway, "ev-repeat") if e["reason"] == "ProbeFailed"]

    eventually(lambda: [e for e in backoffs() if e.get("count") == 1], "the first copy")
    later = _now(5)
    kubectl(federation, "member-2", "patch", "event", "ev-repeat.probe-1", "--type=merge",
            "-p", json.dumps({"count": 5, "lastTimestamp": later}))
    eventually(lambda: [e for e in backoffs() if e.get("count") == 5], "the member's repeats")
    second = _member_event("ev-repeat.probe-2", copy, "ProbeFailed", "health check failed", 2)
    kubectl(federation, "member-2", "create", "-f", "-", stdin=json.dumps(second))
    coalesced = eventually(lambda: [e for e in backoffs() if e.get("count") == 7],
                           "two member events coalesced into one")
    assert len(backoffs()) == 1
    assert coalesced[0]["lastTimestamp"] == later
    assert coalesced[0]["message"] == "[member-2] health check failed"
    assert coalesced[0]["source"] == {"component": "test-agent", "host": "member-2"}

    before = {e["metadata"]["name"]: e.get("count") for e in _plane_events(gateway, "ev-repeat")}
    serving.kill()
    serving.restart()
    marker = _member_event("ev-repeat.marker", copy, "Marker", "after the restart")
    kubectl(federation, "member-2", "create", "-f", "-", stdin=json.dumps(marker))
    eventually(lambda: [e for e in _plane_events(gateway, "ev-repeat")
                        if e["reason"] == "Marker"], "an event after the restart")
    after = {e["metadata"]["name"]: e.get("count") for e in _plane_events(gateway, "ev-repeat")}
    assert {name: after.get(name) for name in before} == before  # relisted, not recounted
    kubectl(gateway, FED, "delete", "deployment", "ev-repeat")


def _member_metric(serving: Serve, cluster: str, outcome: str) -> float:
    _, text = serving.get("/metrics")
    wanted = f'federator_member_events_total{{cluster="{cluster}",outcome="{outcome}"}} '
    for line in text.splitlines():
        if line.startswith(wanted):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_an_event_storm_in_one_member_is_bounded(
        gateway: Path, federation: Path, serving: Serve) -> None:
    _deploy(gateway, "ev-storm")
    copy = get_json(federation, "member-3", "deployment", "ev-storm")
    dropped_before = _member_metric(serving, "member-3", "dropped")
    storm = 400
    items = [_member_event(f"ev-storm.{i}", copy, "Storm", f"storm {i}") for i in range(storm)]
    kubectl(federation, "member-3", "create", "-f", "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))

    def stormy() -> list[dict[str, Any]]:
        return [e for e in _plane_events(gateway, "ev-storm") if e["reason"] == "Storm"]

    def accounted() -> int | None:
        dropped = _member_metric(serving, "member-3", "dropped") - dropped_before
        copied = len(stormy())
        return copied if copied + dropped >= storm else None

    copied = eventually(accounted, "every storm event copied or counted as dropped")
    assert EVENT_BACKLOG <= copied < storm
    warned = get_json(gateway, FED, "events", "-n", "default", "--field-selector",
                      "involvedObject.kind=Cluster,involvedObject.name=member-3,"
                      "reason=EventsDropped")["items"]
    # Announced once for the whole storm: one event, never repeated.
    assert [(w["type"], w.get("count", 1)) for w in warned] == [("Warning", 1)]
    assert _member_metric(serving, "member-3", "failed") == 0
    kubectl(gateway, FED, "delete", "deployment", "ev-storm")
