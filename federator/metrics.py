"""Prometheus metrics of federator, served on /metrics."""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

IS_LEADER = Gauge("federator_leader", "1 while this replica holds the leader lease",
                  registry=REGISTRY)
SHARDS_HELD = Gauge("federator_shards_held", "Shards of the controllers' work this replica holds",
                    registry=REGISTRY)
RECONCILES = Counter("federator_reconciles_total",
                     "Plane objects reconciled by this replica's propagation controller",
                     registry=REGISTRY)
QUEUE_WAIT = Histogram("federator_queue_wait_seconds",
                       "How long a plane object waited in the work queue for a worker",
                       buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
                       registry=REGISTRY)
RECONCILE_SECONDS = Histogram("federator_reconcile_seconds",
                              "How long one reconcile of a plane object took (its writes to "
                              "members, not waited for past propagation.member_wait)",
                              buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
                              registry=REGISTRY)
WATCHES = Gauge("federator_watches_open", "Watch requests open, by apiserver", ["server"],
                registry=REGISTRY)
CLUSTER_READY = Gauge("federator_cluster_ready",
                      "Ready condition of each member: 1 True, 0 False, -1 Unknown",
                      ["cluster"], registry=REGISTRY)
PROBES = Counter("federator_cluster_probes_total", "Probes of members' /readyz",
                 ["cluster", "result"], registry=REGISTRY)
PROBE_SECONDS = Histogram("federator_cluster_probe_duration_seconds",
                          "Duration of probes of members' /readyz", ["cluster"],
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
                          registry=REGISTRY)
MEMBER_EVENTS = Counter("federator_member_events_total",
                        "Member events copied into the plane, failed, or dropped by the rate "
                        "limit", ["cluster", "outcome"], registry=REGISTRY)
DNS_UPDATES = Counter("federator_dns_updates_total",
                      "Changes sent to DNS servers: applied, turned down by a prerequisite "
                      "(the zone changed meanwhile), or failed (refused, badly signed, no "
                      "answer)", ["provider", "outcome"], registry=REGISTRY)
GC_PAUSES = Histogram("federator_gc_pause_seconds",
                      "Pauses of Python's cyclic garbage collector (the whole process waits)",
                      ["generation"], buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
                      registry=REGISTRY)


def time_gc() -> None:
    """Time every collection of the cyclic garbage collector into GC_PAUSES (a collection of
    the oldest generation walks every object the process holds: with many mirrored objects
    it is a pause of the event loop)."""
    started: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            GC_PAUSES.labels(str(info.get("generation"))).observe(
                time.perf_counter() - started[0])

    gc.callbacks.append(callback)
