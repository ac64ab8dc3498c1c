"""Which requests the gateway carries as upgraded connections, and what the client refuses
to send upstream."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from federator.gateway.upgrade import is_upgrade
from federator.kube.client import KubeClient
from federator.kube.kubeconfig import Credentials


@pytest.mark.parametrize(("headers", "expected"), [
    ({"Connection": "Upgrade", "Upgrade": "SPDY/3.1"}, True),
    ({"Connection": "keep-alive, Upgrade", "Upgrade": "websocket"}, True),
    ({"Connection": "Upgrade"}, False),
    ({"Upgrade": "websocket"}, False),
    ({"Connection": "keep-alive"}, False),
])
def test_an_upgrade_asks_for_it_in_connection_and_names_a_protocol(
        headers: dict[str, str], expected: bool) -> None:
    request = make_mocked_request("POST", "/api/v1/namespaces/a/pods/b/exec", headers=headers)
    assert is_upgrade(request) is expected


async def test_a_header_that_would_split_the_request_is_never_sent() -> None:
    client = KubeClient(Credentials(server="https://127.0.0.1:1", token="secret-token"))
    with pytest.raises(ValueError, match="line break") as refused:
        await client.upgrade("POST", "/api/v1/namespaces/a/pods/b/exec",
                             [("Impersonate-User", "alice\r\nImpersonate-Group: system:masters")])
    assert "secret-token" not in str(refused.value)
