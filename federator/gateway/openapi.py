"""The OpenAPI 3.1 document of the REST API, made from its pydantic models."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from federator import __version__
from federator.gateway import api_models as models

_REF = "#/components/schemas/{model}"
_ERRORS = {"400": "the body is not JSON", "401": "no valid credential",
           "403": "the plane's RBAC does not allow it", "422": "invalid input, fields named"}
_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"}
_SUBDOMAIN = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _answer(description: str, model: type[BaseModel] | None = None,
            media: str = "application/json") -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if model is not None:
        answer["content"] = {media: {"schema": _ref(model)}}
    return answer


def _operation(summary: str, ok: dict[str, Any], *, body: type[BaseModel] | None = None,
               parameters: list[dict[str, Any]] | None = None, ok_code: str = "200",
               errors: tuple[str, ...] = ("401", "403")) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "operationId": summary.lower().replace(" ", "_").replace(",", ""),
        "responses": {ok_code: ok, **{code: _answer(_ERRORS.get(code, "not found"),
                                                    models.Status) for code in errors}}}
    if body is not None:
        operation["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": _ref(body)}}}
    if parameters:
        operation["parameters"] = parameters
    return operation


def _in_path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _event_filters() -> list[dict[str, Any]]:
    properties = models.EventQuery.model_json_schema()["properties"]
    return [{"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in properties.items()]


@functools.cache
def document() -> dict[str, Any]:
    every: list[type[BaseModel]] = [
        models.Status, models.ClusterInfo, models.ClusterList, models.JoinRequest,
        models.UnjoinRequest, models.Outcome, models.Workload, models.WorkloadList,
        models.PlanRequest, models.PlanResult, models.FederatedEvent, models.EventList,
        models.DnsRecords]
    _, schemas = models_json_schema([(m, "validation") for m in every],
                                    ref_template=_REF)
    cluster = [_in_path("name", _NAME)]
    workload = [_in_path("namespace", _NAME),
                _in_path("resource", {"type": "string", "enum": list(models.WORKLOAD_KINDS)}),
                _in_path("name", _SUBDOMAIN)]
    namespace = [{"name": "namespace", "in": "query", "required": False, "schema": _NAME}]
    paths = {
        "/federator/v1/clusters": {
            "get": _operation("List clusters", _answer("the joined clusters",
                                                       models.ClusterList)),
            "post": _operation("Join a cluster", _answer("joined", models.ClusterInfo),
                               body=models.JoinRequest, ok_code="201",
                               errors=("400", "401", "403", "409", "422")),
        },
        "/federator/v1/clusters/{name}": {
            "get": _operation("Get a cluster", _answer("the cluster", models.ClusterInfo),
                              parameters=cluster, errors=("401", "403", "404")),
            "delete": _operation("Unjoin a cluster", _answer("unjoined", models.Outcome),
                                 body=models.UnjoinRequest, parameters=cluster,
                                 errors=("400", "401", "403", "404", "409", "422")),
        },
        "/federator/v1/workloads": {
            "get": _operation("List workloads", _answer(
                "federated Deployments, ReplicaSets, StatefulSets and DaemonSets",
                models.WorkloadList), parameters=namespace),
        },
        "/federator/v1/workloads/{namespace}/{resource}/{name}": {
            "get": _operation("Get a workload", _answer("its replicas per cluster",
                                                        models.Workload),
                              parameters=workload, errors=("401", "403", "404")),
        },
        "/federator/v1/plan": {
            "post": _operation("Plan a distribution",
                               _answer("replicas per cluster, with reasons; nothing changed",
                                       models.PlanResult),
                               body=models.PlanRequest, errors=("400", "401", "422")),
        },
        "/federator/v1/events": {
            "get": _operation("List federated events", _answer("newest first",
                                                               models.EventList),
                              parameters=_event_filters(), errors=("401", "403", "422")),
        },
        "/federator/v1/events/stream": {
            "get": _operation("Stream federated events",
                              {"description": "Server-Sent Events: event ADDED or MODIFIED, "
                                              "data a FederatedEvent",
                               "content": {"text/event-stream": {"schema": {
                                   "type": "string"}}}},
                              parameters=_event_filters(), errors=("401", "403", "422")),
        },
        "/federator/v1/dns": {
            "get": _operation("List DNS records", _answer("the records federator maintains",
                                                          models.DnsRecords),
                              errors=("401",)),
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "federator", "version": __version__,
                 "description": "The federation's REST API. Authenticate as with kubectl: a "
                                "bearer token or a client certificate."},
        "paths": paths,
        "components": {"schemas": schemas["$defs"],
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }
