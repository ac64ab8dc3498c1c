"""How fast federator propagates, against writing the same objects straight to the members.

On a lab of 3 members, in one run:
- baseline: the objects written directly to every member (an object is done when all three
  writes returned);
- federated: the same objects written once to the plane; an object is done when it is seen,
  by watches on the members, in every member it belongs to.
Reports per-object latency (p50, p90, p99) and throughput of both, their ratios, and CPU per
object of every process. Two loads: M ConfigMaps and K Deployments; and with `--mixed N`, N
objects of ten kinds (ConfigMaps, Secrets, Services, ServiceAccounts, Roles, RoleBindings,
Ingresses, NetworkPolicies, PodDisruptionBudgets, Deployments) measured the same way in the
same run, so that federator's CPU per object of the two loads can be compared.

    .venv/bin/python -m benchmarks.propagation [--configmaps 500] [--deployments 50]
                                               [--mixed 500]
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

from benchmarks.lab import federated_lab
from federator.kube import resources
from federator.kube.client import KubeClient, KubeError
from federator.kube.kubeconfig import load_credentials
from federator.kube.resources import Resource, path
from federator.lab.process import ProcessLab

MEMBERS = ("member-1", "member-2", "member-3")
CONCURRENCY = 16
Object = dict[str, Any]


def _deployment(name: str) -> Object:
    pod = {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
    return {"spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": pod}}}


# kind -> (its resource, what an object of it holds besides apiVersion, kind and metadata)
KINDS: dict[str, tuple[Resource, Callable[[str], Object]]] = {
    "ConfigMap": (Resource("", "v1", "configmaps", True),
                  lambda name: {"data": {"payload": "x" * 1024, "name": name}}),
    "Secret": (Resource("", "v1", "secrets", True),
               lambda name: {"stringData": {"token": "y" * 256}}),
    "Service": (Resource("", "v1", "services", True),
                lambda name: {"spec": {"selector": {"app": name},
                                       "ports": [{"port": 80, "targetPort": 8080}]}}),
    "ServiceAccount": (Resource("", "v1", "serviceaccounts", True), lambda name: {}),
    "Role": (Resource("rbac.authorization.k8s.io", "v1", "roles", True),
             lambda name: {"rules": [{"apiGroups": [""], "resources": ["configmaps"],
                                      "verbs": ["get", "list"]}]}),
    "RoleBinding": (Resource("rbac.authorization.k8s.io", "v1", "rolebindings", True),
                    lambda name: {"roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                              "kind": "Role", "name": name},
                                  "subjects": [{"kind": "ServiceAccount", "name": name}]}),
    "Ingress": (Resource("networking.k8s.io", "v1", "ingresses", True),
                lambda name: {"spec": {"rules": [{"host": f"{name}.example.com", "http": {
                    "paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {
                        "name": name, "port": {"number": 80}}}}]}}]}}),
    "NetworkPolicy": (Resource("networking.k8s.io", "v1", "networkpolicies", True),
                      lambda name: {"spec": {"podSelector": {"matchLabels": {"app": name}},
                                             "policyTypes": ["Ingress"]}}),
    "PodDisruptionBudget": (Resource("policy", "v1", "poddisruptionbudgets", True),
                            lambda name: {"spec": {"maxUnavailable": 1, "selector": {
                                "matchLabels": {"app": name}}}}),
    "Deployment": (Resource("apps", "v1", "deployments", True), _deployment),
}


def one(kind: str, name: str, namespace: str) -> Object:
    resource, body = KINDS[kind]
    api = f"{resource.group}/{resource.version}" if resource.group else resource.version
    return {"apiVersion": api, "kind": kind,
            "metadata": {"name": name, "namespace": namespace}, **body(name)}


def objects(configmaps: int, deployments: int, namespace: str) -> list[Object]:
    return ([one("ConfigMap", f"cm-{i:04d}", namespace) for i in range(configmaps)]
            + [one("Deployment", f"deploy-{i:03d}", namespace) for i in range(deployments)])


def mixed(count: int, namespace: str) -> list[Object]:
    """`count` objects, the ten kinds in turn."""
    kinds = list(KINDS)
    return [one(kinds[i % len(kinds)], f"obj-{i:04d}", namespace) for i in range(count)]


async def create(kube: KubeClient, obj: Object) -> None:
    resource = KINDS[obj["kind"]][0]
    await kube.create(path(resource, namespace=obj["metadata"]["namespace"]), obj)


async def create_namespace(kube: KubeClient, name: str) -> None:
    await kube.create(path(resources.KINDS[("v1", "Namespace")]),
                      {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


async def bounded(jobs: list[Callable[[], Awaitable[None]]]) -> None:
    limit = asyncio.Semaphore(CONCURRENCY)

    async def run(job: Callable[[], Awaitable[None]]) -> None:
        async with limit:
            await job()

    await asyncio.gather(*(run(job) for job in jobs))


async def direct(members: dict[str, KubeClient], items: list[Object]
                 ) -> tuple[list[float], float]:
    """Each object written to every member; (latencies, seconds for all)."""
    latencies: list[float] = []

    def job(obj: Object) -> Callable[[], Awaitable[None]]:
        async def write() -> None:
            began = time.monotonic()
            await asyncio.gather(*(create(kube, obj) for kube in members.values()))
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


async def watch_arrivals(kube: KubeClient, namespace: str | None, kind: str,
                         arrivals: Arrivals) -> None:
    """Objects of a kind arriving in a member's namespace (in every namespace: None)."""
    url = path(KINDS[kind][0], namespace=namespace)
    seen: set[str] = set()
    while True:
        listed = await kube.get(url)
        for item in listed.get("items") or []:
            seen.add(item["metadata"]["name"])
            arrivals.seen(f"{kind}/{item['metadata']['name']}")
        try:
            async for event in kube.watch(url, resource_version=listed["metadata"][
                    "resourceVersion"], timeout_seconds=60):
                name = event["object"]["metadata"].get("name")
                if event["type"] == "ADDED" and name not in seen:
                    seen.add(name)
                    arrivals.seen(f"{kind}/{name}")
        except KubeError:
            continue  # list again


