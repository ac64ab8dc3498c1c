"""What a process lab member's kwok nodes need besides kwok, in one process per member: their
addresses (`relay`: each node's InternalIP carried to kwok) and what their containers log
(`podlogs`).

    python -m federator.lab.nodes --kubeconfig K --cluster member-1 --logs DIR \\
        127.10.1.1:27443=127.0.0.1:27443 [...]"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from federator.kube.client import KubeClient
from federator.kube.kubeconfig import CredentialsError, load_credentials
from federator.lab.podlogs import PodLogs
from federator.lab.relay import Relay, Route, RouteError, parse


async def _serve(routes: list[Route], kubeconfig: Path, cluster: str, logs: Path) -> None:
    relay = Relay(routes)
    await relay.start()
    client = KubeClient(await load_credentials(kubeconfig, cluster))
    try:
        await PodLogs(client, cluster, logs).run()
    finally:
        await client.close()
        await relay.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="federator.lab.nodes", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--logs", type=Path, required=True)
    parser.add_argument("routes", nargs="+", metavar="LISTEN_HOST:PORT=TARGET_HOST:PORT")
    args = parser.parse_args(argv)
    try:
        routes = [parse(route) for route in args.routes]
        asyncio.run(_serve(routes, args.kubeconfig, args.cluster, args.logs))
    except (RouteError, CredentialsError) as exc:
        print(f"federator lab nodes: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"federator lab nodes: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
