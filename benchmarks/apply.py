"""What a member's apiserver (and etcd) spend per object that federator writes by server-side
apply, against a plain create of the same object, in the same run.

A lab of one member (no federator: this measures the member's side only). The same
ConfigMap (1 KiB of data, a copy's label and annotations) is written COUNT times each way,
16 requests at a time: POST, and PATCH with `application/apply-patch+yaml`, field manager
`federator`, force (how federator writes every copy). Rounds alternate the order; the idle
CPU of each process is measured before each round and taken off.

    .venv/bin/python -m benchmarks.apply [--count 500] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.propagation import CpuMeter, percentile
from federator.kube.client import KubeClient
from federator.kube.kubeconfig import load_credentials
from federator.kube.resources import CONFIGMAPS, KINDS, path
from federator.lab.process import ProcessLab
from federator.lab.spec import LabSpec, default_members

CONCURRENCY = 16
NAMESPACE = "bench-apply"
WAYS = ("create", "server-side apply")


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "labels": {"federator.io/managed-by": "federation"},
                         "annotations": {"federator.io/plane-uid": "0" * 36}},
            "data": {"key": "x" * 1024}}


async def write(member: KubeClient, way: str, names: list[str]) -> tuple[list[float], float]:
    """Every name written one way, CONCURRENCY at a time: each request's latency, and the
    time for all."""
    todo = list(names)
    took: list[float] = []

    async def worker() -> None:
        while todo:
            name = todo.pop()
            began = time.perf_counter()
            if way == "create":
                await member.create(path(CONFIGMAPS, namespace=NAMESPACE), configmap(name))
            else:
                await member.apply(path(CONFIGMAPS, namespace=NAMESPACE, name=name),
                                   configmap(name))
            took.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return took, time.perf_counter() - began


async def measure(kubeconfig: Path, count: int, rounds: int, meter: CpuMeter) -> None:
    member = KubeClient(await load_credentials(kubeconfig, "member-1"), pool_size=CONCURRENCY)
    latencies: dict[str, list[float]] = {way: [] for way in WAYS}
    cpu: dict[str, dict[str, float]] = {way: {} for way in WAYS}
    try:
        await member.create(path(KINDS[("v1", "Namespace")]), {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        await write(member, "create", [f"warm-{i}" for i in range(50)])
        for round_ in range(rounds):
            idle = await meter.idle_rate()
            for way in WAYS if round_ % 2 == 0 else WAYS[::-1]:
                names = [f"{way.split()[0]}-{round_}-{i}" for i in range(count // rounds)]
                took, _, spent = await meter.phase(idle, write(member, way, names))
                latencies[way] += took
                for group, seconds in spent.items():
                    cpu[way][group] = cpu[way].get(group, 0.0) + seconds
    finally:
        await member.close()
    written = count // rounds * rounds
    print(f"\n{written} ConfigMaps each way, {rounds} alternating rounds, {CONCURRENCY} "
          "at a time\n")
    print("| measure | create | server-side apply | apply - create |")
    print("|---|---|---|---|")
    for group in meter.groups:
        create, apply = (cpu[way][group] / written * 1000 for way in WAYS)
        print(f"| CPU per object, {group} | {create:.2f} ms | {apply:.2f} ms | "
              f"{apply - create:+.2f} ms |")
    for name, fn in (("p50 latency", statistics.median),
                     ("p99 latency", lambda v: percentile(v, 0.99))):
        create, apply = (fn(latencies[way]) * 1000 for way in WAYS)
        print(f"| {name} | {create:.2f} ms | {apply:.2f} ms | {apply - create:+.2f} ms |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--base-port", type=int, default=25400)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="federator-bench-apply-"))
    lab = ProcessLab(root / "lab", progress=lambda _: None)
    lab.up(LabSpec(base_port=args.base_port, members=default_members(1)))
    try:
        _, records = lab.load()
        meter = CpuMeter({"member's apiserver": [records["member-1/kube-apiserver"].pid],
                          "etcd": [records["etcd"].pid]})
        asyncio.run(measure(root / "lab" / "kubeconfig", args.count, args.rounds, meter))
    finally:
        lab.down()


if __name__ == "__main__":
    main()
