"""One HTTP client per apiserver: a connection pool, JSON in and out, Kubernetes errors as
exceptions that carry the Status, and watch streams."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl
from multidict import CIMultiDict

from federator import metrics
from federator.kube.kubeconfig import Credentials

FIELD_MANAGER = "federator"
Object = dict[str, Any]
MAX_HEAD = 64 * 1024  # bytes of an upgrade answer's status line and headers

# asyncio's TLS transport gives each connection a read buffer of SSLProtocol.max_size
# (256 KiB in Python 3.11), about 250 KiB of every connection's memory (a watch each, per
# member and kind). A TLS record carries at most 16 KiB and a read returns at most one
# record, so a larger buffer reads nothing more per call: 16 KiB costs no throughput.
# (benchmarks.clusters: a TLS watch connection took 330 KiB of client memory, 84 KiB with
# this; the read loop is asyncio's own, only the size changes.)
TLS_READ_BUFFER = 16 * 1024
if getattr(asyncio.sslproto.SSLProtocol, "max_size", 0) > TLS_READ_BUFFER:
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


class KubeError(Exception):
    """An apiserver answered with an error Status, or could not be reached (code 0)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        self.code = code
        self.reason = reason
        self.message = message
        super().__init__(f"{reason} ({code}): {message}" if code else f"{reason}: {message}")

    @property
    def not_found(self) -> bool:
        return self.code == 404

    @property
    def conflict(self) -> bool:
        return self.code == 409


class Unreachable(KubeError):
    """No HTTP answer: refused, reset, timed out, TLS failure."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "Unreachable", message)


@dataclass
class Upgrade:
    """An apiserver's answer to an upgrade request (exec, attach, port-forward): its head,
    and the connection, which after a 101 carries the upgraded protocol both ways."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


