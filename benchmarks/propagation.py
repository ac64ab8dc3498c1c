"""How fast federator propagates, against writing the same objects straight to the members.

On a lab of 3 members, in one run:
- baseline: M ConfigMaps and K Deployments written directly to every member with a plain
  kubernetes-asyncio client (an object is done when all three writes returned);
- federated: the same objects written once to the plane; an object is done when it is seen,
  by watches on the members, in every member it belongs to.
Reports per-object latency (p50, p90, p99) and throughput of both, and their ratios.

    .venv/bin/python -m benchmarks.propagation [--configmaps 500] [--deployments 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.api_client import ApiClient

from benchmarks.clusters import federated_lab
from federator.kube.client import KubeClient
from federator.kube.kubeconfig import load_credentials
from federator.lab.process import ProcessLab

MEMBERS = ("member-1", "member-2", "member-3")
CONCURRENCY = 16


def objects(configmaps: int, deployments: int, namespace: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": f"cm-{i:04d}", "namespace": namespace},
         "data": {"payload": "x" * 1024, "index": str(i)}} for i in range(configmaps)]
    result += [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": f"deploy-{i:03d}", "namespace": namespace},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": f"d{i}"}},
                  "template": {"metadata": {"labels": {"app": f"d{i}"}},
                               "spec": {"containers": [{"name": "app",
                                                        "image": "registry.k8s.io/pause:3.10"}]}}}}
        for i in range(deployments)]
    return result


async def create(api: ApiClient, obj: dict[str, Any]) -> None:
    namespace = obj["metadata"]["namespace"]
    body: Any = obj  # the client serialises plain dicts as they are
    if obj["kind"] == "ConfigMap":
        await client.CoreV1Api(api).create_namespaced_config_map(namespace, body)
    else:
        await client.AppsV1Api(api).create_namespaced_deployment(namespace, body)


async def create_namespace(api: ApiClient, name: str) -> None:
    await client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))


async def bounded(jobs: list[Callable[[], Awaitable[None]]]) -> None:
    limit = asyncio.Semaphore(CONCURRENCY)

    async def run(job: Callable[[], Awaitable[None]]) -> None:
        async with limit:
            await job()

    await asyncio.gather(*(run(job) for job in jobs))


async def direct(apis: dict[str, ApiClient], items: list[dict[str, Any]]
                 ) -> tuple[list[float], float]:
    """Each object written to every member; (latencies, seconds for all)."""
    latencies: list[float] = []

    def job(obj: dict[str, Any]) -> Callable[[], Awaitable[None]]:
        async def write() -> None:
            began = time.monotonic()
            await asyncio.gather(*(create(api, obj) for api in apis.values()))
            latencies.append(time.monotonic() - began)
        return write

    began = time.monotonic()
    await bounded([job(obj) for obj in items])
    return latencies, time.monotonic() - began


class Arrivals:
    """When each object was first seen in each member; a waiter per object until it is in
    all of them."""

    def __init__(self, members: int) -> None:
        self.members = members
        self.times: dict[str, list[float]] = {}
        self.everywhere: dict[str, asyncio.Event] = {}

    def expect(self, key: str) -> asyncio.Event:
        return self.everywhere.setdefault(key, asyncio.Event())

    def seen(self, key: str) -> None:
        if key not in self.everywhere:
            return  # not one of ours (kube-root-ca.crt, the other phase's objects)
        times = self.times.setdefault(key, [])
        times.append(time.monotonic())
        if len(times) == self.members:
            self.everywhere[key].set()


async def watch_arrivals(api: ApiClient, namespace: str, kind: str,
                         arrivals: Arrivals) -> None:
    lister = (client.CoreV1Api(api).list_namespaced_config_map if kind == "ConfigMap"
              else client.AppsV1Api(api).list_namespaced_deployment)
    seen: set[str] = set()
    while True:
        stream = watch.Watch().stream(lister, namespace, timeout_seconds=30)
        async with stream as events:
            async for event in events:
                name = event["object"].metadata.name
                if event["type"] == "ADDED" and name not in seen:
                    seen.add(name)
                    arrivals.seen(f"{kind}/{name}")


async def federated(plane: ApiClient, apis: dict[str, ApiClient], items: list[dict[str, Any]],
                    namespace: str) -> tuple[list[float], float]:
    """Each object written once to the plane, and its writer waits until it is in every
    member (as the direct writer waits for its three writes); (latencies, seconds)."""
    arrivals = Arrivals(len(apis))
    for obj in items:
        arrivals.expect(f"{obj['kind']}/{obj['metadata']['name']}")
    watchers = [asyncio.create_task(watch_arrivals(api, namespace, kind, arrivals))
                for api in apis.values() for kind in ("ConfigMap", "Deployment")]
    await asyncio.sleep(1)
    latencies: list[float] = []

    def job(obj: dict[str, Any]) -> Callable[[], Awaitable[None]]:
        async def write() -> None:
            began = time.monotonic()
            await create(plane, obj)
            await asyncio.wait_for(
                arrivals.expect(f"{obj['kind']}/{obj['metadata']['name']}").wait(), 600)
            latencies.append(time.monotonic() - began)
        return write

    began = time.monotonic()
    await bounded([job(obj) for obj in items])
    elapsed = time.monotonic() - began
    for task in watchers:
        task.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    return latencies, elapsed


class CpuMeter:
    """CPU seconds spent by each group of processes (the lab's, federator, this one)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups

    def read(self) -> dict[str, float]:
        tick = os.sysconf("SC_CLK_TCK")
        result = {}
        for group, pids in self.groups.items():
            total = 0
            for pid in pids:
                if pid == os.getpid():
                    times = os.times()
                    total += round((times.user + times.system) * tick)
                    continue
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
            result[group] = total / tick
        return result

    async def quiet(self, idle: float, limit: float = 60.0) -> None:
        """Wait (at most `limit` seconds) until all groups together burn no more than
        `idle` cores again: the members' controllers finish the last phase's pods first."""
        deadline = time.monotonic() + limit
        last = sum(self.read().values())
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            now = sum(self.read().values())
            if now - last <= idle:
                return
            last = now

    async def idle_rate(self) -> dict[str, float]:
        """Cores each group burns with nothing to do (probes, leases, node heartbeats)."""
        first = self.read()
        await asyncio.sleep(3)
        return {group: (cpu - first[group]) / 3 for group, cpu in self.read().items()}

    async def phase(self, idle: dict[str, float],
                    work: Awaitable[tuple[list[float], float]]
                    ) -> tuple[list[float], float, dict[str, float]]:
        """Run one phase; its latencies, seconds and the CPU seconds each group spent on it
        (until the lab is quiet again, less what it burns idle)."""
        before, began = self.read(), time.monotonic()
        latencies, elapsed = await work
        await self.quiet(sum(idle.values()) * 1.5 + 0.05)
        after, seconds = self.read(), time.monotonic() - began
        return latencies, elapsed, {group: after[group] - before[group] - idle[group] * seconds
                                    for group in after}


def cpu_groups(lab: ProcessLab, serve: int) -> dict[str, list[int]]:
    _, records = lab.load()
    groups: dict[str, list[int]] = {}
    for name, record in sorted(records.items()):
        cluster, _, component = name.rpartition("/")
        group = f"members' {component}" if cluster.startswith("member-") else name
        groups.setdefault(group, []).append(record.pid)
    groups["federator"] = [serve]
    groups["benchmark client"] = [os.getpid()]
    return groups


async def request_counts(kubeconfig: Path) -> Counter[tuple[str, str, str]]:
    """Requests each apiserver has served so far, by (cluster kind, verb, resource)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for context in ("plane", *MEMBERS):
        kube = KubeClient(await load_credentials(kubeconfig, context))
        try:
            text = await kube.get("/metrics")
        finally:
            await kube.close()
        for line in text.splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels = dict(part.split("=", 1) for part in
                          line[line.index("{") + 1:line.index("}")].replace('"', "").split(","))
            if labels.get("verb") == "WATCH" or labels.get("group") == "coordination.k8s.io":
                continue
            counts[("plane" if context == "plane" else "members", labels["verb"],
                    labels.get("resource", "") + ("/" + labels["subresource"]
                                                  if labels.get("subresource") else ""))] += \
                int(float(line.rsplit(" ", 1)[1]))
    return counts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(kubeconfig: Path, configmaps: int, deployments: int, rounds: int,
                  meter: CpuMeter) -> None:
    """Both ways in `rounds` rounds of an equal share of the objects each, the order
    alternating (direct first, then federated first, ...) so that what one phase leaves
    in the lab (objects, pods) and drift of the machine weigh on both alike; the idle CPU is
    measured again before each round."""
    apis = {m: await config.new_client_from_config(str(kubeconfig), context=m) for m in MEMBERS}
    plane = await config.new_client_from_config(str(kubeconfig), context="federation")
    base_lat: list[float] = []
    fed_lat: list[float] = []
    base_time = fed_time = 0.0
    base_cpu: Counter[str] = Counter()
    fed_cpu: Counter[str] = Counter()
    requests: Counter[tuple[str, str, str]] = Counter()
    try:
        for index in range(rounds):
            share = (configmaps // rounds, deployments // rounds)
            direct_ns, fed_ns = f"bench-direct-{index}", f"bench-fed-{index}"
            for api in apis.values():
                await create_namespace(api, direct_ns)
            await create_namespace(plane, fed_ns)
            idle = await meter.idle_rate()
            for way in (("direct", "federated") if index % 2 == 0
                        else ("federated", "direct")):
                if way == "direct":
                    lat, took, cpu = await meter.phase(idle, direct(
                        apis, objects(*share, direct_ns)))
                    base_lat += lat
                    base_time += took
                    base_cpu.update(cpu)
                else:
                    counted = await request_counts(kubeconfig)
                    lat, took, cpu = await meter.phase(idle, federated(
                        plane, apis, objects(*share, fed_ns), fed_ns))
                    requests.update(await request_counts(kubeconfig) - counted)
                    fed_lat += lat
                    fed_time += took
                    fed_cpu.update(cpu)
    finally:
        for api in [*apis.values(), plane]:
            await api.close()
    configmaps, deployments = (configmaps // rounds) * rounds, (deployments // rounds) * rounds
    count = configmaps + deployments
    rows = [("p50 latency", statistics.median(base_lat), statistics.median(fed_lat), "s"),
            ("p90 latency", percentile(base_lat, 0.9), percentile(fed_lat, 0.9), "s"),
            ("p99 latency", percentile(base_lat, 0.99), percentile(fed_lat, 0.99), "s"),
            ("throughput", count / base_time, count / fed_time, "objects/s")]
    print(f"\n{count} objects ({configmaps} ConfigMaps, {deployments} Deployments), "
          f"3 members\n")
    print("| measure | direct to members | through federator | federator / direct |")
    print("|---|---|---|---|")
    for name, base, fed, unit in rows:
        print(f"| {name} | {base:.3f} {unit} | {fed:.3f} {unit} | {fed / base:.2f}x |")
    base_cpu["all"], fed_cpu["all"] = sum(base_cpu.values()), sum(fed_cpu.values())
    for group, base in base_cpu.items():
        fed = fed_cpu[group]
        ratio = f"{fed / base:.2f}x" if base > 0.0005 * count else "-"
        print(f"| CPU per object: {group} | {base / count * 1000:.1f} ms | "
              f"{fed / count * 1000:.1f} ms | {ratio} |")
    print("\nRequests served while federating, per object (watches and leases left out):")
    for (where, verb, resource), n in sorted(requests.items(), key=lambda kv: -kv[1]):
        if n >= count / 20:
            print(f"  {where:8} {verb:6} {resource:28} {n / count:.2f}")
    print(f"\n{CONCURRENCY} writers each way; a writer waits for its object to be in every "
          f"member before the next; {rounds} rounds, the order alternating.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configmaps", type=int, default=500)
    parser.add_argument("--deployments", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--base-port", type=int, default=23400)
    parser.add_argument("--http-port", type=int, default=23399)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="federator-bench-"))
    with federated_lab(root, args.base_port, args.http_port, len(MEMBERS)) as run:
        time.sleep(3)  # members probed Ready
        meter = CpuMeter(cpu_groups(run.lab, run.serve.pid))
        asyncio.run(measure(run.kubeconfig, args.configmaps, args.deployments, args.rounds,
                            meter))

if __name__ == "__main__":
    main()
