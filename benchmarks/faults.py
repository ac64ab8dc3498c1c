"""How much one hung member slows the healthy ones: arrival latency of new objects in
member-2 and member-3 while member-1's apiserver is frozen (SIGSTOP: it accepts connections
and answers nothing), against the same with nothing hung, in one run of rounds in ABBA order.

Each round writes N ConfigMaps to the plane with 16 writers; an object is done when it is
seen, by watches, in member-2 and member-3. The hung rounds run while member-1 still counts
as Ready (its probes have not failed three times yet), so federator still writes to it: the
worst case. Aim: p50 and p99 with member-1 hung at most 1.5x those with nothing hung.

    .venv/bin/python -m benchmarks.faults [--objects 200] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.lab import federated_lab, second_first
from benchmarks.propagation import clients, create_namespace, federated, objects, percentile
from federator.kube.client import KubeClient
from federator.kube.kubeconfig import load_credentials
from federator.kube.resources import CLUSTERS, path
from federator.lab.process import ProcessLab

HUNG = "member-1"
HEALTHY = ("member-2", "member-3")


async def ready(plane: KubeClient, name: str) -> bool:
    cluster = await plane.get(path(CLUSTERS, name=name))
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in (cluster.get("status") or {}).get("conditions") or [])


async def rounds(lab: ProcessLab, kubeconfig: Path, count: int, times: int
                 ) -> dict[str, list[float]]:
    apis = await clients(kubeconfig, HEALTHY)
    writer = (await clients(kubeconfig, ("federation",)))["federation"]
    plane = KubeClient(await load_credentials(kubeconfig, "federation"))
    latencies: dict[str, list[float]] = {"none hung": [], f"{HUNG} hung": []}
    try:
        for index in range(times * 2):
            hung = (index % 2 == 1) != second_first(index // 2)  # ABBA: -+ +- -+ ...
            label = f"{HUNG} hung" if hung else "none hung"
            namespace = f"bench-faults-{index}"
            await create_namespace(writer, namespace)
            await asyncio.sleep(2)  # the namespace reaches every member first
            if hung:
                lab.pause_component(f"{HUNG}/kube-apiserver")
            try:
                took, elapsed = await federated(writer, apis, objects(count, 0, namespace),
                                                namespace)
                if hung and not await ready(plane, HUNG):
                    raise SystemExit(
                        f"round {index + 1}: {HUNG} was found not Ready before the round "
                        "ended, so federator stopped writing to it and the figure would be "
                        "void; run fewer --objects per round")
            finally:
                if hung:
                    lab.pause_component(f"{HUNG}/kube-apiserver", resume=True)
            latencies[label] += took
            print(f"round {index + 1}: {label:<16} p50 {statistics.median(took):.3f} s  "
                  f"p99 {percentile(took, 0.99):.3f} s  ({elapsed:.1f} s for {count})",
                  flush=True)
            while not await ready(plane, HUNG):  # noqa: ASYNC110 (back, copies caught up)
                await asyncio.sleep(0.5)
            await asyncio.sleep(5)
    finally:
        for api in [*apis.values(), writer]:
            await api.close()
        await plane.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--base-port", type=int, default=23600)
    parser.add_argument("--http-port", type=int, default=23599)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="federator-bench-"))
    with federated_lab(root, args.base_port, args.http_port, 3) as run:
        time.sleep(3)  # members probed Ready
        found = asyncio.run(rounds(run.lab, run.kubeconfig, args.objects, args.rounds))
    base, hung = found["none hung"], found[f"{HUNG} hung"]
    print(f"\n{args.objects} ConfigMaps per round, {args.rounds} rounds each way; arrival in "
          f"{' and '.join(HEALTHY)}\n")
    print(f"| measure | none hung | {HUNG} hung | hung / none |")
    print("|---|---|---|---|")
    for name, q in (("p50 latency", 0.5), ("p90 latency", 0.9), ("p99 latency", 0.99)):
        a, b = percentile(base, q), percentile(hung, q)
        print(f"| {name} | {a:.3f} s | {b:.3f} s | {b / a:.2f}x |")
    print("\nAim: at most 1.5x.")


if __name__ == "__main__":
    main()
