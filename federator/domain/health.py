"""A member's Ready condition from its probes: thresholds of consecutive failures and
successes, as kubelet probes have. Pure: the caller probes and keeps the time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["True", "False", "Unknown"]

READY_REASON = "ClusterReady"
UNKNOWN_REASON = "Probing"


@dataclass(frozen=True)
class Probe:
    """One probe of a member's /readyz. `reason` names a failure: Unreachable, Unauthorized,
    Forbidden, NotReady."""

    ok: bool
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class Thresholds:
    failure: int = 3
    success: int = 1


@dataclass
class Health:
    """The Ready condition of one member and the run of probes behind it."""

    status: Status = "Unknown"
    reason: str = UNKNOWN_REASON
    message: str = "not probed yet"
    failures: int = 0
    successes: int = 0
    detail: str = ""  # the last failed probe's own message, while not Ready

    def observe(self, probe: Probe, thresholds: Thresholds) -> bool:
        """Count one probe. True when the condition changed (status, reason or message)."""
        before = (self.status, self.reason, self.message)
        if probe.ok:
            self.successes += 1
            self.failures = 0
            if self.status != "True" and self.successes >= thresholds.success:
                self.status, self.reason, self.detail = "True", READY_REASON, ""
                self.message = "/readyz answered ok"
        else:
            self.failures += 1
            self.successes = 0
            if self.status == "False":
                if (probe.reason, probe.message) != (self.reason, self.detail):
                    self.reason, self.detail, self.message = (probe.reason, probe.message,
                                                              probe.message)
            elif self.failures >= thresholds.failure:
                self.status, self.reason, self.detail = "False", probe.reason, probe.message
                self.message = f"{self.failures} probes failed in a row, the last: {probe.message}"
        return (self.status, self.reason, self.message) != before

    def condition(self, transition_time: str) -> dict[str, Any]:
        return {"type": "Ready", "status": self.status, "reason": self.reason,
                "message": self.message, "lastTransitionTime": transition_time}


def capacity(nodes: list[dict[str, Any]]) -> dict[str, int]:
    """The capacity summary of a member from its Node objects."""
    ready = 0
    pods = 0
    for node in nodes:
        status = node.get("status") or {}
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        if conditions.get("Ready") == "True":
            ready += 1
            pods += _quantity(str((status.get("allocatable") or {}).get("pods", "0")))
    return {"nodes": len(nodes), "readyNodes": ready, "allocatablePods": pods}


def _quantity(text: str) -> int:
    """A pod count as Kubernetes writes it ("110", rarely "1k")."""
    suffixes = {"k": 10**3, "M": 10**6}
    if text and text[-1] in suffixes:
        return int(float(text[:-1]) * suffixes[text[-1]])
    try:
        return int(text)
    except ValueError:
        return 0
