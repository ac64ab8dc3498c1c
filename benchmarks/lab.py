"""The harness of the benchmarks: a lab with a federation, its members joined, and
`federator serve` running; and serve's resident memory."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from federator.lab.process import ProcessLab, resident_bytes
from federator.lab.spec import LabSpec, default_members


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


def metrics_page(port: int) -> str:
    """What serve's /metrics says now (serve's health port `port`)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def second_first(index: int) -> bool:
    """Whether round `index` of an A/B comparison runs B before A: the rounds go AB, BA, AB,
    BA, ... (ABBA), so that drift of the machine, and what one way leaves behind for the
    next, weigh on both ways alike."""
    return index % 2 == 1
