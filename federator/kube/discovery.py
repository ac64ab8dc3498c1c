"""What an apiserver serves: every resource of the core group and of each API group at the
group's preferred version, as its discovery documents list them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from federator.domain.kinds import APIResource
from federator.kube.client import KubeClient, KubeError


@dataclass(frozen=True)
class Discovered:
    resources: list[APIResource]
    failed: dict[str, str] = field(default_factory=dict)  # group -> why it was not read


def _resources(group: str, version: str, answer: Any) -> list[APIResource]:
    found = []
    for item in (answer or {}).get("resources") or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        found.append(APIResource(group=group, version=version, plural=item["name"],
                                 kind=str(item.get("kind", "")),
                                 namespaced=bool(item.get("namespaced")),
                                 verbs=frozenset(str(v) for v in item.get("verbs") or [])))
    return found


async def discover(client: KubeClient) -> Discovered:
    """Every resource `client`'s apiserver serves. A group whose document cannot be read
    (an aggregated API that is down, say) is left out and named in `failed`; the core group
    and the list of groups must be read (KubeError otherwise)."""
    core = await client.get("/api/v1")
    groups = await client.get("/apis")
    preferred: list[tuple[str, str]] = []
    for group in groups.get("groups") or []:
        version = (group.get("preferredVersion") or {}).get("version")
        if isinstance(group.get("name"), str) and isinstance(version, str):
            preferred.append((group["name"], version))

    async def one(name: str, version: str) -> list[APIResource] | str:
        try:
            return _resources(name, version, await client.get(f"/apis/{name}/{version}"))
        except KubeError as exc:
            return f"{exc.reason}: {exc.message}"[:200]

    answers = await asyncio.gather(*(one(name, version) for name, version in preferred))
    resources = _resources("", "v1", core)
    failed = {}
    for (name, _), answer in zip(preferred, answers, strict=True):
        if isinstance(answer, str):
            failed[name] = answer
        else:
            resources += answer
    return Discovered(resources, failed)
