from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from federator.domain.health import Health, Probe, Thresholds, capacity

OK = Probe(ok=True)
DOWN = Probe(ok=False, reason="Unreachable", message="connection refused")


def test_starts_unknown_and_one_success_makes_ready() -> None:
    health = Health()
    assert health.status == "Unknown"
    assert health.observe(OK, Thresholds())
    assert (health.status, health.reason) == ("True", "ClusterReady")
    assert not health.observe(OK, Thresholds())


def test_three_failures_make_not_ready_with_the_probe_reason() -> None:
    health = Health()
    health.observe(OK, Thresholds())
    assert not health.observe(DOWN, Thresholds())
    assert not health.observe(DOWN, Thresholds())
    assert health.observe(DOWN, Thresholds())
    assert (health.status, health.reason, health.message) == (
        "False", "Unreachable", "3 probes failed in a row, the last: connection refused")
    assert not health.observe(DOWN, Thresholds())


def test_a_success_between_failures_resets_the_count() -> None:
    health = Health()
    for probe in (OK, DOWN, DOWN, OK, DOWN, DOWN):
        health.observe(probe, Thresholds())
    assert health.status == "True"


def test_reason_follows_the_latest_failure_once_not_ready() -> None:
    health = Health()
    for _ in range(3):
        health.observe(DOWN, Thresholds())
    changed = health.observe(Probe(False, "Unauthorized", "401"), Thresholds())
    assert changed and health.reason == "Unauthorized"


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 5), st.integers(1, 5))
def test_status_follows_the_last_run_of_probes(results: list[bool], fail: int,
                                                succeed: int) -> None:
    health = Health()
    thresholds = Thresholds(failure=fail, success=succeed)
    for ok in results:
        health.observe(OK if ok else DOWN, thresholds)
    run = 0
    for ok in reversed(results):
        if ok != (results[-1] if results else True):
            break
        run += 1
    if results and results[-1] and run >= succeed:
        assert health.status == "True"
    if results and not results[-1] and run >= fail:
        assert health.status == "False"
    if len(results) < min(fail, succeed):
        assert health.status == "Unknown"


def test_capacity_counts_ready_nodes_only() -> None:
    def node(ready: str, pods: str) -> dict[str, object]:
        return {"status": {"conditions": [{"type": "Ready", "status": ready}],
                           "allocatable": {"pods": pods}}}
    assert capacity([node("True", "110"), node("False", "110"), node("True", "2")]) == {
        "nodes": 3, "readyNodes": 2, "allocatablePods": 112}
    assert capacity([]) == {"nodes": 0, "readyNodes": 0, "allocatablePods": 0}
