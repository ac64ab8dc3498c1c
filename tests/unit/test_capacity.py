from __future__ import annotations

import datetime
from typing import Any

from federator.domain.capacity import overflow

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


def pod(seconds_ago: int, *, app: str = "web", namespace: str = "a",
        reason: str = "Unschedulable") -> dict[str, Any]:
    stamp = (NOW - datetime.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"metadata": {"namespace": namespace, "labels": {"app": app}},
            "status": {"conditions": [{"type": "PodScheduled", "status": "False",
                                       "reason": reason, "lastTransitionTime": stamp}]}}


def test_counts_only_long_unschedulable_pods_of_the_workload() -> None:
    pods = [pod(90), pod(61), pod(10), pod(90, app="other"), pod(90, namespace="b"),
            pod(90, reason="SchedulingGated")]
    found = overflow(pods, "a", {"app": "web"}, now=NOW, threshold=60)
    assert found.unschedulable == 2
    assert found.soonest == 50


def test_nothing_pending() -> None:
    found = overflow([], "a", {"app": "web"}, now=NOW, threshold=60)
    assert (found.unschedulable, found.soonest) == (0, None)