class KubeClient:
    """A client of one apiserver. Create and use it inside a running event loop."""

    def __init__(self, credentials: Credentials, *, timeout: float = 30.0,
                 pool_size: int = 16) -> None:
        self.credentials = credentials
        self.timeout = timeout
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None
        self._watching: aiohttp.ClientSession | None = None  # watches: a connection each
        self._base = yarl.URL(credentials.server)  # parsed once, not per request
        self._ssl: ssl.SSLContext | bool | None = None  # one for both pools

    @property
    def server(self) -> str:
        return self.credentials.server

    def _new_session(self, limit: int) -> aiohttp.ClientSession:
        headers = {"User-Agent": "federator", "Accept": "application/json"}
        if self.credentials.token:
            headers["Authorization"] = f"Bearer {self.credentials.token}"
        connector = aiohttp.TCPConnector(ssl=self._ssl_context(), limit=limit)
        return aiohttp.ClientSession(headers=headers, connector=connector,
                                     cookie_jar=aiohttp.DummyCookieJar())

    def _ssl_context(self) -> ssl.SSLContext | bool:
        """One SSL context for every connection of this client (its pools and upgrades)."""
        if self._ssl is None:
            self._ssl = self.credentials.ssl_context()
        return self._ssl

    def _open(self) -> aiohttp.ClientSession:
        """The pool of requests, at most `pool_size` connections."""
        if self._session is None or self._session.closed:
            self._session = self._new_session(self._pool_size)
        return self._session

    def _open_watching(self) -> aiohttp.ClientSession:
        """The pool of federator's own watches: one connection each, however many kinds
        are watched, so that they never take the connections requests wait for."""
        if self._watching is None or self._watching.closed:
            self._watching = self._new_session(0)
        return self._watching

    def url(self, path: str, *, encoded: bool = False) -> yarl.URL:
        """This apiserver's own server plus `path` (and its query): the only URLs this
        client sends its credential to. A path that does not start with exactly one "/"
        (so that it could name another host) is a ValueError, never a request."""
        head = path.partition("?")[0]
        if not head.startswith("/") or head.startswith("//") or "\\" in head:
            raise ValueError(f"not a path of {self.server}: {path[:100]!r}")
        url = yarl.URL(self.server.rstrip("/") + (path if encoded else _quote(path)),
                       encoded=True)
        if url.origin() != self._base.origin():
            raise ValueError(f"not a path of {self.server}: {path[:100]!r}")
        return url

    async def close(self) -> None:
        for session in (self._session, self._watching):
            if session is not None:
                await session.close()
        self._session = self._watching = None

    async def request(self, method: str, url: str, *, params: Mapping[str, str] | None = None,
                      body: Any = None, content_type: str = "application/json",
                      timeout: float | None = None, accept: str | None = None,
                      headers: Sequence[tuple[str, str]] = ()) -> Any:
        """Send one request; the decoded JSON answer, or KubeError. `headers`: more headers,
        such as Impersonate-User."""
        data = None if body is None else json.dumps(body)
        sent = CIMultiDict(headers)
        if data is not None:
            sent["Content-Type"] = content_type
        if accept:
            sent["Accept"] = accept
        try:
            async with self._open().request(
                method, self.url(url), params=params, data=data, headers=sent,
                timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
                allow_redirects=False,
            ) as response:
                text = await response.text()
                if response.status >= 400:
                    raise _status_error(response.status, text)
                if not text:
                    return None
                if response.content_type == "application/json":
                    return json.loads(text)
                return text
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Unreachable(_describe(exc, self.server, timeout or self.timeout)) from exc

    async def get(self, url: str, *, accept: str | None = None, **params: str) -> Any:
        return await self.request("GET", url, params=params or None, accept=accept)

    async def create(self, url: str, obj: Object) -> Any:
        return await self.request("POST", url, body=obj)

    async def replace(self, url: str, obj: Object) -> Any:
        return await self.request("PUT", url, body=obj)

    async def apply(self, url: str, obj: Object, *, force: bool = True,
                    dry_run: bool = False) -> Any:  # force=False: 409 on others' fields
        """Server-side apply with field manager `federator` (validated only, with dry_run)."""
        params = {"fieldManager": FIELD_MANAGER, "force": "true" if force else "false"}
        if dry_run:
            params["dryRun"] = "All"
        return await self.request("PATCH", url, params=params, body=obj,
                                  content_type="application/apply-patch+yaml")

    async def merge_patch(self, url: str, patch: Object) -> Any:
        return await self.request("PATCH", url, body=patch,
                                  content_type="application/merge-patch+json")

    async def delete(self, url: str, *, propagation: str = "Background",
                     missing_ok: bool = True) -> Any:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        try:
            return await self.request("DELETE", url, body=body)
        except KubeError as exc:
            if missing_ok and exc.not_found:
                return None
            raise

    @contextlib.asynccontextmanager
    async def forward(self, method: str, path_qs: str, headers: list[tuple[str, str]],
                      body: bytes | None) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send a request as it came (path and query already percent-encoded, any body and
        content type) with this client's credentials; the response, unread, for streaming
        back. Reading it may go on for as long as a watch lasts. Redirects are passed back,
        not followed. No answer within the client's timeout: Unreachable."""
        url = self.url(path_qs, encoded=True)
        try:
            # The answer's head must come within the client's timeout (a hung apiserver
            # accepts connections and says nothing); its body may stream for as long as it
            # lasts.
            response = await asyncio.wait_for(self._open().request(
                method, url, headers=headers, data=body, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout)),
                self.timeout)
        except (aiohttp.ClientConnectionError, TimeoutError, OSError) as exc:
            raise Unreachable(_describe(exc, self.server, self.timeout)) from exc
        try:
            async with response:
                yield response
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise Unreachable(_describe(exc, self.server, self.timeout)) from exc

    async def upgrade(self, method: str, path_qs: str, headers: Sequence[tuple[str, str]]
                      ) -> Upgrade:
        """Send an upgrade request (SPDY or WebSocket, as the caller asked) on a connection
        of its own, with this client's credentials, to this apiserver only; its answer's
        head, and the connection to go on with. No answer within the client's timeout:
        Unreachable."""
        url = self.url(path_qs, encoded=True)
        found = self._ssl_context()
        context = found if isinstance(found, ssl.SSLContext) else None
        lines = [f"{method} {url.raw_path_qs} HTTP/1.1", f"Host: {url.raw_authority}"]
        if self.credentials.token:
            lines.append(f"Authorization: Bearer {self.credentials.token}")
        for name, value in headers:
            if any(c in name + value for c in "\r\n\0"):
                raise ValueError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}")
        writer = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(
                    url.host, url.port, ssl=context, limit=MAX_HEAD,
                    server_hostname=(self.credentials.tls_server_name or url.host)
                    if context else None)
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
                head = await reader.readuntil(b"\r\n\r\n")
        except (OSError, TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError) as exc:
            if writer is not None:
                writer.close()
            raise Unreachable(_describe(exc, self.server, self.timeout)) from exc
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            writer.close()
            raise Unreachable(f"{self.server} answered the upgrade with {status_line[:80]!r}")
        answer = [tuple(line.split(":", 1)) for line in header_lines if ":" in line]
        return Upgrade(int(parts[1]), parts[2] if len(parts) > 2 else "",
                       [(k.strip(), v.strip()) for k, v in answer], reader, writer)

    async def watch(self, url: str, *, resource_version: str, timeout_seconds: int = 300,
                    extra: Mapping[str, str] | None = None, accept: str | None = None,
                    opened: Callable[[], None] | None = None) -> AsyncIterator[Object]:
        """The events of one watch request, until the server ends it (`opened` is told once
        the server has accepted it). An ERROR event with a 410 Status is raised as
        KubeError(410) so that the caller lists again."""
        params = {"watch": "true", "resourceVersion": resource_version,
                  "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout_seconds),
                  **(extra or {})}
        try:
            async with self._open_watching().get(
                self.url(url), params=params, allow_redirects=False,
                headers={"Accept": accept} if accept else None,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout,
                                              sock_read=timeout_seconds + 30),
            ) as response:
                if response.status >= 400:
                    raise _status_error(response.status, await response.text())
                open_watches = metrics.WATCHES.labels(self.server)
                open_watches.inc()
                if opened is not None:
                    opened()
                try:
                    async for line in response.content:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event.get("type") == "ERROR":
                            status = event.get("object") or {}
                            raise KubeError(int(status.get("code", 500)),
                                            str(status.get("reason", "Error")),
                                            str(status.get("message", "")))
                        yield event
                finally:
                    open_watches.dec()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Unreachable(_describe(exc, self.server, self.timeout)) from exc


def _quote(path: str) -> str:
    """A path as code writes it ("/api/v1/namespaces/a b"), percent-encoded for the wire."""
    return str(yarl.URL.build(path=path))


def _status_error(code: int, text: str) -> KubeError:
    try:
        status = json.loads(text)
    except ValueError:
        return KubeError(code, "Error", text.strip()[:300])
    if not isinstance(status, dict):
        return KubeError(code, "Error", text.strip()[:300])
    return KubeError(code, str(status.get("reason") or "Error"), str(status.get("message", "")))


def _describe(exc: BaseException, server: str, timeout: float) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"{server} did not answer within {timeout:g}s"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"{server}: its certificate is not trusted ({exc.certificate_error})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {server} ({exc.os_error.strerror or exc.os_error})"
    return f"{server}: {exc.__class__.__name__}: {exc}"
