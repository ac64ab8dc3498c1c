"""How federator holds up with many objects: failover with a few thousand federated, then
convergence, memory and CPU with ten thousand.

On a lab of 3 members, in one run:
1. failover: F objects (10% Deployments of 1 replica, the rest ConfigMaps, Secrets and
   Services) federated, then member-1's apiserver stopped: seconds until every Deployment is
   fully available again in the plane on member-2 and member-3 alone, and how long serve
   took to decide the workloads again once it found member-1 not Ready (as it logs it);
   member-1 is then started again;
2. load: objects added until N are federated (ConfigMaps, Secrets and Services in turn, and
   Deployments of 1 replica up to D in all), 16 writers, each waiting until its object is in
   every member: time to converge, p50 and p99 of that wait, serve's CPU per object, its
   resident memory per object (against its resident memory with nothing federated, measured
   in the same run before phase 1) and its peak. Before it, the baseline: 1,000 objects of
   the same mix written by the same writers straight to the three members (p50 and p99).

Aims (issue 14): failover within 10 s at 2,000 objects; at most 20 KiB of serve's memory per
federated object at 10,000; p99 at most 3x p50.

    .venv/bin/python -m benchmarks.scale [--failover 2000] [--objects 10000]
                                         [--deployments 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from benchmarks.lab import federated_lab, metrics_page, settled_rss
from benchmarks.propagation import (
    CpuMeter,
    Object,
    clients,
    cpu_groups,
    create_namespace,
    direct,
    federated,
    one,
    percentile,
)
from federator.kube.client import KubeClient
from federator.kube.resources import CLUSTERS, KINDS, path
from federator.lab.process import ProcessLab

MEMBERS = ("member-1", "member-2", "member-3")
KIB = 1024
MIB = 1024 * 1024
DEPLOYMENTS = KINDS[("apps/v1", "Deployment")]
FILLERS = ("ConfigMap", "Secret", "Service")
DIRECT = 1000  # objects of the baseline: written straight to the members


def peak_rss(pid: int) -> int:
    """The highest resident size the process has had (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * KIB
    return 0


def load(count: int, deployments: int, namespace: str, first: int) -> list[Object]:
    """`count` objects numbered from `first`: `deployments` Deployments, the rest the fillers
    in turn."""
    items = [one("Deployment", f"deploy-{first + i:05d}", namespace)
             for i in range(deployments)]
    items += [one(FILLERS[i % len(FILLERS)], f"obj-{first + i:05d}", namespace)
              for i in range(count - deployments)]
    return items


def _without(deployment: Object, lost: str | None) -> bool:
    """Whether a plane Deployment is fully available (without member `lost`: its replicas
    all run elsewhere, as its cluster-status breakdown says)."""
    status = deployment.get("status") or {}
    wanted = deployment["spec"]["replicas"]
    if not (status.get("availableReplicas") == status.get("replicas") == wanted
            and status.get("observedGeneration") == deployment["metadata"]["generation"]):
        return False
    if lost is None:
        return True
    breakdown = json.loads((deployment["metadata"].get("annotations") or {}).get(
        "federator.io/cluster-status") or "{}")
    others = [v for k, v in breakdown.items() if k != lost]
    return ("error" in breakdown.get(lost, {})
            and sum(int(v.get("ready") or 0) for v in others) == wanted)


async def all_available(plane: KubeClient, namespace: str, expected: int,
                        lost: str | None = None) -> bool:
    """Whether the plane's Deployments of a namespace are all fully available (without
    member `lost`)."""
    listed = await plane.get(path(DEPLOYMENTS, namespace=namespace))
    items = listed.get("items") or []
    return len(items) == expected and all(_without(d, lost) for d in items)


async def until_available(plane: KubeClient, namespace: str, expected: int,
                          every: float, lost: str | None = None) -> None:
    while not await all_available(plane, namespace, expected,  # noqa: ASYNC110 (polling)
                                  lost):
        await asyncio.sleep(every)


async def _when(done: Awaitable[None], began: float) -> float:
    await done
    return time.monotonic() - began


async def not_ready(plane: KubeClient) -> None:
    """Until the plane's Cluster member-1 says Ready=False."""
    while True:
        cluster = await plane.get(path(CLUSTERS, name="member-1"))
        conditions = (cluster.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "False" for c in conditions):
            return
        await asyncio.sleep(0.1)


async def members_run(members: dict[str, KubeClient], namespace: str, expected: int) -> None:
    """Until member-2 and member-3 together have every Deployment's replica available (as
    their own Deployments' status says, before federator sums it into the plane)."""
    while True:
        available: dict[str, int] = {}
        for name in ("member-2", "member-3"):
            listed = await members[name].get(path(DEPLOYMENTS, namespace=namespace))
            for item in listed.get("items") or []:
                available[item["metadata"]["name"]] = (
                    available.get(item["metadata"]["name"], 0)
                    + int((item.get("status") or {}).get("availableReplicas") or 0))
        if len(available) == expected and all(n >= 1 for n in available.values()):
            return
        await asyncio.sleep(0.25)


def size(log: Path) -> int:
    return len(log.read_text())


def decided(log: Path, start: int) -> float | None:
    """Seconds serve took to decide the workloads again after member-1 stopped, as it logged
    it, if it did."""
    for line in log.read_text()[start:].splitlines():
        with_event: dict[str, Any] = json.loads(line) if line.startswith("{") else {}
        if (with_event.get("event") == "workloads decided again after clusters changed"
                and "not Ready" in str(with_event.get("cause"))):
            return float(with_event["seconds"])
    return None


async def failover(lab: ProcessLab, kubeconfig: Path, log: Path, count: int
                   ) -> dict[str, float]:
    members = await clients(kubeconfig, MEMBERS)
    plane = (await clients(kubeconfig, ("federation",)))["federation"]
    namespace = "scale-failover"
    deployments = count // 10
    try:
        await create_namespace(plane, namespace)
        await asyncio.sleep(2)
        _, elapsed = await federated(
            plane, members, load(count, deployments, namespace, 0), namespace)
        print(f"failover: {count} objects federated in {elapsed:.1f} s", flush=True)
        await until_available(plane, namespace, deployments, 1.0)
        start = size(log)
        began = time.monotonic()
        lab.stop_component("member-1/kube-apiserver")
        try:
            # Fully available on member-2 and member-3 alone: the time to notice that
            # member-1 is gone (3 failed probes, 2 s apart) is in it. Meanwhile, when the
            # Cluster turned not Ready and when the members themselves ran every replica.
            profile = [asyncio.create_task(_when(not_ready(plane), began)),
                       asyncio.create_task(_when(members_run(members, namespace, deployments),
                                                 began))]
            await until_available(plane, namespace, deployments, 0.25, lost="member-1")
            available = time.monotonic() - began
            noticed, ran = await asyncio.gather(*profile)
            took = decided(log, start)
        finally:
            spec, _ = lab.load()
            assert spec is not None
            lab.up(spec)
        return {"available": available, "decided": took if took is not None else -1.0,
                "deployments": float(deployments), "noticed": noticed, "ran": ran}
    finally:
        for kube in [*members.values(), plane]:
            await kube.close()


def histogram(port: int, name: str) -> dict[str, float]:
    """A histogram of serve's metrics: its cumulative buckets (by upper bound), count, sum."""
    text = metrics_page(port)
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            found[line.split('le="', 1)[1].split('"', 1)[0]] = float(line.rsplit(" ", 1)[1])
        elif line.startswith((name + "_count ", name + "_sum ")):
            found[line.split(" ", 1)[0].rsplit("_", 1)[1]] = float(line.rsplit(" ", 1)[1])
    return found


def spread(before: dict[str, float], after: dict[str, float]) -> str:
    """Between two readings of a histogram: count, mean and the bucket bound under which
    99% fell."""
    count = after.get("count", 0.0) - before.get("count", 0.0)
    if not count:
        return "none"
    mean = (after.get("sum", 0.0) - before.get("sum", 0.0)) / count
    bounds = sorted((float(b), b) for b in after if b not in ("count", "sum") and b != "+Inf")
    p99 = "> " + bounds[-1][1] if bounds else "?"
    for value, bound in bounds:
        if after[bound] - before.get(bound, 0.0) >= 0.99 * count:
            p99 = f"<= {value:g}"
            break
    return f"{count:.0f}, mean {mean:.3f} s, p99 {p99} s"


def gc_pauses(port: int) -> dict[str, float]:
    """serve's collections of the oldest generation so far: how many, their seconds in all,
    and how many took longer than 0.25 s (from federator_gc_pause_seconds)."""
    text = metrics_page(port)
    found = {"count": 0.0, "sum": 0.0, "quick": 0.0}
    for line in text.splitlines():
        if 'generation="2"' not in line:
            continue
        value = float(line.rsplit(" ", 1)[1])
        if line.startswith("federator_gc_pause_seconds_count"):
            found["count"] = value
        elif line.startswith("federator_gc_pause_seconds_sum"):
            found["sum"] = value
        elif line.startswith("federator_gc_pause_seconds_bucket") and 'le="0.25"' in line:
            found["quick"] = value
    return {"count": found["count"], "seconds": found["sum"],
            "long": found["count"] - found["quick"]}


async def grow(kubeconfig: Path, meter: CpuMeter, serve: int, total: int, deployments: int,
               already: int, already_deployments: int) -> dict[str, float]:
    members = await clients(kubeconfig, MEMBERS)
    plane = (await clients(kubeconfig, ("federation",)))["federation"]
    namespace = "scale-load"
    try:
        # The baseline: the same writers write the same mix straight to the three members.
        for kube in members.values():
            await create_namespace(kube, "scale-direct")
        sample = load(DIRECT, DIRECT // 20, "scale-direct", 0)
        straight, _ = await direct(members, sample)
        await create_namespace(plane, namespace)
        await asyncio.sleep(2)
        items = load(total - already, max(0, deployments - already_deployments), namespace,
                     already)
        idle = await meter.idle_rate()
        latencies, elapsed, cpu = await meter.phase(idle, federated(plane, members, items,
                                                                    namespace))
        return {"objects": float(len(items)), "converged": elapsed,
                "direct_p50": statistics.median(straight),
                "direct_p99": percentile(straight, 0.99),
                "p50": statistics.median(latencies), "p99": percentile(latencies, 0.99),
                "cpu": cpu["federator"] / len(items), "rss": float(settled_rss(serve)),
                "peak": float(peak_rss(serve))}
    finally:
        for kube in [*members.values(), plane]:
            await kube.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failover", type=int, default=2000)
    parser.add_argument("--objects", type=int, default=10000)
    parser.add_argument("--deployments", type=int, default=500)
    parser.add_argument("--base-port", type=int, default=24400)
    parser.add_argument("--http-port", type=int, default=24399)
    parser.add_argument("--failover-only", action="store_true",
                        help="measure the failover alone (no load phase)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="federator-bench-"))
    with federated_lab(root, args.base_port, args.http_port, len(MEMBERS)) as run:
        time.sleep(3)  # members probed Ready
        pid = run.serve.pid
        empty = settled_rss(pid)
        moved = asyncio.run(failover(run.lab, run.kubeconfig, root / "serve.log",
                                     args.failover))
        grown = None
        if not args.failover_only:
            time.sleep(10)  # member-1 Ready again, its copies caught up
            meter = CpuMeter(cpu_groups(run.lab, pid))
            paused = gc_pauses(args.http_port)
            names = ("federator_queue_wait_seconds", "federator_reconcile_seconds")
            before = {n: histogram(args.http_port, n) for n in names}
            grown = asyncio.run(grow(run.kubeconfig, meter, pid, args.objects,
                                     args.deployments, args.failover, args.failover // 10))
            after = gc_pauses(args.http_port)
            grown.update({f"gc_{k}": after[k] - paused[k] for k in after})
            waits = {n: spread(before[n], histogram(args.http_port, n)) for n in names}
    print(f"\n{args.failover} objects ({args.failover // 10} Deployments), "
          f"then {args.objects} in all ({args.deployments} Deployments), 3 members\n")
    print("| measure | value | aim |\n|---|---|---|")
    print(f"| failover: member-1 stopped to every Deployment fully available | "
          f"{moved['available']:.1f} s | 10 s |")
    print(f"| failover: member-1 stopped to its Cluster not Ready in the plane | "
          f"{moved['noticed']:.1f} s | |")
    print(f"| failover: serve deciding the {moved['deployments']:.0f} Deployments again "
          f"(from member-1 found not Ready) | {moved['decided']:.2f} s | |")
    print(f"| failover: member-1 stopped to every replica available in member-2 and "
          f"member-3 (their own status) | {moved['ran']:.1f} s | |")
    if grown is None:
        return
    print(f"| load: {grown['objects']:.0f} objects converged | {grown['converged']:.1f} s "
          f"({grown['objects'] / grown['converged']:.0f} objects/s) | |")
    print(f"| load: p50 / p99 until in every member | {grown['p50']:.3f} / "
          f"{grown['p99']:.3f} s ({grown['p99'] / grown['p50']:.1f}x) | p99 <= 3x p50 |")
    print(f"| baseline: {DIRECT} objects of the same mix written straight to the 3 members "
          f"by the same writers, p50 / p99 | {grown['direct_p50']:.3f} / "
          f"{grown['direct_p99']:.3f} s ({grown['direct_p99'] / grown['direct_p50']:.1f}x) | |")
    print(f"| load: serve CPU per object | {grown['cpu'] * 1000:.1f} ms | |")
    print(f"| load: waits in serve's work queue (count, mean, p99) | "
          f"{waits['federator_queue_wait_seconds']} | |")
    print(f"| load: serve's reconciles (count, mean, p99) | "
          f"{waits['federator_reconcile_seconds']} | |")
    print(f"| load: serve's full garbage collections (pauses of everything), seconds in "
          f"all, longer than 0.25 s | {grown['gc_count']:.0f}, {grown['gc_seconds']:.1f} s, "
          f"{grown['gc_long']:.0f} | |")
    print(f"| serve RSS: nothing federated (baseline) / {args.objects} federated | "
          f"{empty / MIB:.1f} / {grown['rss'] / MIB:.1f} MiB | |")
    print(f"| serve RSS per federated object | "
          f"{(grown['rss'] - empty) / args.objects / KIB:.1f} KiB | 20 KiB |")
    print(f"| serve peak RSS | {grown['peak'] / MIB:.1f} MiB | |")


if __name__ == "__main__":
    main()
