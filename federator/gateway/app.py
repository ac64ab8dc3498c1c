"""The gateway's HTTP application: who calls (401 otherwise), then where the request goes:
`/clusters/<name>/…` to that member, GETs of pods, ReplicaSets and nodes to every Ready
member (merged), anything else about one pod (its log, exec, a delete) to the member that
holds it, everything else to the plane."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import yarl
from aiohttp import web

from federator.clusters.registry import Member, Registry
from federator.domain import fanout, kinds
from federator.domain.dns import RecordSet
from federator.gateway import api, paths, upgrade
from federator.gateway.auth import USER, User, user_of_certificate, user_of_token
from federator.gateway.pods import Pods
from federator.gateway.proxy import ask, forward, request_headers
from federator.gateway.status import status_body, status_response
from federator.kube.client import KubeClient, KubeError

MAX_BODY = 16 * 1024 * 1024  # an apiserver takes up to 3 MiB; leave room for YAML and lists


def _json_accept(accept: str) -> str:
    """The JSON choices of an Accept header: fan-out answers are merged as JSON."""
    kept = [part.strip() for part in accept.split(",") if "json" in part]
    return ",".join(kept) or "application/json"


_REASONS = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed",
            413: "RequestEntityTooLarge", 414: "RequestURITooLong", 415: "UnsupportedMediaType"}


@web.middleware
async def _as_status(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
    """aiohttp's own refusals (a body over MAX_BODY, a route nobody serves) as Kubernetes
    Status objects, as kubectl expects them."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = (f"the request body is larger than {MAX_BODY} bytes" if exc.status == 413
                   else exc.reason)
        return status_response(exc.status, _REASONS.get(exc.status, "BadRequest"), message)


TARGET = web.RequestKey("target", paths.Target)  # the request target, once checked


def _left_out(cluster: str, why: object) -> str:
    """The Warning header saying a member's answer is not part of this one, and why."""
    return f'299 - "cluster {cluster} left out: {why}"'


