"""How federator's cluster registry scales with members.

Brings up a lab of N light members (an apiserver and the controllers that join needs, no
workloads), starts `federator serve`, measures its resident memory with no member (the
baseline, same run), joins the N members one by one, and reports join time, the time from
each join to Ready, the time until all are Ready, and the memory and open watches each
member adds with nothing federated, with a projection to 100 members; then one object of
each of ten kinds is federated (every member watches those kinds then) and the memory and
watches per member are measured again.

Aim (issue 14): at most 1 MiB of serve's memory per member with nothing federated.

    .venv/bin/python -m benchmarks.clusters --members 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.lab import metrics_page, settled_rss, start_serve
from benchmarks.propagation import KINDS, create, create_namespace, one
from federator.clusters.join import JoinRequest, join
from federator.kube.client import KubeClient
from federator.kube.kubeconfig import load_credentials
from federator.kube.resources import CLUSTERS, path
from federator.lab.process import ProcessLab
from federator.lab.spec import LabSpec, default_members

MIB = 1024 * 1024


def open_watches(port: int, plane: str) -> float:
    """Watches serve has open to the members (to every apiserver but the plane's)."""
    text = metrics_page(port)
    total = 0.0
    for line in text.splitlines():
        if line.startswith("federator_watches_open{") and f'server="{plane}"' not in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def federate_ten_kinds(kubeconfig: Path) -> None:
    """One object of each of ten kinds, into every member."""
    plane = KubeClient(await load_credentials(kubeconfig, "federation"))
    try:
        await create_namespace(plane, "ten-kinds")
        for kind in KINDS:
            await create(plane, one(kind, f"one-{kind.lower()}", "ten-kinds"))
    finally:
        await plane.close()


async def join_all(kubeconfig: Path, names: list[str]) -> tuple[dict[str, float],
                                                                 dict[str, float], float]:
    """Join each member; when each join ended, when each was first seen Ready, and when the
    first join started."""
    plane = KubeClient(await load_credentials(kubeconfig, "federation"))
    joined: dict[str, float] = {}
    ready: dict[str, float] = {}
    started = time.monotonic()

    async def watch_ready() -> None:
        while len(ready) < len(names):
            for cluster in (await plane.get(path(CLUSTERS))).get("items") or []:
                name = cluster["metadata"]["name"]
                conditions = (cluster.get("status") or {}).get("conditions") or []
                if name not in ready and any(c["type"] == "Ready" and c["status"] == "True"
                                             for c in conditions):
                    ready[name] = time.monotonic()
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch_ready())
    try:
        for name in names:
            member = KubeClient(await load_credentials(kubeconfig, name))
            try:
                await join(plane, member, JoinRequest(name, name))
            finally:
                await member.close()
            joined[name] = time.monotonic()
        await asyncio.wait_for(watcher, timeout=300)
    finally:
        watcher.cancel()
        await plane.close()
    return joined, ready, started


async def _plane_server(kubeconfig: Path) -> str:
    plane = KubeClient(await load_credentials(kubeconfig, "federation"))
    try:
        return plane.server
    finally:
        await plane.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--base-port", type=int, default=20400)
    parser.add_argument("--http-port", type=int, default=20399)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="federator-bench-"))
    spec = LabSpec(base_port=args.base_port,
                   members=default_members(args.members, workloads=False))
    lab = ProcessLab(root / "lab", progress=lambda _: None)
    print(f"lab: plane + {args.members} light members (in {root})", flush=True)
    began = time.monotonic()
    lab.up(spec)
    print(f"lab up in {time.monotonic() - began:.0f} s", flush=True)
    kubeconfig = lab.paths.kubeconfig
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    # DNS on (a zone, the embedded server on a port of the run), as members' watches for
    # DNS are part of what a member costs.
    subprocess.run([sys.executable, "-m", "federator", "init", "--dns-zone-name",
                    "example.com"], env=env, check=True, capture_output=True)
    serve = start_serve(kubeconfig, args.http_port, root / "serve.log",
                        {**env, "FEDERATOR_DNS__EMBEDDED__PORT": str(args.http_port - 2)})
    try:
        baseline = settled_rss(serve.pid)
        names = [m.name for m in spec.members]
        joined, ready, started = asyncio.run(join_all(kubeconfig, names))
        time.sleep(10)  # every member's watches open
        loaded = settled_rss(serve.pid)
        plane = asyncio.run(_plane_server(kubeconfig))
        watches = open_watches(args.http_port, plane)
        asyncio.run(federate_ten_kinds(kubeconfig))
        time.sleep(20)  # copied everywhere, the kinds' watches open
        federated = settled_rss(serve.pid)
        kind_watches = open_watches(args.http_port, plane)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
        lab.down()
    join_times = [joined[n] - (joined[names[i - 1]] if i else started)
                  for i, n in enumerate(names)]
    to_ready = [ready[n] - joined[n] for n in names]
    per_member = (loaded - baseline) / len(names)
    with_kinds = (federated - baseline) / len(names)
    rows = [
        ("members joined", f"{len(names)}"),
        ("join, per member (p50 / max)",
         f"{statistics.median(join_times):.2f} s / {max(join_times):.2f} s"),
        ("join ended -> Ready (p50 / max)",
         f"{statistics.median(to_ready):.2f} s / {max(to_ready):.2f} s"),
        ("first join -> all Ready", f"{max(ready.values()) - started:.1f} s"),
        ("serve RSS, no member (baseline)", f"{baseline / MIB:.1f} MiB"),
        (f"serve RSS, {len(names)} members", f"{loaded / MIB:.1f} MiB"),
        ("RSS per member", f"{per_member / MIB:.2f} MiB"),
        ("projected RSS, 100 members", f"{(baseline + 100 * per_member) / MIB:.0f} MiB"),
        ("watches per member", f"{watches / len(names):.1f}"),
        ("ten kinds federated: RSS per member", f"{with_kinds / MIB:.2f} MiB"),
        ("ten kinds federated: watches per member", f"{kind_watches / len(names):.1f}"),
        ("ten kinds federated: projected RSS, 100 members",
         f"{(baseline + 100 * with_kinds) / MIB:.0f} MiB"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"\n| {'measure':<{width}} | value |\n|{'-' * (width + 2)}|-------|")
    for key, value in rows:
        print(f"| {key:<{width}} | {value} |")


if __name__ == "__main__":
    main()
