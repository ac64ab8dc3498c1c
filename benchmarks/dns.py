"""Cross-cluster DNS: (a) how soon an answer follows a pod's readiness, and (b) how many
queries a second the embedded server answers against BIND 9 on the same machine and mix.

A lab of 3 members, `federator init --dns-zone-name`, every member joined, a real BIND (as the
tests start it) kept by federator's RFC 2136 updates, and federator's embedded server. A
Deployment with one pod per member behind a NodePort Service. Then:

(a) ROUNDS times: member-2's pod marked unready (its status patched, as a failing readiness
    probe would), and the time until member-2's zone-level name answers with a CNAME, in the
    embedded server and in BIND; then ready again, until it answers its address.
(b) the same query mix (the names of every level, a CNAME chain, NXDOMAIN, the SOA) sent over
    UDP by CLIENTS processes for SECONDS to each server in turn; answers per second.

    .venv/bin/python -m benchmarks.dns [--rounds 20] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import select
import socket
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype

from benchmarks.lab import federated_lab
from benchmarks.propagation import percentile
from federator.kube.client import KubeClient
from federator.kube.kubeconfig import load_credentials
from federator.kube.resources import KINDS, path
from tests.bind import KEY_NAME, Bind
from tests.serving import free_port

ZONE = "bench.example"
MEMBERS = ("member-1", "member-2", "member-3")
BASE = "web.default.federation.svc"
WEST_ZONE = f"{BASE}.us-west-2b.us-west-2.{ZONE}"
MIX = [(f"{BASE}.{ZONE}", "A"), (f"{BASE}.us-east-1.{ZONE}", "A"),
       (f"{BASE}.us-east-1a.us-east-1.{ZONE}", "A"), (WEST_ZONE, "A"),
       (f"nothing.{ZONE}", "A"), (ZONE, "SOA")]
MANIFESTS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: registry.k8s.io/pause:3.10}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {type: NodePort, selector: {app: web}, ports: [{port: 80}]}
"""
PODS = KINDS[("v1", "Pod")]


def answer_kind(port: int, name: str) -> str | None:
    """The type of the first answer record for an A query of `name` (CNAME or A)."""
    try:
        reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port,
                              timeout=1)
    except (OSError, dns.exception.Timeout):
        return None
    return dns.rdatatype.to_text(reply.answer[0].rdtype) if reply.answer else None


async def set_ready(member: KubeClient, ready: bool) -> None:
    pods = (await member.get(path(PODS, namespace="default"), labelSelector="app=web"))["items"]
    status = "True" if ready else "False"
    for pod in pods:
        conditions = [c for c in pod["status"].get("conditions") or []
                      if c["type"] not in ("Ready", "ContainersReady")]
        conditions += [{"type": k, "status": status} for k in ("Ready", "ContainersReady")]
        await member.merge_patch(path(PODS, namespace="default", name=pod["metadata"]["name"],
                                      subresource="status"),
                                 {"status": {"conditions": conditions}})


def wait_for(ports: dict[str, int], name: str, kind: str, began: float,
             limit: float = 60.0) -> dict[str, float]:
    """Seconds from `began` until each server answers `name` with `kind` first."""
    seen: dict[str, float] = {}
    while len(seen) < len(ports) and time.monotonic() - began < limit:
        for server, port in ports.items():
            if server not in seen and answer_kind(port, name) == kind:
                seen[server] = time.monotonic() - began
        time.sleep(0.002)
    if len(seen) < len(ports):
        raise SystemExit(f"{name} never answered {kind} in {sorted(set(ports) - set(seen))}")
    return seen


async def convergence(kubeconfig: Path, ports: dict[str, int], rounds: int
                      ) -> dict[str, list[float]]:
    member = KubeClient(await load_credentials(kubeconfig, "member-2"))
    took: dict[str, list[float]] = {server: [] for server in ports}
    try:
        wait_for(ports, WEST_ZONE, "A", time.monotonic(), limit=120)
        for _ in range(rounds):
            for ready, kind in ((False, "CNAME"), (True, "A")):
                await set_ready(member, ready)
                began = time.monotonic()
                for server, seconds in wait_for(ports, WEST_ZONE, kind, began).items():
                    took[server].append(seconds)
    finally:
        await member.close()
    return took


def blast(port: int, seconds: float, window: int = 32) -> int:
    """Answers received from 127.0.0.1:port in `seconds`, `window` queries in flight."""
    wires = [dns.message.make_query(n, k).to_wire() for n, k in MIX]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect(("127.0.0.1", port))
    answered = sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        while sent - answered < window:
            sock.send(wires[sent % len(wires)])
            sent += 1
        ready, _, _ = select.select([sock], [], [], 0.05)
        if not ready:
            sent = answered  # lost ones: send more
            continue
        while True:
            try:
                sock.recv(4096)
            except BlockingIOError:
                break
            answered += 1
    sock.close()
    return answered


def throughput(port: int, seconds: float, clients: int) -> float:
    with ProcessPoolExecutor(clients) as pool:
        counts = list(pool.map(blast, [port] * clients, [seconds] * clients))
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--base-port", type=int, default=26400)
    parser.add_argument("--http-port", type=int, default=26399)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="federator-bench-"))
    bind = Bind(root / "bind", ZONE)
    secret = root / "tsig.secret"
    secret.write_text(bind.secret)
    dns_port = free_port()
    env = {"FEDERATOR_DNS__EMBEDDED__PORT": str(dns_port),
           "FEDERATOR_DNS__RFC2136__ENABLED": "true",
           "FEDERATOR_DNS__RFC2136__PORT": str(bind.port),
           "FEDERATOR_DNS__RFC2136__KEY_NAME": KEY_NAME,
           "FEDERATOR_DNS__RFC2136__KEY_SECRET_FILE": str(secret)}
    try:
        with federated_lab(root, args.base_port, args.http_port, len(MEMBERS),
                           init=("--dns-zone-name", ZONE), env=env) as run:
            subprocess.run(["kubectl", f"--kubeconfig={run.kubeconfig}",
                            "--context=federation", "apply", "-f", "-"], input=MANIFESTS,
                           text=True, check=True, capture_output=True)
            ports = {"embedded": dns_port, "BIND": bind.port}
            took = asyncio.run(convergence(run.kubeconfig, ports, args.rounds))
            rates = {server: throughput(port, args.seconds, args.clients)
                     for server, port in ports.items()}
    finally:
        bind.stop()
    print(f"\n(a) pod readiness change in member-2 -> answer changed, {len(took['BIND'])} "
          "changes\n")
    print("| server | p50 | p99 | max |\n|---|---|---|---|")
    for server, values in took.items():
        print(f"| {server} | {statistics.median(values) * 1000:.0f} ms | "
              f"{percentile(values, 0.99) * 1000:.0f} ms | {max(values) * 1000:.0f} ms |")
    print(f"\n(b) queries answered per second, {args.clients} client processes, "
          f"{len(MIX)} query kinds\n")
    print("| embedded | BIND 9 | embedded / BIND |\n|---|---|---|")
    print(f"| {rates['embedded']:.0f}/s | {rates['BIND']:.0f}/s | "
          f"{rates['embedded'] / rates['BIND']:.2f}x |")


if __name__ == "__main__":
    main()
