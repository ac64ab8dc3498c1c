"""What the gateway costs a kubectl-like client: GET and LIST through the gateway against
the same requests straight to the plane, in the same run.

Brings up a lab (the plane and one member), `federator init`, `federator serve` with a token
for a `system:masters` user, and fills a namespace with ConfigMaps. Then, in rounds in ABBA
order (direct first, then the gateway first, ...) so that drift of the machine hits both
ways alike: one client asking one request at a time (latency: p50, p99) and CONCURRENCY
clients asking without pause (throughput), each
way. The plane is asked with the lab's admin certificate; the gateway with the bearer token,
and it asks the plane again impersonating the user. What impersonation alone costs the
plane: the direct requests once more with `Impersonate-User`/`Impersonate-Group` headers.

    .venv/bin/python -m benchmarks.gateway --requests 400
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from benchmarks.lab import federated_lab, second_first
from benchmarks.propagation import percentile
from federator.gateway.certificates import gateway_ca
from federator.kube.client import KubeClient
from federator.kube.kubeconfig import Credentials, load_credentials
from federator.kube.resources import CONFIGMAPS, KINDS, path

CONCURRENCY = 16
TOKEN = "benchmark-token"  # noqa: S105 (a token of a throw-away lab)
NAMESPACE = "bench-gateway"
Ask = Callable[[KubeClient], Awaitable[object]]
AS_USER = (("Impersonate-User", "bench"), ("Impersonate-Group", "system:masters"))


async def fill(plane: KubeClient, count: int) -> None:
    await plane.create(path(KINDS[("v1", "Namespace")]),
                       {"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": NAMESPACE}})
    for start in range(0, count, CONCURRENCY):
        names = [f"cm-{i}" for i in range(start, min(count, start + CONCURRENCY))]
        await asyncio.gather(*(plane.create(path(CONFIGMAPS, namespace=NAMESPACE), {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"key": "value " * 20}}) for name in names))


async def _get(client: KubeClient, url: str,
               headers: tuple[tuple[str, str], ...] = ()) -> object:
    return await client.request("GET", url, headers=headers)


async def latencies(client: KubeClient, ask: Ask, n: int) -> list[float]:
    """One request at a time: how long each took."""
    took = []
    for _ in range(n):
        began = time.perf_counter()
        await ask(client)
        took.append(time.perf_counter() - began)
    return took


async def throughput(client: KubeClient, ask: Ask, n: int) -> float:
    """CONCURRENCY clients asking `n` requests in all, without pause: requests per second."""
    left = [n]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            await ask(client)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return n / (time.perf_counter() - began)


async def measure(kubeconfig: Path, gateway_port: int, configmaps: int, n: int,
                  rounds: int) -> None:
    admin = await load_credentials(kubeconfig, "federation")
    plane = KubeClient(admin, pool_size=CONCURRENCY)
    ca_cert, _ = await gateway_ca(plane, create=False)
    gateway = KubeClient(Credentials(server=f"https://127.0.0.1:{gateway_port}",
                                     ca_pem=ca_cert, token=TOKEN), pool_size=CONCURRENCY)
    urls = {"GET one ConfigMap": path(CONFIGMAPS, namespace=NAMESPACE, name="cm-0"),
            f"LIST {configmaps} ConfigMaps": path(CONFIGMAPS, namespace=NAMESPACE)}
    asks: dict[str, Ask] = {what: functools.partial(_get, url=url)
                            for what, url in urls.items()}
    impersonated: dict[str, Ask] = {what: functools.partial(_get, url=url, headers=AS_USER)
                                    for what, url in urls.items()}
    ways = {"direct": plane, "gateway": gateway}
    lat: dict[tuple[str, str], list[float]] = {(a, w): [] for a in asks
                                               for w in (*ways, "impersonated")}
    rps: dict[tuple[str, str], list[float]] = {(a, w): [] for a in asks for w in ways}
    try:
        await fill(plane, configmaps)
        for client in ways.values():  # connections open, caches warm
            for ask in asks.values():
                await latencies(client, ask, 20)
        for index in range(rounds):
            for what, ask in asks.items():
                order = list(ways.items())
                for way, client in order[::-1] if second_first(index) else order:
                    lat[(what, way)] += await latencies(client, ask, n // rounds)
                    rps[(what, way)].append(await throughput(client, ask, n // rounds))
                lat[(what, "impersonated")] += await latencies(plane, impersonated[what],
                                                               n // rounds)
    finally:
        await plane.close()
        await gateway.close()
    print(f"\n{n} requests per measure and way, in {rounds} rounds in ABBA order; "
          f"throughput with {CONCURRENCY} concurrent clients\n")
    print("| request | measure | direct to the plane | through the gateway | "
          "gateway / direct |")
    print("|---|---|---|---|---|")
    for what in asks:
        direct, through = lat[(what, "direct")], lat[(what, "gateway")]
        for name, fn in (("p50 latency", statistics.median),
                         ("p99 latency", lambda v: percentile(v, 0.99))):
            base, gw = fn(direct) * 1000, fn(through) * 1000
            print(f"| {what} | {name} | {base:.2f} ms | {gw:.2f} ms | {gw / base:.2f}x |")
        base, gw = statistics.median(rps[(what, "direct")]), statistics.median(
            rps[(what, "gateway")])
        print(f"| {what} | throughput | {base:.0f}/s | {gw:.0f}/s | {gw / base:.2f}x |")
    print("\nImpersonation alone, straight to the plane (p50):\n")
    print("| request | as the admin | impersonating a user | impersonated / admin |")
    print("|---|---|---|---|")
    for what in asks:
        base = statistics.median(lat[(what, "direct")]) * 1000
        other = statistics.median(lat[(what, "impersonated")]) * 1000
        print(f"| {what} | {base:.2f} ms | {other:.2f} ms | {other / base:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--configmaps", type=int, default=100)
    parser.add_argument("--base-port", type=int, default=24400)
    parser.add_argument("--http-port", type=int, default=24399)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="federator-bench-"))
    tokens = root / "tokens.csv"
    tokens.write_text(f'{TOKEN},bench,uid-bench,"system:masters"\n')
    with federated_lab(root, args.base_port, args.http_port, 1,
                       env={"FEDERATOR_GATEWAY__TOKEN_FILE": str(tokens)}) as run:
        asyncio.run(measure(run.kubeconfig, args.http_port - 1, args.configmaps,
                            args.requests, args.rounds))

if __name__ == "__main__":
    main()