async def federated(plane: KubeClient, members: dict[str, KubeClient], items: list[Object],
                    namespace: str | None) -> tuple[list[float], float]:
    """Each object written once to the plane, and its writer waits until it is in every
    member (as the direct writer waits for its three writes); (latencies, seconds). Objects
    of several namespaces: `namespace` None, and names unique across them."""
    arrivals = Arrivals(len(members))
    for obj in items:
        arrivals.expect(f"{obj['kind']}/{obj['metadata']['name']}")
    kinds = sorted({obj["kind"] for obj in items})
    watchers = [asyncio.create_task(watch_arrivals(kube, namespace, kind, arrivals))
                for kube in members.values() for kind in kinds]
    await asyncio.sleep(1)
    latencies: list[float] = []

    def job(obj: Object) -> Callable[[], Awaitable[None]]:
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


async def clients(kubeconfig: Path, contexts: tuple[str, ...]) -> dict[str, KubeClient]:
    return {c: KubeClient(await load_credentials(kubeconfig, c), pool_size=CONCURRENCY * 2)
            for c in contexts}


async def measure(kubeconfig: Path, load: str, make: Callable[[str, int], list[Object]],
                  rounds: int, meter: CpuMeter) -> dict[str, float]:
    """Both ways in `rounds` rounds of an equal share of the objects each (`make(namespace,
    round)`), the order alternating (direct first, then federated first, ...) so that what
    one phase leaves in the lab (objects, pods) and drift of the machine weigh on both
    alike; the idle CPU is measured again before each round. Prints the load's table;
    returns federator's CPU seconds per object, and the whole lab's, through federator."""
    members = await clients(kubeconfig, MEMBERS)
    plane = (await clients(kubeconfig, ("federation",)))["federation"]
    base_lat: list[float] = []
    fed_lat: list[float] = []
    base_time = fed_time = 0.0
    base_cpu: Counter[str] = Counter()
    fed_cpu: Counter[str] = Counter()
    requests: Counter[tuple[str, str, str]] = Counter()
    kinds: Counter[str] = Counter()
    count = 0
    try:
        for index in range(rounds):
            direct_ns, fed_ns = f"bench-{load}-direct-{index}", f"bench-{load}-fed-{index}"
            for kube in members.values():
                await create_namespace(kube, direct_ns)
            await create_namespace(plane, fed_ns)
            idle = await meter.idle_rate()
            count += len(make(fed_ns, index))
            kinds.update(obj["kind"] for obj in make(fed_ns, index))
            for way in (("direct", "federated") if index % 2 == 0
                        else ("federated", "direct")):
                if way == "direct":
                    lat, took, cpu = await meter.phase(idle, direct(
                        members, make(direct_ns, index)))
                    base_lat += lat
                    base_time += took
                    base_cpu.update(cpu)
                else:
                    counted = await request_counts(kubeconfig)
                    lat, took, cpu = await meter.phase(idle, federated(
                        plane, members, make(fed_ns, index), fed_ns))
                    requests.update(await request_counts(kubeconfig) - counted)
                    fed_lat += lat
                    fed_time += took
                    fed_cpu.update(cpu)
    finally:
        for kube in [*members.values(), plane]:
            await kube.close()
    rows = [("p50 latency", statistics.median(base_lat), statistics.median(fed_lat), "s"),
            ("p90 latency", percentile(base_lat, 0.9), percentile(fed_lat, 0.9), "s"),
            ("p99 latency", percentile(base_lat, 0.99), percentile(fed_lat, 0.99), "s"),
            ("throughput", count / base_time, count / fed_time, "objects/s")]
    what = ", ".join(f"{n} {kind}s" for kind, n in sorted(kinds.items()))
    print(f"\n{load}: {count} objects ({what}), 3 members\n")
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
    return {"federator": fed_cpu["federator"] / count, "all": fed_cpu["all"] / count}


