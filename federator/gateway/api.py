"""The REST API under /federator/v1: clusters (list, get, join, unjoin), workloads (desired
and actual replicas per cluster), plan (a distribution, nothing changed), federated events (a
list and a Server-Sent Events stream), DNS records; and its OpenAPI document.

Reads and writes of the plane are made as the calling user (impersonated), so that the
plane's RBAC decides; join and unjoin ask the plane first whether the user may create or
delete Clusters. Errors are Kubernetes Status objects: 400 for a body that is not JSON, 422
naming the field, 403, 404, 409, 503; never a traceback."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import structlog
import yarl
from aiohttp import web
from pydantic import BaseModel, ValidationError

from federator.clusters import join as joining
from federator.clusters.plane import read_federation
from federator.clusters.registry import Registry
from federator.domain import policy as policy_rules
from federator.domain import preferences, propagation
from federator.domain.decision import Cluster, decide
from federator.domain.dns import RecordSet, label_problem
from federator.domain.naming import CLUSTER_LABEL, FEDERATION_NAMESPACE
from federator.domain.preferences import PreferencesError
from federator.domain.propagation import CLUSTER_STATUS, PlacementError
from federator.domain.spreading import MAX_REPLICAS
from federator.gateway import api_models as models
from federator.gateway.auth import USER, User
from federator.gateway.openapi import document
from federator.gateway.proxy import impersonation
from federator.kube.client import KubeClient, KubeError, Object, Unreachable
from federator.kube.kubeconfig import Credentials, CredentialsError, inline_credentials
from federator.kube.resources import CLUSTERS, EVENTS, KINDS, SECRETS, Resource, path

log = structlog.get_logger(__name__)

PREFIX = "/federator/v1"
Model = TypeVar("Model", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
POLICIES = KINDS[("federator.io/v1alpha1", "FederationPolicy")]
WORKLOAD_RESOURCES = {plural: KINDS[("apps/v1", kind)]
                      for plural, kind in models.WORKLOAD_KINDS.items()}


class ApiError(Exception):
    """A failure to answer with: its code, reason, message and the fields at fault."""

    def __init__(self, code: int, reason: str, message: str,
                 causes: list[models.StatusCause] | None = None) -> None:
        super().__init__(message)
        self.status = models.Status(code=code, reason=reason, message=message,
                                    details=models.StatusDetails(causes=causes)
                                    if causes else None)


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "Invalid", f"{field}: {message}",
                    [models.StatusCause(field=field, message=message)])


def _from_validation(exc: ValidationError, where: str) -> ApiError:
    causes = [models.StatusCause(field=".".join(str(p) for p in e["loc"]) or where,
                                 message=e["msg"].removeprefix("Value error, "))
              for e in exc.errors()]
    text = "; ".join(f"{c.field}: {c.message}" for c in causes)
    return ApiError(422, "Invalid", f"invalid {where}: {text}", causes)


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(status=status, text=model.model_dump_json(by_alias=True,
                                                                   exclude_none=False),
                        content_type="application/json")


async def _body(request: web.Request, model: type[Model]) -> Model:
    try:
        data = await request.json() if request.can_read_body else {}
    except ValueError as exc:
        raise ApiError(400, "BadRequest", "the request body is not JSON") from exc
    except RecursionError as exc:
        raise ApiError(400, "BadRequest", "the request body nests too deeply") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _from_validation(exc, "request body") from exc


def _kube_error(exc: KubeError) -> ApiError:
    if isinstance(exc, Unreachable):
        return ApiError(503, "ServiceUnavailable", f"the plane does not answer: {exc.message}")
    if exc.code in (401, 403, 404, 409, 422, 429):
        return ApiError(exc.code, exc.reason, exc.message)
    return ApiError(502, "BadGateway", f"the plane answered {exc.code}: {exc.message}")


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure of the API as a Status; the unexpected ones logged, never shown."""
    try:
        return await handler(request)
    except ApiError as exc:
        return _json(exc.status, exc.status.code)
    except KubeError as exc:
        status = _kube_error(exc).status
        return _json(status, status.code)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("API request failed", method=request.method, path=request.path)
        status = models.Status(code=500, reason="InternalError",
                               message="internal error; federator's log has the details")
        return _json(status, 500)


