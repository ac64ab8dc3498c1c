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
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.api_client import ApiClient

from benchmarks.clusters import start_serve
from federator.lab.process import ProcessLab
from federator.lab.spec import LabSpec, default_members

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
    """When each object was first seen in each member; `complete` once all are everywhere."""

    def __init__(self, expected: set[str], members: int) -> None:
        self.times: dict[str, list[float]] = {}
        self.expected = expected  # what members make of their own (kube-root-ca.crt) is not
        self.total = len(expected)
        self.members = members
        self.everywhere = 0
        self.complete = asyncio.Event()

    def seen(self, key: str) -> None:
        if key not in self.expected:
            return
        times = self.times.setdefault(key, [])
        times.append(time.monotonic())
        if len(times) == self.members:
            self.everywhere += 1
            if self.everywhere == self.total:
                self.complete.set()


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
    """Each object written once to the plane; (latencies until in every member, seconds)."""
    arrivals = Arrivals({f"{o['kind']}/{o['metadata']['name']}" for o in items}, len(apis))
    watchers = [asyncio.create_task(watch_arrivals(api, namespace, kind, arrivals))
                for api in apis.values() for kind in ("ConfigMap", "Deployment")]
    await asyncio.sleep(1)
    created: dict[str, float] = {}

    def job(obj: dict[str, Any]) -> Callable[[], Awaitable[None]]:
        async def write() -> None:
            created[f"{obj['kind']}/{obj['metadata']['name']}"] = time.monotonic()
            await create(plane, obj)
        return write

    began = time.monotonic()
    await bounded([job(obj) for obj in items])
    await asyncio.wait_for(arrivals.complete.wait(), timeout=600)
    elapsed = max(max(v) for v in arrivals.times.values()) - began
    for task in watchers:
        task.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    return [max(arrivals.times[k]) - created[k] for k in created], elapsed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(kubeconfig: Path, configmaps: int, deployments: int) -> None:
    apis = {m: await config.new_client_from_config(str(kubeconfig), context=m) for m in MEMBERS}
    plane = await config.new_client_from_config(str(kubeconfig), context="federation")
    try:
        for api in apis.values():
            await create_namespace(api, "bench-direct")
        await create_namespace(plane, "bench-fed")
        base_lat, base_time = await direct(apis, objects(configmaps, deployments,
                                                         "bench-direct"))
        fed_lat, fed_time = await federated(plane, apis, objects(configmaps, deployments,
                                                                 "bench-fed"), "bench-fed")
    finally:
        for api in [*apis.values(), plane]:
            await api.close()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configmaps", type=int, default=500)
    parser.add_argument("--deployments", type=int, default=50)
    parser.add_argument("--base-port", type=int, default=23400)
    parser.add_argument("--http-port", type=int, default=23399)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="federator-bench-"))
    spec = LabSpec(base_port=args.base_port, members=default_members(3))
    lab = ProcessLab(root / "lab", progress=lambda _: None)
    lab.up(spec)
    kubeconfig = lab.paths.kubeconfig
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    serve = None
    try:
        for argv in (["init"], *(["join", m] for m in MEMBERS)):
            subprocess.run([sys.executable, "-m", "federator", *argv], env=env, check=True,
                           capture_output=True)
        serve = start_serve(kubeconfig, args.http_port, root / "serve.log")
        time.sleep(3)  # members probed Ready
        asyncio.run(measure(kubeconfig, args.configmaps, args.deployments))
    finally:
        if serve is not None:
            serve.terminate()
            serve.wait(timeout=30)
        lab.down()


if __name__ == "__main__":
    main()
