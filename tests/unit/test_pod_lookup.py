"""Finding the member that holds a pod (gateway/pods.py): every Ready member asked within
member_timeout, the holder remembered and forgotten, conflicts and refusals. Members are
fakes that answer a GET of one pod; on a virtual clock, a hung one costs no real time."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from federator.clusters.registry import Member
from federator.domain.fanout import PodRequest
from federator.domain.health import Health
from federator.gateway.auth import User
from federator.gateway.pods import Found, Pods
from tests import clock

POD = PodRequest("shop", "web-1", "log")
ALICE = User("alice", ("devs",))


class _Answer:
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self._text = json.dumps(body)

    async def text(self) -> str:
        return self._text


class _Client:
    """A member's apiserver: `pods` it holds, or `code` for every pod, or never answers."""

    def __init__(self, pods: set[str] = frozenset(),  # type: ignore[assignment]
                 code: int | None = None, hung: bool = False) -> None:
        self.pods, self.code, self.hung = pods, code, hung
        self.asked: list[tuple[str, list[tuple[str, str]]]] = []

    @contextlib.asynccontextmanager
    async def forward(self, method: str, target: str, headers: list[tuple[str, str]],
                      body: bytes | None) -> AsyncIterator[_Answer]:
        self.asked.append((target, headers))
        if self.hung:
            await asyncio.Event().wait()
        name = target.rsplit("/", 1)[1]
        if self.code is not None:
            yield _Answer(self.code, {"kind": "Status", "code": self.code})
        elif name in self.pods:
            yield _Answer(200, {"kind": "Pod", "metadata": {"name": name}})
        else:
            yield _Answer(404, {"kind": "Status", "code": 404})


class _Registry:
    def __init__(self, **clients: _Client) -> None:
        self.members = {name: Member(name, {}, client, Health("True"), "")  # type: ignore[arg-type]
                        for name, client in clients.items()}


def _pods(registry: _Registry, ttl: float = 30.0) -> Pods:
    return Pods(registry, member_timeout=5.0, ttl=ttl)  # type: ignore[arg-type]


def _status(found: Found | web.Response) -> tuple[int, str]:
    assert isinstance(found, web.Response) and isinstance(found.text, str)
    return found.status, json.loads(found.text)["message"]


@clock.virtual
async def test_the_holder_is_found_as_the_caller_and_remembered_until_forgotten() -> None:
    holder, other = _Client({"web-1"}), _Client()
    pods = _pods(_Registry(m1=other, m2=holder))
    found = await pods.locate(POD, ALICE)
    assert isinstance(found, Found) and (found.cluster, found.silent) == ("m2", ())
    target, headers = holder.asked[0]
    assert target == "/api/v1/namespaces/shop/pods/web-1"
    assert ("Impersonate-User", "alice") in headers and ("Impersonate-Group", "devs") in headers
    again = await pods.locate(POD, ALICE)
    assert isinstance(again, Found) and again.cluster == "m2"
    assert (len(holder.asked), len(other.asked)) == (1, 1)  # remembered: nobody asked
    pods.forget("shop", "web-1")
    await pods.locate(POD, ALICE)
    assert (len(holder.asked), len(other.asked)) == (2, 2)


@clock.virtual
async def test_what_is_remembered_goes_with_its_time_or_its_members_readiness() -> None:
    holder = _Client({"web-1"})
    registry = _Registry(m1=holder)
    pods = _pods(registry, ttl=0.0)
    await pods.locate(POD, ALICE)
    await pods.locate(POD, ALICE)
    assert len(holder.asked) == 2  # remembered for no time
    pods = _pods(registry)
    await pods.locate(POD, ALICE)
    registry.members["m1"].health = Health("False")
    assert _status(await pods.locate(POD, ALICE)) == (503, "no cluster is Ready")


@clock.virtual
async def test_a_hung_member_is_left_out_after_member_timeout_and_named() -> None:
    hung = _Client(hung=True)
    pods = _pods(_Registry(m1=_Client({"web-1"}), m3=hung))
    loop = asyncio.get_running_loop()
    began = loop.time()
    found = await pods.locate(POD, ALICE)
    assert isinstance(found, Found) and found.cluster == "m1"
    assert found.silent == (("m3", "no answer within 5s"),)
    assert loop.time() - began == 5.0  # the virtual clock: exactly member_timeout
    nowhere = _pods(_Registry(m1=_Client(), m3=hung))
    assert _status(await nowhere.locate(POD, ALICE)) == (
        404, 'pods "web-1" not found in any Ready cluster (m3 did not answer)')


@clock.virtual
async def test_two_holders_are_a_conflict_and_a_refusal_comes_back_as_it_is() -> None:
    both = _pods(_Registry(m1=_Client({"web-1"}), m2=_Client({"web-1"})))
    code, message = _status(await both.locate(POD, ALICE))
    assert code == 409 and "more than one cluster (m1, m2)" in message
    refused = await _pods(_Registry(m1=_Client(), m2=_Client(code=403))).locate(POD, ALICE)
    assert isinstance(refused, web.Response) and refused.status == 403