def _object_problem(obj: Object) -> tuple[str, str] | None:
    """What in a planned object's metadata and spec is not of the shape Kubernetes gives
    them: (field, message), or None."""
    meta, spec = obj.get("metadata", {}), obj.get("spec", {})
    if not isinstance(meta, dict) or not isinstance(spec, dict):
        return "object", "metadata and spec are objects"
    for field in ("name", "namespace"):
        if not isinstance(meta.get(field, ""), str):
            return f"object.metadata.{field}", "a string"
    if meta.get("namespace") and (problem := label_problem(meta["namespace"], "namespace")):
        return "object.metadata.namespace", problem
    for field in ("labels", "annotations"):
        found = meta.get(field) or {}
        if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
            return f"object.metadata.{field}", "a map of strings to strings"
    return None


def _cluster_info(cluster: Object) -> models.ClusterInfo:
    meta, spec = cluster["metadata"], cluster.get("spec") or {}
    status = cluster.get("status") or {}
    ready: dict[str, Any] = next((c for c in status.get("conditions") or []
                                  if c.get("type") == "Ready"), {})
    capacity = status.get("capacity")
    state = ready.get("status")
    return models.ClusterInfo(
        name=meta["name"], server=str(spec.get("server", "")),
        ready="True" if state == "True" else "False" if state == "False" else "Unknown",
        reason=str(ready.get("reason") or ""), message=str(ready.get("message") or ""),
        region=spec.get("region"), zone=spec.get("zone"), labels=meta.get("labels") or {},
        kubernetesVersion=status.get("kubernetesVersion"),
        capacity=models.Capacity.model_validate(capacity) if capacity else None)


def _count(value: Any) -> int:
    """A count from the cluster-status annotation (anyone may edit it): 0 unless a number."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _workload(obj: Object) -> models.Workload:
    meta, status = obj["metadata"], obj.get("status") or {}
    try:
        breakdown = json.loads((meta.get("annotations") or {}).get(CLUSTER_STATUS) or "{}")
    except ValueError:
        breakdown = {}
    if not isinstance(breakdown, dict):
        breakdown = {}
    clusters = [models.ClusterReplicas(cluster=name, desired=_count(entry.get("desired")),
                                       replicas=_count(entry.get("replicas")),
                                       ready=_count(entry.get("ready")),
                                       error=str(entry["error"]) if entry.get("error") else None)
                for name, entry in sorted(breakdown.items()) if isinstance(entry, dict)]
    if obj["kind"] == "DaemonSet":  # one pod per node: as many as its members' nodes
        replicas, ready = (_count(status.get(field)) for field in ("desiredNumberScheduled",
                                                                   "numberReady"))
    else:
        replicas = int((obj.get("spec") or {}).get("replicas", 1))
        ready = int(status.get("readyReplicas") or 0)
    return models.Workload(
        kind=obj["kind"], namespace=meta["namespace"], name=meta["name"],
        replicas=replicas, readyReplicas=ready, clusters=clusters,
        conditions=[models.Condition.model_validate(
            {k: c.get(k) for k in ("type", "status", "reason", "message")})
            for c in status.get("conditions") or []])


def _federated_event(event: Object) -> models.FederatedEvent:
    involved = event.get("involvedObject") or {}
    return models.FederatedEvent(
        cluster=(event["metadata"].get("labels") or {}).get(CLUSTER_LABEL, ""),
        namespace=event["metadata"].get("namespace", ""), kind=str(involved.get("kind", "")),
        name=str(involved.get("name", "")), type=str(event.get("type", "")),
        reason=str(event.get("reason", "")), message=str(event.get("message", "")),
        count=int(event.get("count") or 1), firstTimestamp=event.get("firstTimestamp"),
        lastTimestamp=event.get("lastTimestamp"))


Key = tuple[str, str, str]  # kind with its group (Deployment.apps), namespace, name


class Api:
    def __init__(self, plane: KubeClient, registry: Registry,
                 dns_records: Callable[[], list[RecordSet]] = list,
                 learned_capacity: Callable[[Key], Mapping[str, int]] = lambda _: {}) -> None:
        self.plane = plane
        self.registry = registry
        self.dns_records = dns_records
        # What the leader's propagation learned of members' room for a workload (a standby
        # replica has learned nothing).
        self.learned_capacity = learned_capacity

    def app(self) -> web.Application:
        """The API as a sub-application, mounted at PREFIX."""
        app = web.Application(middlewares=[errors])
        routes = [("GET", "/openapi.json", self.openapi),
                  ("GET", "/clusters", self.list_clusters),
                  ("POST", "/clusters", self.join),
                  ("GET", "/clusters/{name}", self.get_cluster),
                  ("DELETE", "/clusters/{name}", self.unjoin),
                  ("GET", "/workloads", self.list_workloads),
                  ("GET", "/workloads/{namespace}/{resource}/{name}", self.get_workload),
                  ("POST", "/plan", self.plan),
                  ("GET", "/events", self.list_events),
                  ("GET", "/events/stream", self.stream_events),
                  ("GET", "/dns", self.dns)]
        for method, route, handler in routes:
            app.router.add_route(method, route, handler)
        app.router.add_route("*", "/{tail:.*}", self.unknown)
        return app

    async def unknown(self, request: web.Request) -> web.Response:
        raise ApiError(404, "NotFound", f"no such API path: {request.method} {request.path}")

    async def openapi(self, _: web.Request) -> web.Response:
        return web.json_response(document())

    async def _plane_get(self, request: web.Request, url: str, **params: str) -> Any:
        user: User = request[USER]
        return await self.plane.request("GET", url, params=params or None,
                                        headers=impersonation(user))

    async def _may(self, request: web.Request, verb: str, resource: Resource,
                   namespace: str | None = None) -> None:
        """403 unless the plane lets the calling user `verb` the resource."""
        user: User = request[USER]
        attributes = {"group": resource.group, "resource": resource.plural, "verb": verb}
        if namespace:
            attributes["namespace"] = namespace
        review = await self.plane.request(
            "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            body={"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": attributes}},
            headers=impersonation(user))
        if not (review.get("status") or {}).get("allowed"):
            group = f".{resource.group}" if resource.group else ""
            raise ApiError(403, "Forbidden", f'user "{user.name}" cannot {verb} '
                           f'{resource.plural}{group} in the federation')

    # clusters ----------------------------------------------------------------------------
    async def list_clusters(self, request: web.Request) -> web.Response:
        found = await self._plane_get(request, path(CLUSTERS))
        return _json(models.ClusterList(items=[_cluster_info(c)
                                               for c in found.get("items") or []]))

    async def get_cluster(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return _json(_cluster_info(await self._plane_get(request, path(CLUSTERS, name=name))))

    @staticmethod
    def _credentials(kubeconfig: str, context: str | None) -> Credentials:
        try:
            credentials = inline_credentials(kubeconfig, context)
            credentials.ssl_context()  # bad certificate data is the caller's error, now
        except CredentialsError as exc:
            field = "context" if str(exc).startswith("context") else "kubeconfig"
            raise _invalid(field, str(exc).removeprefix(f"{field}: ")) from exc
        except (ValueError, OSError) as exc:  # ssl.SSLError is an OSError
            raise _invalid("kubeconfig", "its certificate data cannot be used") from exc
        return credentials

    async def join(self, request: web.Request) -> web.Response:
        body = await _body(request, models.JoinRequest)
        await self._may(request, "create", CLUSTERS)
        await self._may(request, "create", SECRETS, FEDERATION_NAMESPACE)
        credentials = self._credentials(body.kubeconfig, body.context)
        member = KubeClient(credentials)
        try:
            await joining.join(self.plane, member, joining.JoinRequest(
                context=body.context or "(given to the REST API)", name=body.name,
                region=body.region, zone=body.zone, labels=dict(body.labels)))
        except joining.JoinError as exc:
            code, reason = ((409, "AlreadyExists") if "already joined" in str(exc)
                            else (422, "Invalid"))
            raise ApiError(code, reason, str(exc)) from exc
        finally:
            await member.close()
        cluster = await self.plane.get(path(CLUSTERS, name=body.name))
        return _json(_cluster_info(cluster), 201)

    async def unjoin(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await _body(request, models.UnjoinRequest)
        await self._may(request, "delete", CLUSTERS)
        await self._plane_get(request, path(CLUSTERS, name=name))  # 404 before anything else
        member = (None if body.kubeconfig is None
                  else KubeClient(self._credentials(body.kubeconfig, body.context)))
        try:
            lines = await joining.unjoin(self.plane, member, name,
                                         delete_resources=body.delete_resources)
        except joining.JoinError as exc:
            raise ApiError(409, "Conflict", str(exc)) from exc
        finally:
            if member is not None:
                await member.close()
        return _json(models.Outcome(lines=lines))

    # workloads ---------------------------------------------------------------------------
    async def list_workloads(self, request: web.Request) -> web.Response:
        namespace = request.query.get("namespace") or None
        items = []
        for resource in WORKLOAD_RESOURCES.values():
            found = await self._plane_get(request, path(resource, namespace=namespace))
            for obj in found.get("items") or []:
                obj.setdefault("kind", models.WORKLOAD_KINDS[resource.plural])
                if propagation.propagated(obj):
                    items.append(_workload(obj))
        return _json(models.WorkloadList(items=items))

    async def get_workload(self, request: web.Request) -> web.Response:
        info = request.match_info
        resource = WORKLOAD_RESOURCES.get(info["resource"])
        if resource is None:
            raise ApiError(404, "NotFound", f"{info['resource']}: workloads are "
                           f"{', '.join(models.WORKLOAD_KINDS)}")
        obj = await self._plane_get(request, path(resource, namespace=info["namespace"],
                                                  name=info["name"]))
        if not propagation.propagated(obj):
            raise ApiError(404, "NotFound", f"{resource.plural}.{resource.group} "
                           f"{info['name']!r} is not federated")
        return _json(_workload(obj))

    # plan --------------------------------------------------------------------------------
    async def plan(self, request: web.Request) -> web.Response:
        """What a workload's split would be; for those who may list Clusters (it tells which
        are joined and Ready)."""
        await self._may(request, "list", CLUSTERS)
        body = await _body(request, models.PlanRequest)
        clusters = {n: Cluster(m.cluster["metadata"].get("labels") or {},
                               m.ready and m.client is not None)
                    for n, m in self.registry.members.items()}
        obj = body.object
        governing = capacity = None
        if obj is not None:
            if propagation.group_kind_of(obj) not in propagation.WORKLOADS:
                raise _invalid("object.kind", "plan a Deployment, ReplicaSet or StatefulSet "
                                              "(apiVersion apps/v1)")
            if problem := _object_problem(obj):
                raise _invalid(*problem)
            total = (obj.get("spec") or {}).get("replicas", 1)
            if (not isinstance(total, int) or isinstance(total, bool)
                    or not 0 <= total <= MAX_REPLICAS):
                raise _invalid("object.spec.replicas",
                               f"a whole number from 0 to {MAX_REPLICAS} (int32)")
            meta = obj.get("metadata") or {}
            namespace = meta.get("namespace") or "default"
            obj = {**obj, "metadata": {**meta, "namespace": namespace}}
            # The policy that governs it in the plane, read as the caller (who may not read
            # it gets 403 naming it), and what the leader learned of members' capacity.
            found = await self._plane_get(request, path(POLICIES, namespace=namespace))
            governing = policy_rules.governing(found.get("items") or [], obj)
            capacity = self.learned_capacity((propagation.group_kind_of(obj), namespace,
                                              str(meta.get("name") or "")))
        else:
            total = body.replicas or 0
            prefs = (body.preferences.model_dump(by_alias=True) if body.preferences
                     else {"rebalance": True, "clusters": {"*": {}}})
            obj = {"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "plan", "annotations": {
                       preferences.DEPLOYMENT_PREFERENCES: json.dumps(prefs)}},
                   "spec": {"replicas": total}}
        try:
            decision = decide(obj, governing, clusters, capacity=capacity,
                              current=body.current)
        except PreferencesError as exc:
            raise _invalid("object.metadata.annotations" if body.object is not None
                           else "preferences.clusters", str(exc)) from exc
        except PlacementError as exc:
            raise _invalid("object.metadata.annotations", str(exc)) from exc
        replicas_of = decision.replicas or {}
        shares = [models.Share(cluster=cluster, reason=decision.reasons[cluster],
                               replicas=replicas_of.get(cluster, 0))
                  for cluster in sorted(clusters)]
        return _json(models.PlanResult(replicas=total, unplaced=decision.unplaced,
                                       clusters=shares))

    # events ------------------------------------------------------------------------------
    @staticmethod
    def _event_query(request: web.Request) -> tuple[models.EventQuery, str, dict[str, str]]:
        """The filters, the plane URL and its selectors."""
        try:
            query = models.EventQuery.model_validate(dict(request.query))
        except ValidationError as exc:
            raise _from_validation(exc, "query") from exc
        fields = [f"involvedObject.{k}={v}" for k, v in (("kind", query.kind),
                                                          ("name", query.name)) if v]
        if query.type:
            fields.append(f"type={query.type}")
        params = {"labelSelector": (f"{CLUSTER_LABEL}={query.cluster}" if query.cluster
                                    else CLUSTER_LABEL)}
        if fields:
            params["fieldSelector"] = ",".join(fields)
        return query, path(EVENTS, namespace=query.namespace), params

    async def list_events(self, request: web.Request) -> web.Response:
        query, url, params = self._event_query(request)
        found = await self._plane_get(request, url, **params)
        items = sorted(found.get("items") or [],
                       key=lambda e: str(e.get("lastTimestamp") or ""), reverse=True)
        return _json(models.EventList(items=[_federated_event(e)
                                             for e in items[:query.limit]]))

    async def stream_events(self, request: web.Request) -> web.StreamResponse:
        """Federated events as they are written or repeat, as Server-Sent Events (`event:`
        ADDED or MODIFIED, `data:` a FederatedEvent), until the client goes away."""
        _, url, params = self._event_query(request)
        start = await self._plane_get(request, url, **params, limit="1")
        target = yarl.URL(url).with_query({**params, "watch": "true",
                                           "resourceVersion": start["metadata"][
                                               "resourceVersion"]})
        user: User = request[USER]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        async with self.plane.forward("GET", str(target), [("Accept", "application/json"),
                                                      *impersonation(user)], None) as answer:
            if answer.status >= 400:
                raise KubeError(answer.status, answer.reason or "Error", await answer.text())
            await response.prepare(request)
            await response.write(b": federated events follow\n\n")
            async for line in answer.content:
                if not line.strip():
                    continue
                change = json.loads(line)
                if change.get("type") not in ("ADDED", "MODIFIED"):
                    continue
                data = _federated_event(change["object"]).model_dump_json(by_alias=True)
                await response.write(f"event: {change['type']}\ndata: {data}\n\n".encode())
        return response

    # dns ---------------------------------------------------------------------------------
    async def dns(self, request: web.Request) -> web.Response:
        """The records federator maintains (in the embedded server and any RFC 2136 one), for
        those who may list Clusters."""
        await self._may(request, "list", CLUSTERS)
        federation = await read_federation(self.plane)
        return _json(models.DnsRecords(
            zone=federation.dns_zone if federation else None,
            records=[models.DnsRecord(name=r.name, type=r.type, ttl=r.ttl,
                                      values=list(r.values)) for r in self.dns_records()]))
