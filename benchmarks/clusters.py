"""How federator's cluster registry scales with members.

Brings up a lab of N light members (an apiserver and the controllers that join needs, no
workloads), starts `federator serve`, measures its resident memory with no member (the
baseline, same run), joins the N members one by one, and reports join time, the time from
each join to Ready, the time until all are Ready, and the memory each member adds, with a
projection to 100 members.

    .venv/bin/python -m benchmarks.clusters --members 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from federator.clusters.join import JoinRequest, join
from federator.kube.client import KubeClient
from federator.kube.kubeconfig import load_credentials
from federator.kube.resources import CLUSTERS, path
from federator.lab.process import ProcessLab, resident_bytes
from federator.lab.spec import LabSpec, default_members

MIB = 1024 * 1024


def start_serve(kubeconfig: Path, port: int, log: Path,
                env: dict[str, str] | None = None, *, identity: str = "benchmark",
                until: bytes = b"leader") -> subprocess.Popen[bytes]:
    """`federator serve` with its health port `port` and its gateway on `port - 1`, once its
    /readyz says `until` (by default: once it leads)."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "federator", "--kubeconfig", str(kubeconfig), "serve",
             "--identity", identity, "--http-port", str(port),
             "--gateway-port", str(port - 1)],
            stdout=sink, stderr=subprocess.STDOUT, env=env)
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as reply:
                if until in reply.read():
                    return process
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"federator serve did not lead; see {log}")


@dataclass(frozen=True)
class Federated:
    root: Path  # where the lab, logs and scratch files of the run live
    lab: ProcessLab
    kubeconfig: Path
    serve: subprocess.Popen[bytes]


@contextlib.contextmanager
def federated_lab(root: Path, base_port: int, http_port: int, members: int, *,
                  init: tuple[str, ...] = (), env: dict[str, str] | None = None
                  ) -> Iterator[Federated]:
    """A lab of `members`, `federator init` (with `init` flags), every member joined and
    `federator serve` leading (with `env`); all of it stopped on the way out."""
    lab = ProcessLab(root / "lab", progress=lambda _: None)
    lab.up(LabSpec(base_port=base_port, members=default_members(members)))
    kubeconfig = lab.paths.kubeconfig
    full_env = {**os.environ, "KUBECONFIG": str(kubeconfig), **(env or {})}
    serve = None
    try:
        names = [f"member-{i}" for i in range(1, members + 1)]
        for argv in (["init", *init], *(["join", m] for m in names)):
            subprocess.run([sys.executable, "-m", "federator", *argv], env=full_env,
                           check=True, capture_output=True)
        serve = start_serve(kubeconfig, http_port, root / "serve.log", full_env)
        yield Federated(root, lab, kubeconfig, serve)
    finally:
        if serve is not None:
            serve.terminate()
            serve.wait(timeout=30)
        lab.down()


def settled_rss(pid: int, seconds: float = 6.0) -> int:
    """The highest resident size seen over a few seconds (after probes have run)."""
    peak = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, resident_bytes(pid))
        time.sleep(0.2)
    return peak


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
    subprocess.run([sys.executable, "-m", "federator", "init"], env=env, check=True,
                   capture_output=True)
    serve = start_serve(kubeconfig, args.http_port, root / "serve.log")
    try:
        baseline = settled_rss(serve.pid)
        names = [m.name for m in spec.members]
        joined, ready, started = asyncio.run(join_all(kubeconfig, names))
        loaded = settled_rss(serve.pid)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
        lab.down()
    join_times = [joined[n] - (joined[names[i - 1]] if i else started)
                  for i, n in enumerate(names)]
    to_ready = [ready[n] - joined[n] for n in names]
    per_member = (loaded - baseline) / len(names)
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
    ]
    width = max(len(k) for k, _ in rows)
    print(f"\n| {'measure':<{width}} | value |\n|{'-' * (width + 2)}|-------|")
    for key, value in rows:
        print(f"| {key:<{width}} | {value} |")


if __name__ == "__main__":
    main()