async def measure_all(kubeconfig: Path, args: argparse.Namespace, meter: CpuMeter) -> None:
    share = (args.configmaps // args.rounds, args.deployments // args.rounds)
    loads: list[tuple[str, Callable[[str, int], list[Object]]]] = [
        ("configmaps", lambda ns, _: objects(*share, ns))]
    if args.mixed:
        loads.append(("mixed", lambda ns, _: mixed(args.mixed // args.rounds, ns)))
    spent = {load: await measure(kubeconfig, load, make, args.rounds, meter)
             for load, make in loads}
    if "mixed" in spent:
        print("\n| CPU per object through federator | ConfigMaps and Deployments | "
              "ten kinds | ten kinds / ConfigMaps |\n|---|---|---|---|")
        for group in ("federator", "all"):
            plain, many = spent["configmaps"][group], spent["mixed"][group]
            print(f"| {group} | {plain * 1000:.1f} ms | {many * 1000:.1f} ms | "
                  f"{many / plain:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configmaps", type=int, default=500)
    parser.add_argument("--deployments", type=int, default=50)
    parser.add_argument("--mixed", type=int, default=0,
                        help="objects of ten kinds, measured the same way after the first load")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--base-port", type=int, default=23400)
    parser.add_argument("--http-port", type=int, default=23399)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="federator-bench-"))
    with federated_lab(root, args.base_port, args.http_port, len(MEMBERS)) as run:
        time.sleep(3)  # members probed Ready
        meter = CpuMeter(cpu_groups(run.lab, run.serve.pid))
        asyncio.run(measure_all(run.kubeconfig, args, meter))

if __name__ == "__main__":
    main()
