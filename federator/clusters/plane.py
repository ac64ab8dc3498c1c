"""`federator init`: the federation API, namespace and RBAC in the plane. Idempotent."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from federator import manifests
from federator.domain.naming import CONFIG_NAME, FEDERATION_NAMESPACE
from federator.domain.objects import contains
from federator.kube.client import KubeClient, KubeError
from federator.kube.resources import CONFIGMAPS, object_path, path

ESTABLISH_TIMEOUT = 60.0


class InitError(Exception):
    """The plane cannot be initialised as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Federation:
    name: str
    dns_zone: str | None


def config_map(federation: Federation) -> dict[str, Any]:
    data = {"federationName": federation.name}
    if federation.dns_zone:
        data["dnsZoneName"] = federation.dns_zone
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIG_NAME, "namespace": FEDERATION_NAMESPACE}, "data": data}


async def read_federation(plane: KubeClient) -> Federation | None:
    """The federation the plane holds, or None if `federator init` has not run there."""
    try:
        found = await plane.get(path(CONFIGMAPS, namespace=FEDERATION_NAMESPACE,
                                     name=CONFIG_NAME))
    except KubeError as exc:
        if exc.not_found:
            return None
        raise
    data = found.get("data") or {}
    return Federation(data.get("federationName", ""), data.get("dnsZoneName"))


async def _apply(plane: KubeClient, obj: dict[str, Any]) -> str:
    """Apply one object; how kubectl would say what happened to it."""
    url = object_path(obj)
    kind = obj["kind"].lower()
    try:
        before = await plane.get(url)
    except KubeError as exc:
        if not exc.not_found:
            raise
        before = None
    name = f"{kind}/{obj['metadata']['name']}"
    if before is not None and contains(before, obj):
        return f"{name} unchanged"
    await plane.apply(url, obj)
    return f"{name} {'created' if before is None else 'configured'}"


async def _wait_established(plane: KubeClient, crd: dict[str, Any]) -> None:
    url = object_path(crd)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ESTABLISH_TIMEOUT
    while True:
        status = (await plane.get(url)).get("status") or {}
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        if conditions.get("Established") == "True":
            return
        if loop.time() > deadline:
            raise InitError(f"the plane did not establish {crd['metadata']['name']} within "
                            f"{ESTABLISH_TIMEOUT:.0f} s")
        await asyncio.sleep(0.2)


async def init(plane: KubeClient, federation: Federation) -> list[str]:
    """Install or confirm everything; one line per object."""
    existing = await read_federation(plane)
    if existing is not None and existing.name != federation.name:
        raise InitError(f"the plane already holds federation {existing.name!r}; "
                        f"run init with --federation-name {existing.name}")
    if existing is not None and federation.dns_zone is None:
        federation = Federation(federation.name, existing.dns_zone)
    lines = []
    crds = manifests.load("crds.yaml")
    for crd in crds:
        lines.append(await _apply(plane, crd))
    for crd in crds:
        await _wait_established(plane, crd)
    for obj in manifests.load("plane.yaml"):
        lines.append(await _apply(plane, obj))
    lines.append(await _apply(plane, config_map(federation)))
    return lines
