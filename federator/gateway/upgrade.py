"""Upgraded connections through the gateway. `kubectl exec`, `attach`, `cp` and
`port-forward` ask the apiserver to switch the connection to a streaming protocol (WebSocket,
kubectl's default since 1.30, or SPDY, its fallback and older kubectls' only one). The
gateway sends the same upgrade to the member's apiserver as the calling user (impersonated
on its own credential, as every request), passes the answer back, and after a 101 carries
the bytes both ways, untouched, until either side goes; then both are closed.

The caller's connection is taken from aiohttp's HTTP protocol for as long as the upgraded
one lasts (aiohttp itself upgrades only to WebSocket) and given back to it to be closed, so
that its server forgets the connection as it forgets any other."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiohttp import web

from federator.gateway.auth import User
from federator.gateway.proxy import request_headers
from federator.gateway.status import status_response
from federator.kube.client import KubeClient, Unreachable, Upgrade

log = structlog.get_logger(__name__)

CHUNK = 64 * 1024
HIGH_WATER = 256 * 1024  # bytes waiting for one side before the other is read no further
MAX_REFUSAL = 1024 * 1024  # bytes of a refusal's body (a Status) passed back
_NOT_PASSED = frozenset({"content-length", "transfer-encoding", "date", "server"})


def is_upgrade(request: web.Request) -> bool:
    tokens = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
    return "upgrade" in tokens and bool(request.headers.get("Upgrade"))


class _Caller(asyncio.Protocol):
    """The caller's side once upgraded: what it sends goes on to the member (reading it
    pauses while the member's side is behind); `writable` is clear while what goes to the
    caller waits in its buffer."""

    def __init__(self, transport: asyncio.Transport, member: asyncio.StreamWriter) -> None:
        self.transport = transport
        self.member = member
        self.gone = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self._draining: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        if self.member.is_closing():
            self.gone.set()
            return
        self.member.write(data)
        if (self._draining is None
                and self.member.transport.get_write_buffer_size() > HIGH_WATER):
            self.transport.pause_reading()
            self._draining = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        try:
            await self.member.drain()
        except (ConnectionError, OSError):
            self.gone.set()
            return
        finally:
            self._draining = None
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        self.gone.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone.set()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()


async def _to_caller(answer: Upgrade, caller: _Caller) -> None:
    while chunk := await answer.reader.read(CHUNK):
        await caller.writable.wait()
        if caller.transport.is_closing():
            return
        caller.transport.write(chunk)


async def _splice(request: web.Request, answer: Upgrade) -> None:
    """Carry bytes both ways until either side ends or fails; then close both."""
    transport = request.transport
    http = request.protocol
    if not isinstance(transport, asyncio.Transport):
        answer.writer.close()
        return
    caller = _Caller(transport, answer.writer)
    transport.set_protocol(caller)
    down = asyncio.ensure_future(_to_caller(answer, caller))
    gone = asyncio.ensure_future(caller.gone.wait())
    try:
        await asyncio.wait({down, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (down, gone):
            task.cancel()
        answer.writer.close()
        transport.set_protocol(http)  # aiohttp closes its connection and forgets it
        http.force_close()
        transport.close()
        await asyncio.gather(down, gone, return_exceptions=True)


async def _refusal(answer: Upgrade) -> bytes:
    """The body of an answer that is no 101 (a Status, say), read up to MAX_REFUSAL."""
    length = next((v for k, v in answer.headers if k.lower() == "content-length"), None)
    with contextlib.suppress(asyncio.IncompleteReadError, OSError, TimeoutError):
        async with asyncio.timeout(10):
            if length is not None and length.isdigit():
                return await answer.reader.readexactly(min(int(length), MAX_REFUSAL))
            return await answer.reader.read(MAX_REFUSAL)
    return b""


async def carry(request: web.Request, upstream: KubeClient, path_qs: str, user: User,
                what: str) -> web.StreamResponse:
    """Pass an upgrade request to `upstream` as `user` and carry the upgraded connection;
    `what` names the upstream in errors ("cluster member-2")."""
    if request.content_length:
        return status_response(400, "BadRequest", "an upgrade request carries no body")
    headers = [*request_headers(request, user), ("Connection", "Upgrade"),
               ("Upgrade", request.headers["Upgrade"])]
    try:
        answer = await upstream.upgrade(request.method, path_qs, headers)
    except Unreachable as exc:
        return status_response(503, "ServiceUnavailable", f"{what} did not answer: "
                               f"{exc.message}")
    except ValueError as exc:
        return status_response(400, "BadRequest", str(exc))
    passed = [(k, v) for k, v in answer.headers if k.lower() not in _NOT_PASSED]
    if answer.status != 101:
        body = await _refusal(answer)
        answer.writer.close()
        refused = web.Response(status=answer.status, reason=answer.reason or None, body=body)
        refused.headers.extend(passed)
        return refused
    switched = web.StreamResponse(status=101, reason=answer.reason or None)
    switched.headers.extend(passed)
    await switched.prepare(request)
    log.debug("upgraded", upstream=what, path=request.path,
              protocol=request.headers["Upgrade"])
    await _splice(request, answer)
    return switched