@web.middleware
async def _checked_target(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
    """Every request target checked as it came, before anything is routed by it: aiohttp
    routes by the decoded path, in which an encoded line break matched no route (a 404
    where every other control character was a 400)."""
    target = paths.parse(request.raw_path)
    if isinstance(target, paths.Refused):
        return status_response(400, "BadRequest", target.message)
    request[TARGET] = target
    return await handler(request)


class Gateway:
    def __init__(self, plane: KubeClient, registry: Registry, tokens: dict[str, User],
                 dns_records: Callable[[], list[RecordSet]] = list, *,
                 member_timeout: float = 5.0,
                 learned_capacity: Callable[[api.Key], Mapping[str, int]] = lambda _: {},
                 exclude: tuple[str, ...] = ()) -> None:
        self.plane = plane
        self.exclude = exclude  # resources kept in the plane by the settings
        self.learned_capacity = learned_capacity
        self.dns_records = dns_records
        self.registry = registry
        self.tokens = tokens
        self.member_timeout = member_timeout
        self.pods = Pods(registry, member_timeout)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_as_status, _checked_target, self._authenticate],
                              client_max_size=MAX_BODY)
        app.add_subapp(api.PREFIX, api.Api(self.plane, self.registry, self.dns_records,
                                             self.learned_capacity).app())
        app.router.add_route("*", "/{tail:.*}", self._pass)
        return app

    @web.middleware
    async def _authenticate(self, request: web.Request,
                            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                            ) -> web.StreamResponse:
        offered = request.headers.get("Authorization")
        user = user_of_token(self.tokens, offered)
        if user is None and offered is None and request.transport is not None:
            user = user_of_certificate(request.transport.get_extra_info("peercert"))
        if user is None:
            return status_response(401, "Unauthorized", "Unauthorized")
        request[USER] = user
        return await handler(request)

    async def _pass(self, request: web.Request) -> web.StreamResponse:
        """Everything but the REST API: checked, then to a member or to the plane."""
        target = request[TARGET]
        at_member = paths.member_target(target)
        if at_member is not None:
            return await self._member(request, at_member)
        user: User = request[USER]
        if fanout.fans_out(request.method, target.path):
            return await self._fan_out(request, user)
        pod = fanout.pod_request(request.method, target.path)
        if pod is not None:
            return await self._pod(request, user, pod, target)
        why = kinds.not_propagated(request.method, target.path, self.exclude)
        return await forward(request, self.plane, target.path_qs, user, "the plane",
                             [f'299 - "{why}"'] if why else [])

    async def _member(self, request: web.Request, at: paths.MemberTarget
                      ) -> web.StreamResponse:
        user: User = request[USER]
        member = self.registry.members.get(at.cluster)
        if member is None:
            return status_response(404, "NotFound",
                                   f'clusters.federator.io "{at.cluster}" not found')
        if member.client is None or not member.ready:
            return status_response(503, "ServiceUnavailable",
                                   f"cluster {at.cluster} is not Ready: {member.health.reason} "
                                   f"{member.health.message}".strip())
        return await self._to_member(request, member.client, at.target.path_qs, user,
                                     f"cluster {at.cluster}")

    @staticmethod
    async def _to_member(request: web.Request, client: KubeClient, path_qs: str, user: User,
                         what: str, warnings: Sequence[str] = ()) -> web.StreamResponse:
        """A request passed to a member as it came (with `warnings` of our own on its
        answer); an upgrade (exec, attach, port-forward) carried as its own connection."""
        if upgrade.is_upgrade(request):
            return await upgrade.carry(request, client, path_qs, user, what)
        return await forward(request, client, path_qs, user, what, warnings)

    async def _pod(self, request: web.Request, user: User, pod: fanout.PodRequest,
                   target: paths.Target) -> web.StreamResponse:
        """A request about one pod, passed to the member that holds it."""
        found = await self.pods.locate(pod, user)
        if isinstance(found, web.StreamResponse):
            return found
        assert found.member.client is not None
        # Said as the fan-out says it: where the pod was not looked for.
        left_out = [_left_out(name, why) for name, why in found.silent]
        answer = await self._to_member(request, found.member.client, target.path_qs, user,
                                       f"cluster {found.cluster}", left_out)
        if answer.status == 404:
            self.pods.forget(pod.namespace, pod.name)  # gone, or moved: asked afresh
        return answer

    # fan-out -----------------------------------------------------------------------------
    async def _fan_out(self, request: web.Request, user: User) -> web.StreamResponse:
        members = {n: m for n, m in sorted(self.registry.members.items())
                   if m.ready and m.client is not None}
        query = {k: v for k, v in request.query.items() if k not in ("limit", "continue")}
        headers = [(k, v) for k, v in request_headers(request, user) if k.lower() != "accept"]
        headers.append(("Accept", _json_accept(request.headers.get("Accept", ""))))
        if query.get("watch") in ("true", "1"):
            return await self._watch_all(request, members, query, headers)
        target = str(yarl.URL.build(path=request.path, query=query))
        results = await asyncio.gather(*(ask(m, target, headers, self.member_timeout)
                                         for m in members.values()))
        answers: dict[str, dict[str, Any]] = {}
        failures: dict[str, tuple[int, dict[str, Any]]] = {}
        warnings = [f'299 - "cluster {n} is not Ready: left out"'
                    for n, m in sorted(self.registry.members.items()) if n not in members]
        for name, (code, body) in zip(members, results, strict=True):
            if code == 200:
                answers[name] = body
            elif code == 0:
                warnings.append(_left_out(name, body["message"]))
            else:
                failures[name] = (code, body)
        if fanout.is_collection(request.path):
            if not answers and failures:
                code, body = next(iter(failures.values()))  # e.g. 403 from every member
                return self._json(code, body, warnings)
            for name, (code, body) in failures.items():
                warnings.append(_left_out(name, body.get("message", code)))
            return self._json(200, fanout.merge(answers), warnings)
        if len(answers) > 1:
            resource, name = request.path.rsplit("/", 2)[-2:]
            return self._json(409, status_body(409, "Conflict", fanout.ambiguous(
                resource, name, sorted(answers))), warnings)
        for name, body in answers.items():
            return self._json(200, fanout.annotate(body, name), warnings)
        denied = [body for code, body in failures.values() if code != 404]
        if denied:
            return self._json(int(denied[0].get("code", 500)), denied[0], warnings)
        resource, name = request.path.rsplit("/", 2)[-2:]
        return self._json(404, status_body(404, "NotFound", f'{resource} "{name}" not found '
                                           "in any Ready cluster"), warnings)

    async def _watch_all(self, request: web.Request, members: dict[str, Member],
                         query: dict[str, str], headers: list[tuple[str, str]]
                         ) -> web.StreamResponse:
        """One watch over every Ready member, their events interleaved as they come, each
        marked with its cluster and carrying a composite resourceVersion. It ends when any
        member's watch ends (the client watches again from the last version it saw)."""
        versions = fanout.member_versions(query.get("resourceVersion", ""), list(members))
        if versions is None:
            return status_response(410, "Expired", "resourceVersion is not one the gateway "
                                   "gave out: list again")
        if not members:
            return status_response(503, "ServiceUnavailable", "no cluster is Ready")
        lines: asyncio.Queue[tuple[str, bytes | None]] = asyncio.Queue(1024)
        opened: dict[str, asyncio.Future[tuple[int, str, str]]] = {
            name: asyncio.get_running_loop().create_future() for name in members}

        async def follow(name: str, member: Member) -> None:
            assert member.client is not None
            target = str(yarl.URL.build(path=request.path,
                                        query={**query, "resourceVersion": versions[name]}))
            try:
                async with member.client.forward("GET", target, headers, None) as answer:
                    body = "" if answer.status == 200 else await answer.text()
                    opened[name].set_result((answer.status,
                                             answer.headers.get("Content-Type", ""), body))
                    if answer.status == 200:
                        async for line in answer.content:
                            await lines.put((name, line))
            except KubeError as exc:
                if not opened[name].done():
                    opened[name].set_result((0, "", exc.message))
            finally:
                await lines.put((name, None))

        tasks = {n: asyncio.ensure_future(follow(n, m)) for n, m in members.items()}
        try:
            # Members that do not open their watch within member_timeout are left out, with
            # a Warning, as fan-out lists leave them out.
            await asyncio.wait(opened.values(), timeout=self.member_timeout)
            started: dict[str, tuple[int, str, str]] = {}
            warnings = [f'299 - "cluster {n} is not Ready: left out"'
                        for n in sorted(self.registry.members) if n not in members]
            for name, future in opened.items():
                if not future.done():
                    warnings.append(f'299 - "cluster {name} left out of the watch: no answer '
                                    f'within {self.member_timeout:g}s"')
                    tasks[name].cancel()
                elif future.result()[0] != 200:
                    code, _, body = future.result()
                    message = body if code == 0 else f"answered {code}"
                    warnings.append(_left_out(name, message[:200]))
                    started[name] = future.result()
                else:
                    started[name] = future.result()
            watching = {n for n, (code, _, _) in started.items() if code == 200}
            if not watching:
                failed = [(c, b) for c, _, b in started.values() if c not in (0, 200)]
                if failed:  # e.g. 403 from every member
                    return web.Response(status=failed[0][0], text=failed[0][1],
                                        content_type="application/json")
                return status_response(503, "ServiceUnavailable",
                                       "no Ready cluster answered in time")
            content_type = next(started[n][1] for n in sorted(watching))
            response = web.StreamResponse(headers={"Content-Type": content_type})
            for warning in warnings:
                response.headers.add("Warning", warning)
            await response.prepare(request)
            while True:
                name, line = await lines.get()
                if line is None:
                    if name in watching:
                        break
                    continue  # one that was left out
                if not line.strip() or name not in watching:
                    continue
                event = fanout.watch_event(json.loads(line), name, versions)
                await response.write(json.dumps(event).encode() + b"\n")
            await response.write_eof()
            return response
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    @staticmethod
    def _json(code: int, body: dict[str, Any], warnings: list[str]) -> web.Response:
        response = web.Response(status=code, text=json.dumps(body),
                                content_type="application/json")
        for warning in warnings:
            response.headers.add("Warning", warning)
        return response
