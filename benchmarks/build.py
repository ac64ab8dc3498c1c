"""What building the lab's Kubernetes binaries costs: wall time, CPU and the peak memory of
the largest process (the linker), for a cold build (empty Go caches, nothing built), for a
build with warm Go caches (binaries removed: what a machine that keeps ~/.cache/go-build
pays), and for the cached case (every binary found) as the baseline, in the same run.

Each case runs `federator lab build` in a child process with FEDERATOR_CACHE, GOCACHE and
GOMODCACHE pointed into a scratch directory; its CPU and peak RSS come from wait4() (the
child and every process it waited for). A cold case downloads the modules from the Go
module proxy, so its wall time includes the network.

    .venv/bin/python -m benchmarks.build [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

GIB = 1024 ** 3


@dataclass(frozen=True)
class Run:
    wall: float
    user: float
    system: float
    peak_rss: int  # bytes, of the largest single process
    steps: dict[str, float]  # seconds each recipe took, as the build reported it


def build(cache: Path, go_cache: Path, log: Path) -> Run:
    env = {**os.environ, "FEDERATOR_CACHE": str(cache), "GOCACHE": str(go_cache / "build"),
           "GOMODCACHE": str(go_cache / "mod")}
    began = time.monotonic()
    with log.open("w") as sink:
        child = subprocess.Popen([sys.executable, "-m", "federator", "lab", "build"], env=env,
                                 stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"lab build failed: {log.read_text()[-2000:]}")
    steps = {name: float(seconds) for name, seconds in
             re.findall(r"built (\S+) in (\d+) s", log.read_text())}
    return Run(wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss * 1024, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="federator-bench-build-"))
    go_cache = scratch / "go"
    try:
        runs = {"cold: empty Go caches, nothing built":
                build(scratch / "cold", go_cache, scratch / "cold.log")}
        runs["warm Go caches, binaries removed"] = build(scratch / "warm", go_cache,
                                                          scratch / "warm.log")
        runs["baseline: every binary cached"] = build(scratch / "warm", go_cache,
                                                       scratch / "cached.log")
    finally:
        if args.keep:
            print(f"scratch kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print("\n| case | wall | user CPU | system CPU | peak RSS (largest process) | "
          "per recipe |")
    print("|---|---|---|---|---|---|")
    for case, run in runs.items():
        steps = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in run.steps.items())
        print(f"| {case} | {run.wall:.0f} s | {run.user:.0f} s | {run.system:.0f} s | "
              f"{run.peak_rss / GIB:.2f} GiB | {steps or '-'} |")


if __name__ == "__main__":
    main()
