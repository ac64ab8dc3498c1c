"""The lab's relay from node addresses to kwok: bytes carried both ways, half-closes kept,
loopback only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from federator.lab.nodes import main
from federator.lab.relay import Relay, Route, RouteError, parse


def test_routes_are_loopback_only() -> None:
    assert parse("127.10.1.2:27443=127.0.0.1:27443") == Route(("127.10.1.2", 27443),
                                                              ("127.0.0.1", 27443))
    for bad, says in (("10.1.255.254:27443=127.0.0.1:27443", "not a loopback address"),
                      ("127.0.0.1:27443=192.168.1.1:80", "not a loopback address"),
                      ("127.0.0.1:0=127.0.0.1:80", "port 1-65535"),
                      ("node-1:80=127.0.0.1:80", "not an IP address"),
                      ("127.0.0.1:80", "LISTEN_HOST:PORT=TARGET_HOST:PORT")):
        with pytest.raises(RouteError, match=says):
            parse(bad)


def test_a_bad_route_is_refused_before_anything_listens(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--kubeconfig", str(tmp_path / "k"), "--cluster", "member-1", "--logs",
                 str(tmp_path), "127.0.0.1:1234=8.8.8.8:53"]) == 2
    assert "8.8.8.8 is not a loopback address" in capsys.readouterr().err


async def test_bytes_go_both_ways_and_the_answer_follows_a_half_close() -> None:
    """Like `exec -i`: the caller sends its input and closes its side; the answer, which
    comes after, still reaches it, and then the connection ends."""
    async def upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the caller's half-close
        writer.write(data.upper())
        writer.close()

    target = await asyncio.start_server(upper, "127.0.0.1", 0)
    port = target.sockets[0].getsockname()[1]
    relay = Relay([Route(("127.0.0.1", 0), ("127.0.0.1", port))])
    await relay.start()
    listen = relay.servers[0].sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", listen)
        writer.write(b"hello through the relay" * 5000)
        await writer.drain()
        writer.write_eof()
        assert await reader.read() == b"HELLO THROUGH THE RELAY" * 5000
        writer.close()
        await writer.wait_closed()
    finally:
        await relay.close()
        target.close()
        await target.wait_closed()


async def test_a_dead_target_closes_the_callers_connection() -> None:
    idle = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = idle.sockets[0].getsockname()[1]
    idle.close()
    await idle.wait_closed()
    relay = Relay([Route(("127.0.0.1", 0), ("127.0.0.1", port))])
    await relay.start()
    listen = relay.servers[0].sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", listen)
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
    finally:
        await relay.close()
