"""`federator serve` processes for integration tests, and reading what they expose."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def terminate(process: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, then SIGKILL if it is not gone within `timeout` seconds; its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


class Serve:
    """One `federator serve` process; its log goes to a file next to the test's tmp files."""

    def __init__(self, kubeconfig: Path, identity: str, log: Path,
                 env: dict[str, str] | None = None, config: Path | None = None) -> None:
        self.identity = identity
        self.port = free_port()
        self.gateway_port = free_port()
        self.dns_port = free_port()  # the embedded DNS server, UDP and TCP
        self.log = log
        self.argv = [sys.executable, "-m", "federator", "--kubeconfig", str(kubeconfig),
                     "serve", "--identity", identity, "--http-port", str(self.port),
                     "--gateway-port", str(self.gateway_port),
                     *(("--config", str(config)) if config is not None else ())]
        self.env = {**os.environ, "FEDERATOR_DNS__EMBEDDED__PORT": str(self.dns_port),
                    **(env or {})}
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as sink:
            process = subprocess.Popen(self.argv, stdout=sink, stderr=subprocess.STDOUT,
                                       env=self.env)
        self.process = process
        self.wait_http()
        return process

    def restart(self) -> None:
        """Start again after kill(): same identity, so it takes its own lease back."""
        self._start()

    def get(self, page: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{page}",
                                        timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_http(self, attempts: int = 200) -> None:
        for _ in range(attempts):
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                self.get("/healthz")
                return
            time.sleep(0.1)  # between polls
        raise AssertionError(f"serve does not answer: {self.log.read_text()[-2000:]}")

    def metric(self, name: str) -> float | None:
        _, text = self.get("/metrics")
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        return terminate(self.process, 30)
