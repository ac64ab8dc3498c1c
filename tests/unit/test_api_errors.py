"""The REST API's failures as Status objects: an unexpected one is a 500 that says where to
look and shows nothing of the failure itself; an annotation anyone may edit cannot cause one."""

from __future__ import annotations

import json
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from federator.gateway.api import _object_problem, _workload, errors
from federator.gateway.api_models import Workload

SECRET_DETAIL = "token=abc123 in /srv/federator/secret.py"


async def _broken(request: web.Request) -> web.Response:
    raise RuntimeError(SECRET_DETAIL)


async def test_an_unexpected_failure_is_a_500_without_its_traceback() -> None:
    app = web.Application(middlewares=[errors])
    app.router.add_get("/federator/v1/clusters", _broken)
    with structlog.testing.capture_logs() as logged:
        async with TestClient(TestServer(app)) as client:
            answer = await client.get("/federator/v1/clusters")
            body = await answer.text()
    assert answer.status == 500
    status = json.loads(body)
    assert (status["kind"], status["status"], status["reason"], status["code"]) == (
        "Status", "Failure", "InternalError", 500)
    assert status["message"] == "internal error; federator's log has the details"
    assert "Traceback" not in body and SECRET_DETAIL not in body and "RuntimeError" not in body
    # The log has it, with the request named.
    failed = [entry for entry in logged if entry["event"] == "API request failed"]
    assert failed and failed[0]["path"] == "/federator/v1/clusters"
    assert failed[0]["log_level"] == "error"


def _deployment(annotation: str) -> dict[str, Any]:
    return {"kind": "Deployment",
            "metadata": {"namespace": "shop", "name": "web",
                         "annotations": {"federator.io/cluster-status": annotation}},
            "spec": {"replicas": 3}, "status": {"readyReplicas": 2}}


@pytest.mark.parametrize("annotation", [
    '{"member-1": {"desired": "many", "ready": null, "replicas": true}}',
    '["not", "a", "map"]', "not json", '{"member-1": 7}'])
def test_a_hand_edited_cluster_status_is_read_as_far_as_it_makes_sense(
        annotation: str) -> None:
    found = _workload(_deployment(annotation))
    assert isinstance(found, Workload)
    assert (found.replicas, found.ready_replicas) == (3, 2)
    assert all((c.desired, c.replicas, c.ready) == (0, 0, 0) for c in found.clusters)


@pytest.mark.parametrize(("obj", "field"), [
    ({"kind": "Deployment", "metadata": ["x"]}, "object"),
    ({"kind": "Deployment", "spec": "six"}, "object"),
    ({"kind": "Deployment", "metadata": {"name": 7}}, "object.metadata.name"),
    ({"kind": "Deployment", "metadata": {"name": "w", "namespace": "../kube-system"}},
     "object.metadata.namespace"),
    ({"kind": "Deployment", "metadata": {"name": "w", "annotations": ["x"]}},
     "object.metadata.annotations"),
    ({"kind": "Deployment", "metadata": {"name": "w", "labels": {"a": 1}}},
     "object.metadata.labels"),
])
def test_a_planned_object_of_the_wrong_shape_names_the_field(obj: dict[str, Any],
                                                            field: str) -> None:
    """/plan reads a policy from the object's namespace and its annotations: what is not of
    Kubernetes' shape is a 422 naming the field, never a 500 or a request elsewhere."""
    problem = _object_problem(obj)
    assert problem is not None and problem[0] == field


def test_a_planned_object_of_the_right_shape_passes() -> None:
    assert _object_problem({"kind": "Deployment", "metadata": {
        "name": "w", "namespace": "shop", "labels": {"a": "b"},
        "annotations": {"federator.io/clusters": "east"}}, "spec": {"replicas": 3}}) is None
