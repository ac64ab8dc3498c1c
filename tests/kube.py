"""Running the real kubectl from tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

# Where a test's time goes: each wait of a second or more (an `eventually`, or a kubectl
# call outside one, such as `rollout status`), as (seconds, what), gathered for the test
# running now and printed for the slowest tests at the end of the run (conftest).
WAITS: list[tuple[float, str]] = []
LONG_WAIT = 1.0
_polling = threading.local()


def _waited(began: float, what: str) -> None:
    seconds = time.monotonic() - began
    if seconds >= LONG_WAIT and not getattr(_polling, "inside", False):
        WAITS.append((seconds, what))


def kubectl(kubeconfig: Path, context: str, *args: str, stdin: str | None = None,
            check: bool = True, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    argv = ["kubectl", f"--kubeconfig={kubeconfig}", f"--context={context}", *args]
    began = time.monotonic()
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False,
                          timeout=300, env={**os.environ, **(env or {})})
    _waited(began, f"kubectl --context={context} {' '.join(args)}"[:120])
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {done.stderr}")
    return done


def get_json(kubeconfig: Path, context: str, *args: str) -> Any:
    return json.loads(kubectl(kubeconfig, context, "get", *args, "-o", "json").stdout)


def eventually(check: Any, what: str, attempts: int = 300) -> Any:
    """Poll `check` until it returns something truthy (every 0.2 s, a bounded number of
    times); what it returned."""
    began, outer = time.monotonic(), getattr(_polling, "inside", False)
    _polling.inside = True
    try:
        for _ in range(attempts):
            result = check()
            if result:
                return result
            time.sleep(0.2)  # between polls
    finally:
        _polling.inside = outer
        _waited(began, what)
    raise AssertionError(f"never happened: {what}")


def background(kubeconfig: Path, context: str, *args: str,
               env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """kubectl left running (attach, port-forward, logs -f), its output in one pipe."""
    return subprocess.Popen(["kubectl", f"--kubeconfig={kubeconfig}", f"--context={context}",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, **(env or {})})


def printed(process: subprocess.Popen[str]) -> list[str]:
    """The lines a process prints, gathered as they come (by a thread of their own)."""
    seen: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        seen.extend(process.stdout)

    threading.Thread(target=read, daemon=True).start()
    return seen


def attach_shows(kubeconfig: Path, context: str, namespace: str, pod: str, log: Path,
                 text: str, env: dict[str, str] | None = None) -> None:
    """`kubectl attach` to a lab pod shows the lines written to the member's container log
    (`log`) while it is attached. kwok follows the log from its end as it was when the
    stream reached it, which kubectl does not say: a line written before then is never
    shown. So a numbered line is written at every poll until attach shows one, and each
    line it shows is one written, in order, whole."""
    with background(kubeconfig, context, "-n", namespace, "attach", pod, env=env) as attached:
        seen = printed(attached)
        written: list[str] = []

        def shown() -> list[str]:
            with log.open("a") as sink:
                written.append(f"{text} {len(written)}")
                sink.write(f"2026-12-05T01:00:00.000000000Z stdout F {written[-1]}\n")
            return [line.rstrip("\n") for line in list(seen) if line.startswith(text)]

        try:
            lines = eventually(shown, f"{text!r} shown by attach")
            first = written.index(lines[0])
            assert lines == written[first:first + len(lines)], (lines, written)
        finally:
            attached.terminate()


def forward_answers(kubeconfig: Path, context: str, namespace: str, pod: str,
                    env: dict[str, str] | None = None, requests: int = 1) -> None:
    """`kubectl port-forward` to a lab pod: each request through the local port it opens
    reaches what the lab's kubelet serves (kwok's /healthz answers ok)."""
    with background(kubeconfig, context, "-n", namespace, "port-forward", f"pod/{pod}",
                    ":8080", env=env) as forwarding:
        seen = printed(forwarding)
        try:
            port = eventually(lambda: next((m for line in seen for m in re.findall(
                r"Forwarding from 127\.0\.0\.1:(\d+)", line)), None), "a forwarded port")
            for _ in range(requests):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz",
                                            timeout=10) as reply:
                    assert reply.read() == b"ok"
        finally:
            forwarding.terminate()
