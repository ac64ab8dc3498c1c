"""The gateway as an attacker sees it: no request path sends the credentials federator holds
anywhere but the member's or the plane's own server. A listener on a loopback port stands
for "anywhere else" and must receive nothing, whatever trick the path plays."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import GATEWAY_TOKENS, NOBODY_TOKEN, ca_of
from tests.serving import Serve

pytestmark = pytest.mark.integration


class Listener:
    """A TCP listener on a loopback port that records every connection and what it got."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.received: list[bytes] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.received.append(conn.recv(65536) or b"<connected>")
                except OSError:
                    self.received.append(b"<connected>")

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture()
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def send(serving: Serve, gateway: Path, target: str, token: str = NOBODY_TOKEN
         ) -> tuple[int, dict[str, Any]]:
    """One request with the target written into the request line as it is (no client
    normalises it); the status code and the decoded body."""
    context = ssl.create_default_context(cadata=ca_of(gateway))
    with socket.create_connection(("127.0.0.1", serving.gateway_port), timeout=30) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Authorization: Bearer {token}\r\nImpersonate-Group: system:masters\r\n"
                     "Connection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    code = int(head.split(b" ", 2)[1])
    try:
        return code, json.loads(body)
    except ValueError:
        return code, {"raw": body.decode(errors="replace")}


def tricks(port: int) -> list[str]:
    here = f"127.0.0.1:{port}"
    return [
        f"/clusters/member-1//{here}/x",
        f"/clusters/member-1//{here}/api/v1/namespaces/kube-system/secrets",
        f"/clusters/member-1/%2F%2F{here}/x",
        f"/clusters/member-1/%2f%2f{here}/x",
        f"/clusters/member-1/\\\\{here}/x",
        f"/clusters/member-1/%5C%5C{here}/x",
        f"//{here}/x",
        f"/%2F%2F{here}/x",
        f"/\\\\{here}/x",
        f"http://{here}/api/v1/secrets",
        f"https://{here}/api/v1/secrets",
        f"http://{here}/clusters/member-1/api/v1/secrets",
        "/clusters/member-1//api/v1/secrets",
        "/clusters/member-1/../../api/v1/secrets",
        "/clusters/member-1/%2e%2e/%2e%2e/api/v1/secrets",
        "/clusters/member-1/..%2F..%2Fapi/v1/secrets",
        "/api/v1/namespaces/default/../../../clusters/member-1/api",
        # Encoded control characters, a line break among them (aiohttp routes by the
        # decoded path, where a line break matched no route: a 404 once), anywhere.
        *(f"{prefix}/a{code}b" for code in ("%0d%0a", "%0a", "%0D", "%00", "%09", "%7f")
          for prefix in ("/clusters/member-1/api/v1/namespaces", "/api/v1/namespaces",
                         "/federator/v1/clusters")),
    ]


def test_no_path_sends_a_request_elsewhere(serving: Serve, gateway: Path,
                                           listener: Listener) -> None:
    for target in tricks(listener.port):
        code, body = send(serving, gateway, target)
        # Refused as a Kubernetes Status: never a pass-through, never a traceback.
        assert code == 400, (target, code, body)
        assert body.get("kind") == "Status" and body.get("reason") == "BadRequest", body
        assert "Traceback" not in json.dumps(body), target
    # Not a request target at all: the HTTP parser refuses it before any handler.
    code, _ = send(serving, gateway, f"127.0.0.1:{listener.port}/x")
    assert code == 400
    # A user-info-like segment is only a path: it goes to the member's own server, whose
    # RBAC refuses nobody.
    for target in (f"/clusters/member-1/@127.0.0.1:{listener.port}/x",
                   f"/@127.0.0.1:{listener.port}/x"):
        code, body = send(serving, gateway, target)
        assert (code, body.get("kind")) in ((403, "Status"), (404, "Status")), (target, body)
    assert listener.received == []


def test_user_tricks_get_no_more_than_their_rbac(serving: Serve, gateway: Path) -> None:
    """A user bound to nothing, who asks for system:masters himself, is still nobody: the
    gateway's impersonation replaces his own Impersonate-* headers."""
    code, body = send(serving, gateway, "/clusters/member-1/api/v1/namespaces/kube-system/"
                      "secrets")
    assert (code, body["reason"]) == (403, "Forbidden")
    assert 'User "nobody"' in body["message"]
    code, body = send(serving, gateway, "/api/v1/namespaces/kube-system/secrets")
    assert (code, body["reason"]) == (403, "Forbidden")


def test_ordinary_paths_still_pass(serving: Serve, gateway: Path) -> None:
    operator = next(iter(GATEWAY_TOKENS))
    code, body = send(serving, gateway, "/clusters/member-1/api/v1/namespaces/default",
                      operator)
    assert (code, body["metadata"]["name"]) == (200, "default")
    code, body = send(serving, gateway, "/clusters/member-1/version", operator)
    assert code == 200 and body["gitVersion"].startswith("v1.33.")
    code, body = send(serving, gateway, "/api/v1/namespaces/federation-system", operator)
    assert (code, body["metadata"]["name"]) == (200, "federation-system")


def post(serving: Serve, gateway: Path, target: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"https://127.0.0.1:{serving.gateway_port}{target}", data=body, method="POST",
        headers={"Authorization": f"Bearer {next(iter(GATEWAY_TOKENS))}",
                 "Content-Type": "application/json"})
    context = ssl.create_default_context(cadata=ca_of(gateway))
    try:
        with urllib.request.urlopen(request, context=context, timeout=60) as answer:  # noqa: S310
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_oversized_and_deeply_nested_bodies_are_statuses(serving: Serve, gateway: Path) -> None:
    huge = b'{"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "' + b"x" * (20 << 20) \
        + b'"}}'
    for target in ("/api/v1/namespaces/default/configmaps", "/federator/v1/plan"):
        code, body = post(serving, gateway, target, huge)
        assert (code, body["kind"], body["reason"]) == (413, "Status",
                                                       "RequestEntityTooLarge"), target
    deep = b"[" * 100_000 + b"]" * 100_000
    code, body = post(serving, gateway, "/federator/v1/plan", deep)
    assert (code, body["kind"], body["reason"]) == (400, "Status", "BadRequest")
    assert serving.get("/healthz")[0] == 200
