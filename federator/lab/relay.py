"""Node addresses of the process lab. Every kwok node has a loopback address of its own (its
InternalIP, where the member's apiserver reaches the node's kubelet API for logs, exec,
attach and port-forward); one kwok serves all the nodes of a member, on one address. This
relay (run by `federator.lab.nodes`) listens on each node's address and carries the bytes
of every connection to the member's kwok and back, untouched (TLS passes through, so does
any upgraded stream).

Both sides of every route must be loopback addresses (127.0.0.0/8): the lab never listens on
nor connects to any other."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
from dataclasses import dataclass

CHUNK = 64 * 1024
MAX_CONNECTIONS = 256  # at once, over every route; more wait to be accepted


class RouteError(ValueError):
    """A route that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Route:
    listen: tuple[str, int]
    target: tuple[str, int]


def _address(text: str, route: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise RouteError(f"route {route!r}: {text!r} is not HOST:PORT with a port 1-65535")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise RouteError(f"route {route!r}: {host!r} is not an IP address") from None
    if ip.version != 4 or not ip.is_loopback:
        raise RouteError(f"route {route!r}: {host} is not a loopback address (127.0.0.0/8); "
                         "the lab listens and connects only there")
    return host, int(port)


def parse(route: str) -> Route:
    """`LISTEN_HOST:PORT=TARGET_HOST:PORT`, both loopback; RouteError otherwise."""
    listen, sep, target = route.partition("=")
    if not sep:
        raise RouteError(f"route {route!r}: write it LISTEN_HOST:PORT=TARGET_HOST:PORT")
    return Route(_address(listen, route), _address(target, route))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until the reading side ends, then end the writing side (a half-close)."""
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


class Relay:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self.servers: list[asyncio.Server] = []
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._carrying: set[asyncio.Task[None]] = set()  # one per connection

    async def start(self) -> None:
        for route in self.routes:
            self.servers.append(await asyncio.start_server(
                functools.partial(self._carry, target=route.target), *route.listen))

    async def _carry(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter,
                     target: tuple[str, int]) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._carrying.add(task)
            task.add_done_callback(self._carrying.discard)
        async with self._slots:
            try:
                upstream_in, upstream_out = await asyncio.open_connection(*target)
            except OSError:
                client_out.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await client_out.wait_closed()
                return
            up = asyncio.ensure_future(_pipe(client_in, upstream_out))
            down = asyncio.ensure_future(_pipe(upstream_in, client_out))
            try:
                # The caller may end its side first (stdin of an exec closed) and still await
                # the answer; once kwok's side ends, the exchange is over.
                await down
            finally:  # both sides are closed, before anything here may be cancelled
                for task in (up, down):
                    task.cancel()
                for writer in (client_out, upstream_out):
                    writer.close()
                await asyncio.gather(up, down, return_exceptions=True)

    async def close(self) -> None:
        """Stop listening and end every connection."""
        for server in self.servers:
            server.close()
        for task in list(self._carrying):
            task.cancel()
        await asyncio.gather(*self._carrying, return_exceptions=True)
        for server in self.servers:
            await server.wait_closed()
