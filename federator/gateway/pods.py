"""Where a pod is. A request about one pod through the federation context (its log, exec,
attach, port-forward, eviction, a delete or a patch) goes to the member that holds it: every
Ready member is asked, as the caller, within `member_timeout`, and the answer is remembered
for a short while (forgotten as soon as that member says the pod is not there)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from dataclasses import dataclass

from aiohttp import web

from federator.clusters.registry import Member, Registry
from federator.domain import fanout
from federator.gateway.auth import User
from federator.gateway.proxy import ask, impersonation
from federator.gateway.status import status_response

REMEMBERED = 4096  # pods whose member is remembered, the least recently used forgotten
Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Found:
    cluster: str
    member: Member
    silent: tuple[tuple[str, str], ...] = ()  # (member, why) asked but not answering


class Pods:
    def __init__(self, registry: Registry, member_timeout: float, ttl: float = 30.0) -> None:
        self.registry = registry
        self.member_timeout = member_timeout
        self.ttl = ttl
        self._known: OrderedDict[Key, tuple[str, float]] = OrderedDict()

    def forget(self, namespace: str, name: str) -> None:
        self._known.pop((namespace, name), None)

    def _remembered(self, key: Key) -> Found | None:
        known = self._known.get(key)
        if known is None:
            return None
        cluster, until = known
        member = self.registry.members.get(cluster)
        if time.monotonic() > until or member is None or not member.ready:
            del self._known[key]
            return None
        self._known.move_to_end(key)
        return Found(cluster, member)

    async def locate(self, pod: fanout.PodRequest, user: User) -> Found | web.Response:
        """The member holding the pod, or the Status to answer with: 404 (no Ready member
        has it), 409 (several have one of that name), a member's refusal (403) or 503."""
        key = (pod.namespace, pod.name)
        found = self._remembered(key)
        if found is not None:
            return found
        members = {n: m for n, m in sorted(self.registry.members.items())
                   if m.ready and m.client is not None}
        if not members:
            return status_response(503, "ServiceUnavailable", "no cluster is Ready")
        path = f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}"
        headers = [*impersonation(user), ("Accept", "application/json")]
        answers = await asyncio.gather(*(ask(m, path, headers, self.member_timeout)
                                         for m in members.values()))
        holders = [n for n, (code, _) in zip(members, answers, strict=True) if code == 200]
        silent = [(n, str(body["message"])) for n, (code, body)
                  in zip(members, answers, strict=True) if code == 0]
        if len(holders) > 1:
            return status_response(409, "Conflict", fanout.ambiguous("pods", pod.name, holders))
        if holders:
            self._known[key] = (holders[0], time.monotonic() + self.ttl)
            if len(self._known) > REMEMBERED:
                self._known.popitem(last=False)
            return Found(holders[0], members[holders[0]], tuple(silent))
        refused = [(code, body) for code, body in answers if code not in (0, 404)]
        if refused:  # e.g. 403: the caller may not read pods there
            code, body = refused[0]
            return web.Response(status=code, text=json.dumps(body),
                                content_type="application/json")
        more = f" ({', '.join(n for n, _ in silent)} did not answer)" if silent else ""
        return status_response(404, "NotFound",
                               f'pods "{pod.name}" not found in any Ready cluster{more}')
