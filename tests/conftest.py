"""Where the slowest tests spent their time, printed at the end of the run: each wait of 3 s
or more (`tests.kube.WAITS`) and the test that ran before it in the same process (whose
leftovers it may have waited out). Works alone and under pytest-xdist: a worker hands each
test's waits to the controller in its report."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests import kube

SLOW = 20.0  # a test this long (setup, call and teardown) is shown
SHOWN = 15


class _Spent:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.after: dict[str, str] = {}
        self.waits: dict[str, list[tuple[float, str]]] = {}
        self.last: dict[str, str] = {}  # worker -> the test it ran last


_SPENT = _Spent()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    kube.WAITS.clear()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[None]:
    if call.when == "teardown":
        item.user_properties.append(("waits", [list(w) for w in kube.WAITS]))
    yield


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    spent = _SPENT
    nodeid = report.nodeid
    spent.seconds[nodeid] = spent.seconds.get(nodeid, 0.0) + report.duration
    if report.when == "setup":
        node = getattr(report, "node", None)  # the xdist worker that ran it, if any
        worker = str((getattr(node, "workerinput", None) or {}).get("workerid", "main"))
        spent.after[nodeid] = spent.last.get(worker, "(first)")
        spent.last[worker] = nodeid
    if report.when == "teardown":
        for name, value in report.user_properties:
            if name == "waits" and isinstance(value, list):
                spent.waits[nodeid] = [(float(w[0]), str(w[1])) for w in value]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    spent = _SPENT
    slowest = sorted(((s, n) for n, s in spent.seconds.items() if s >= SLOW),
                     reverse=True)[:SHOWN]
    if not slowest:
        return
    terminalreporter.section("where the slowest tests waited")
    for seconds, nodeid in slowest:
        after = spent.after.get(nodeid, "?").split("::")[-1]
        terminalreporter.write_line(f"{seconds:6.1f} s {nodeid.split('::')[-1]} "
                                    f"(after {after})")
        for waited, what in sorted(spent.waits.get(nodeid, []), reverse=True):
            if waited >= 3:
                terminalreporter.write_line(f"{waited:12.1f} s {what}")
