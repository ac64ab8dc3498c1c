"""The gateway's CA, kept in the plane (every replica and `federator kubeconfig` share it):
it signs the gateway's serving certificate and the client certificates of users."""

from __future__ import annotations

import base64
import ipaddress
import ssl
import tempfile
from pathlib import Path

from federator.domain.naming import FEDERATION_NAMESPACE
from federator.kube.client import KubeClient, KubeError
from federator.kube.resources import SECRETS, path
from federator.pki import issue, new_ca

CA_SECRET = "federator-gateway-ca"  # noqa: S105 (a Secret's name)
LOOPBACK = ("localhost", "127.0.0.1", "::1")


async def gateway_ca(plane: KubeClient, *, create: bool = True) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of the gateway CA; made and stored on first use."""
    url = path(SECRETS, namespace=FEDERATION_NAMESPACE, name=CA_SECRET)
    try:
        secret = await plane.get(url)
    except KubeError as exc:
        if not exc.not_found or not create:
            raise
        cert, key = new_ca("federator-gateway-ca")
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": CA_SECRET, "namespace": FEDERATION_NAMESPACE},
                "data": {"ca.crt": base64.b64encode(cert).decode(),
                         "ca.key": base64.b64encode(key).decode()}}
        try:
            await plane.create(path(SECRETS, namespace=FEDERATION_NAMESPACE), body)
            return cert, key
        except KubeError as race:
            if not race.conflict:
                raise
            secret = await plane.get(url)  # another replica made it first: use theirs
    data = secret.get("data") or {}
    return base64.b64decode(data["ca.crt"]), base64.b64decode(data["ca.key"])


def serving_context(ca_cert: bytes, ca_key: bytes, hostnames: tuple[str, ...],
                    client_ca_file: Path | None) -> ssl.SSLContext:
    """TLS for the gateway: a fresh serving certificate for loopback and `hostnames`, and
    client certificates asked for (not required: tokens work too) and checked against the
    gateway CA and `client_ca_file`."""
    names = (*LOOPBACK, *hostnames)
    ips = tuple(n for n in names if _is_ip(n))
    dns = tuple(n for n in names if not _is_ip(n))
    cert, key = issue(ca_cert, ca_key, "federator-gateway", server=True, dns=dns, ips=ips)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory(prefix="federator-gateway-") as scratch:
        pair = Path(scratch) / "pair.pem"  # ssl reads a chain only from a file
        pair.write_bytes(cert + key)
        context.load_cert_chain(pair)
    context.load_verify_locations(cadata=ca_cert.decode())
    if client_ca_file is not None:
        context.load_verify_locations(cafile=str(client_ca_file))
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
