"""The embedded authoritative DNS server: UDP and TCP on one address, answers from the Zone
in memory. `zone` is replaced whole by `update`, so that a query is answered from one
snapshot or the next, never from a half-changed one, and answering never stops."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Iterable
from typing import cast

import structlog

from federator.dns.zone import SoaFields, Zone, answer_wire
from federator.domain.dns import RecordSet

log = structlog.get_logger(__name__)
TCP_IDLE = 10.0  # seconds a TCP client may stay silent between queries


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = answer_wire(self.server.zone, data, udp=True)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class DnsServer:
    def __init__(self, origin: str, soa: SoaFields, nameservers: Iterable[str]) -> None:
        self.origin = origin
        self.soa = soa
        self.nameservers = tuple(nameservers)
        self.zone = Zone(origin, (), serial=int(time.time()), soa=soa,
                         nameservers=self.nameservers)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    def update(self, record_sets: Iterable[RecordSet]) -> None:
        """Answer from these records from now on (a new serial)."""
        self.zone = Zone(self.origin, record_sets, serial=max(self.zone.serial + 1,
                                                              int(time.time())),
                         soa=self.soa, nameservers=self.nameservers)

    async def start(self, host: str, port: int) -> int:
        """Listen on UDP and TCP; the port (chosen by the system if 0)."""
        loop = asyncio.get_running_loop()
        self._tcp = await asyncio.start_server(self._serve_tcp, host, port)
        port = self._tcp.sockets[0].getsockname()[1]
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self),
                                                           local_addr=(host, port))
        self._udp = transport
        log.info("dns serving", address=f"{host}:{port}", zone=self.origin)
        return int(port)

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE):
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    data = await reader.readexactly(size)
                reply = answer_wire(self.zone, data, udp=False)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
