"""Passing one request through to an apiserver as the calling user: the body and content
type as they came (protobuf too), the user impersonated on the gateway's own credential, the
answer streamed back (watches for as long as they last) with its status and headers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from federator.clusters.registry import Member
from federator.gateway.auth import User
from federator.gateway.status import status_response
from federator.kube.client import KubeClient, KubeError, Unreachable

log = structlog.get_logger(__name__)

# Not passed on: credentials, connection handling, and what aiohttp sets itself (it also
# asks for and undoes compression on its own).
_DROPPED_REQUEST = frozenset({"authorization", "host", "connection", "content-length",
                              "transfer-encoding", "accept-encoding", "keep-alive", "upgrade",
                              "proxy-authorization", "te"})
_DROPPED_RESPONSE = frozenset({"content-length", "transfer-encoding", "content-encoding",
                               "connection", "keep-alive"})


WHOLE_MAX = 1024 * 1024  # answers up to this size are read whole, then sent at once


def impersonation(user: User) -> list[tuple[str, str]]:
    return [("Impersonate-User", user.name),
            *(("Impersonate-Group", group) for group in user.groups)]


def request_headers(request: web.Request, user: User) -> list[tuple[str, str]]:
    kept = [(k, v) for k, v in request.headers.items()
            if k.lower() not in _DROPPED_REQUEST and not k.lower().startswith("impersonate-")]
    return [*kept, *impersonation(user)]


def _whole(request: web.Request, answer: aiohttp.ClientResponse) -> bool:
    """Whether an answer is passed on whole: a known, small length and no watch."""
    return (request.query.get("watch") not in ("true", "1")
            and answer.content_length is not None and answer.content_length <= WHOLE_MAX)


async def forward(request: web.Request, upstream: KubeClient, path_qs: str, user: User,
                  what: str, warnings: Sequence[str] = ()) -> web.StreamResponse:
    """`path_qs`: the path and query to ask `upstream` for (checked by `paths.parse`,
    percent-encoded); `what`: how errors name the upstream ("the plane", "cluster
    member-1"); `warnings`: Warning headers of our own for a successful answer."""
    body = await request.read() if request.can_read_body else None
    reply: web.StreamResponse | None = None
    try:
        async with upstream.forward(request.method, path_qs, request_headers(request, user),
                                    body) as answer:
            headers = [(k, v) for k, v in answer.headers.items()
                       if k.lower() not in _DROPPED_RESPONSE]
            if answer.status < 300:
                headers += [("Warning", warning) for warning in warnings]
            if _whole(request, answer):  # one write instead of a chunked stream's three
                whole = web.Response(status=answer.status, reason=answer.reason,
                                     body=await answer.read())
                whole.headers.extend(headers)
                return whole
            reply = web.StreamResponse(status=answer.status, reason=answer.reason)
            reply.headers.extend(headers)
            await reply.prepare(request)
            try:
                async for chunk in answer.content.iter_any():
                    await reply.write(chunk)
            except (ConnectionResetError, aiohttp.ClientPayloadError) as exc:
                log.debug("stream ended early", path=request.path, error=str(exc))
                return reply
            await reply.write_eof()
            return reply
    except Unreachable as exc:
        if reply is not None and reply.prepared:
            return reply  # it broke off mid-stream: the client sees the stream end
        return status_response(503, "ServiceUnavailable",
                               f"{what} did not answer: {exc.message}")


async def ask(member: Member, target: str, headers: list[tuple[str, str]], timeout: float
              ) -> tuple[int, dict[str, Any]]:
    """A GET of one member read whole: (status, decoded body); status 0 if it gave no JSON
    answer within `timeout` (the body's message says why)."""
    assert member.client is not None
    try:
        async with asyncio.timeout(timeout):
            async with member.client.forward("GET", target, headers, None) as answer:
                text = await answer.text()
    except TimeoutError:
        return 0, {"message": f"no answer within {timeout:g}s"}
    except KubeError as exc:
        return 0, {"message": exc.message}
    try:
        body = json.loads(text)
    except ValueError:
        return 0, {"message": f"answered {answer.status} without JSON"}
    return answer.status, body if isinstance(body, dict) else {}
