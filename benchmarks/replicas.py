"""Two replicas of federator against one on the same load, and how soon a killed replica's
shards are taken over.

On a lab of 3 members, in one run:
1. one replica: N ConfigMaps over K namespaces, 16 writers, each waiting until its object is
   in every member: seconds, objects/s, p50 and p99;
2. two replicas (a second `serve` starts; each takes half of the 8 shards): another N
   ConfigMaps over K fresh namespaces, measured the same way, with the objects each replica
   reconciled (its `federator_reconciles_total`) and the objects whose namespace falls in
   each replica's shards;
3. takeover: a third load runs and the second replica is SIGKILLed once the first copies
   arrive: seconds from the kill until the survivor holds every shard, and until every
   object is in every member.

Aims (issue 14): with 2 replicas each reconciles 40-60% of the objects; a dead replica's
shards move within 15 s (their Leases run 10 s).

    .venv/bin/python -m benchmarks.replicas [--objects 2000] [--namespaces 32]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.lab import federated_lab, metrics_page, start_serve
from benchmarks.propagation import (
    Object,
    clients,
    create_namespace,
    federated,
    one,
    percentile,
)
from federator.domain.sharding import shard_of
from federator.kube.client import KubeClient
from federator.kube.resources import LEASES, path

MEMBERS = ("member-1", "member-2", "member-3")
SHARDS = 8


def metric(port: int, name: str) -> float:
    for line in metrics_page(port).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def quiet(ports: tuple[int, int]) -> tuple[float, float]:
    """Each replica's reconciles so far, once neither has reconciled anything for 3 s (the
    second replica looks again at every object of the shards it took)."""
    last = (-1.0, -1.0)
    while True:
        now = (metric(ports[0], "federator_reconciles_total"),
               metric(ports[1], "federator_reconciles_total"))
        if now == last:
            return now
        last = now
        time.sleep(3)


def load(phase: str, count: int, namespaces: list[str]) -> list[Object]:
    return [one("ConfigMap", f"{phase}-{i:05d}", namespaces[i % len(namespaces)])
            for i in range(count)]


async def holders(plane: KubeClient) -> dict[int, str]:
    """Shard -> the identity holding its Lease."""
    leases = await plane.get(path(LEASES, namespace="federation-system"),
                             labelSelector="federator.io/lease-group=federator")
    prefix = "federator-shard-"
    return {int(lease["metadata"]["name"].removeprefix(prefix)):
            lease["spec"].get("holderIdentity") or ""
            for lease in leases.get("items") or []
            if lease["metadata"]["name"].startswith(prefix)}


async def measured(kubeconfig: Path, phase: str, count: int, spaces: int
                   ) -> tuple[dict[str, float], list[Object]]:
    members = await clients(kubeconfig, MEMBERS)
    plane = (await clients(kubeconfig, ("federation",)))["federation"]
    try:
        namespaces = [f"{phase}-{i:02d}" for i in range(spaces)]
        for namespace in namespaces:
            await create_namespace(plane, namespace)
        await asyncio.sleep(2)
        items = load(phase, count, namespaces)
        latencies, elapsed = await federated(plane, members, items, None)
        return {"seconds": elapsed, "p50": statistics.median(latencies),
                "p99": percentile(latencies, 0.99)}, items
    finally:
        for kube in [*members.values(), plane]:
            await kube.close()


async def shares(kubeconfig: Path, items: list[Object]) -> dict[str, int]:
    """Objects whose namespace falls in the shards each identity holds."""
    plane = (await clients(kubeconfig, ("federation",)))["federation"]
    try:
        held = await holders(plane)
    finally:
        await plane.close()
    counted: dict[str, int] = {}
    for obj in items:
        holder = held.get(shard_of(obj["metadata"]["namespace"], SHARDS), "")
        counted[holder] = counted.get(holder, 0) + 1
    return counted


async def arrived(member: KubeClient, prefix: str) -> bool:
    """Whether a copy of a ConfigMap named `prefix`... is in the member."""
    listed = await member.get("/api/v1/configmaps", labelSelector="federator.io/managed-by")
    return any(item["metadata"]["name"].startswith(prefix)
               for item in listed.get("items") or [])


async def takeover(kubeconfig: Path, count: int, spaces: int, second: subprocess.Popen[bytes],
                   port: int) -> dict[str, float]:
    """A third load; the second replica killed at its first arrivals."""
    members = await clients(kubeconfig, MEMBERS)
    try:
        work = asyncio.create_task(measured(kubeconfig, "takeover", count, spaces))
        while not await arrived(members["member-1"], "takeover-"):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        second.send_signal(signal.SIGKILL)
        second.wait()
        killed = time.monotonic()
        while metric(port, "federator_shards_held") < SHARDS:  # noqa: ASYNC110 (polling)
            await asyncio.sleep(0.1)
        taken = time.monotonic() - killed
        result, _ = await work
        return {"taken": taken, "converged": time.monotonic() - killed, **result}
    finally:
        for kube in members.values():
            await kube.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--namespaces", type=int, default=32)
    parser.add_argument("--base-port", type=int, default=24600)
    parser.add_argument("--http-port", type=int, default=24599)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="federator-bench-"))
    second_port = args.http_port - 2
    with federated_lab(root, args.base_port, args.http_port, len(MEMBERS)) as run:
        time.sleep(3)  # members probed Ready
        alone, _ = asyncio.run(measured(run.kubeconfig, "alone", args.objects, args.namespaces))
        print(f"one replica: {args.objects} objects in {alone['seconds']:.1f} s", flush=True)
        second = start_serve(run.kubeconfig, second_port, root / "second.log",
                             identity="second", until=b"4/8 shards")
        try:
            while metric(args.http_port, "federator_shards_held") != SHARDS / 2:
                time.sleep(0.5)
            before = quiet((args.http_port, second_port))
            both, items = asyncio.run(measured(run.kubeconfig, "both", args.objects,
                                               args.namespaces))
            time.sleep(3)  # the last status writes
            reconciled = (metric(args.http_port, "federator_reconciles_total") - before[0],
                          metric(second_port, "federator_reconciles_total") - before[1])
            owned = asyncio.run(shares(run.kubeconfig, items))
            print(f"two replicas: {args.objects} objects in {both['seconds']:.1f} s",
                  flush=True)
            moved = asyncio.run(takeover(run.kubeconfig, args.objects, args.namespaces,
                                         second, args.http_port))
        finally:
            if second.poll() is None:
                second.terminate()
                second.wait(timeout=30)
    total = sum(reconciled)
    print(f"\n{args.objects} ConfigMaps over {args.namespaces} namespaces per phase, "
          f"{SHARDS} shards, 3 members\n")
    print("| measure | one replica | two replicas | aim |\n|---|---|---|---|")
    for label, key in (("seconds to converge", "seconds"), ("p50 until in every member",
                                                             "p50"), ("p99", "p99")):
        print(f"| {label} | {alone[key]:.2f} s | {both[key]:.2f} s | |")
    print(f"| objects/s | {args.objects / alone['seconds']:.0f} | "
          f"{args.objects / both['seconds']:.0f} | |")
    print(f"| reconciles by each replica | | {reconciled[0]:.0f} / {reconciled[1]:.0f} "
          f"({100 * reconciled[0] / total:.0f}% / {100 * reconciled[1] / total:.0f}%) "
          f"| 40-60% each |")
    print(f"| objects in each replica's shards | | {owned.get('benchmark', 0)} / "
          f"{owned.get('second', 0)} | |")
    print(f"| takeover: SIGKILL to every shard held by the survivor | | "
          f"{moved['taken']:.1f} s | 15 s |")
    print(f"| takeover: SIGKILL to all {args.objects} objects of the load in every member "
          f"| | {moved['converged']:.1f} s | |")


if __name__ == "__main__":
    main()
