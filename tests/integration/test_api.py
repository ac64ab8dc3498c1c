"""The REST API under /federator/v1 on the lab: what it answers, its errors, a live event
stream, join and unjoin; and every operation of its OpenAPI document fuzzed (schemathesis)
without one 5xx."""

from __future__ import annotations

import base64
import itertools
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.integration.conftest import (
    DEPLOYMENT,
    GATEWAY_TOKENS,
    MEMBERS,
    ca_of,
    rejoin_missing,
    remove_forced_leftovers,
    write_contexts,
)
from tests.kube import eventually, get_json, kubectl
from tests.serving import Serve

pytestmark = pytest.mark.integration
TOKEN = next(iter(GATEWAY_TOKENS))


class Api:
    def __init__(self, serving: Serve, gateway: Path, ca: Path) -> None:
        self.base = f"https://127.0.0.1:{serving.gateway_port}/federator/v1"
        self.ca = str(ca)

    def call(self, method: str, page: str, body: Any = None, *, token: str | None = TOKEN,
             raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        answer = requests.request(method, self.base + page, data=data, headers=headers,
                                  verify=self.ca, timeout=60)
        return answer.status_code, answer.json()


@pytest.fixture(scope="module")
def api(serving: Serve, gateway: Path, tmp_path_factory: pytest.TempPathFactory) -> Api:
    ca = tmp_path_factory.mktemp("api") / "ca.pem"
    ca.write_text(ca_of(gateway))
    return Api(serving, gateway, ca)


def test_clusters_and_their_errors(api: Api) -> None:
    code, listed = api.call("GET", "/clusters")
    assert code == 200
    assert sorted(c["name"] for c in listed["items"]) == sorted(MEMBERS)
    one = next(c for c in listed["items"] if c["name"] == "member-1")
    assert one["ready"] == "True" and one["kubernetesVersion"].startswith("v1.33.")
    assert one["capacity"]["nodes"] >= 1 and one["region"]
    assert api.call("GET", "/clusters/member-1")[1] == one
    code, missing = api.call("GET", "/clusters/nowhere")
    assert (code, missing["kind"], missing["reason"]) == (404, "Status", "NotFound")
    code, refused = api.call("GET", "/clusters", token=None)
    assert (code, refused["reason"]) == (401, "Unauthorized")
    code, bad = api.call("POST", "/clusters", {"name": "Not_A_Name", "kubeconfig": "x"})
    assert code == 422 and bad["details"]["causes"][0]["field"] == "name"
    code, bad = api.call("POST", "/clusters", raw=b"{not json")
    assert (code, bad["reason"]) == (400, "BadRequest")
    # A kubeconfig that would run a command on federator's host is refused, not run.
    code, bad = api.call("POST", "/clusters", {"name": "evil", "kubeconfig": json.dumps({
        "current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "c",
                                                                         "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"exec": {"command": "touch"}}}]})})
    assert code == 422 and "'exec' is not accepted" in bad["message"]


def test_the_planes_rbac_decides_for_the_caller(
        api: Api, serving: Serve, federation: Path, tmp_path: Path) -> None:
    """User `nobody` (a client certificate of the gateway CA) is bound to nothing."""
    output = tmp_path / "kubeconfig"
    write_contexts(federation, serving, output, "--user", "nobody")
    config = yaml.safe_load(output.read_text())
    user = next(u for u in config["users"] if u["name"] == "federation-nobody")["user"]
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key.write_bytes(base64.b64decode(user["client-key-data"]))

    def call(method: str, page: str, body: Any = None) -> tuple[int, Any]:
        answer = requests.request(method, api.base + page, json=body, verify=api.ca,
                                  cert=(str(cert), str(key)), timeout=60)
        return answer.status_code, answer.json()

    code, denied = call("GET", "/clusters")
    assert (code, denied["reason"]) == (403, "Forbidden")
    assert 'User "nobody" cannot list' in denied["message"]
    code, denied = call("POST", "/clusters", {"name": "sneaky", "kubeconfig": "x"})
    assert (code, denied["message"]) == (
        403, 'user "nobody" cannot create clusters.federator.io in the federation')
    code, denied = call("DELETE", "/clusters/member-1", {"force": True})
    assert code == 403 and "cannot delete clusters" in denied["message"]
    assert api.call("GET", "/clusters/member-1")[0] == 200  # still joined
    # What a plan or the DNS records tell is for those who may list Clusters.
    for method, route, body in (("POST", "/plan", {"replicas": 3}), ("GET", "/dns", None)):
        code, denied = call(method, route, body)
        assert (code, denied["message"]) == (
            403, 'user "nobody" cannot list clusters.federator.io in the federation'), route


def test_plan_explains_each_share_and_changes_nothing(api: Api, gateway: Path) -> None:
    request = {"replicas": 10, "preferences": {"clusters": {"member-1": {"weight": 2},
                                                            "*": {"weight": 1}}}}
    code, plan = api.call("POST", "/plan", request)
    assert code == 200, plan
    shares = {s["cluster"]: (s["replicas"], s["reason"]) for s in plan["clusters"]}
    assert shares == {"member-1": (5, "weight 2 of 4: 5 of 10"),
                      "member-2": (3, "weight 1 of 4: 3 of 10"),
                      "member-3": (2, "weight 1 of 4: 2 of 10")}
    only = {"replicas": 4, "preferences": {"clusters": {"member-2": {"maxReplicas": 1},
                                                        "member-3": {}}}}
    shares = {s["cluster"]: (s["replicas"], s["reason"]) for s in api.call(
        "POST", "/plan", only)[1]["clusters"]}
    assert shares["member-1"][0] == 0 and "no \"*\" entry" in shares["member-1"][1]
    assert shares["member-2"] == (1, "capped at its maxReplicas 1")
    assert shares["member-3"][0] == 3
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "x", "annotations": {
                      "federator.io/clusters": "member-2,member-3"}},
                  "spec": {"replicas": 4}}
    counts = {s["cluster"]: s["replicas"] for s in api.call(
        "POST", "/plan", {"object": deployment})[1]["clusters"]}
    assert counts == {"member-1": 0, "member-2": 2, "member-3": 2}
    # With rebalance off, what runs now stays where it runs.
    kept = {"replicas": 5, "preferences": {"rebalance": False, "clusters": {"*": {}}},
            "current": {"member-1": 4}}
    shares = {s["cluster"]: (s["replicas"], s["reason"]) for s in api.call(
        "POST", "/plan", kept)[1]["clusters"]}
    assert shares["member-1"] == (4, "kept where they run (rebalance off)")
    assert shares["member-2"][0] + shares["member-3"][0] == 1
    # The int32 maximum is planned exactly; beyond it, 422 naming the field.
    code, most = api.call("POST", "/plan", {"replicas": 2**31 - 1})
    assert code == 200 and sum(s["replicas"] for s in most["clusters"]) == 2**31 - 1
    huge = {**deployment, "spec": {"replicas": 10**12}}
    for wrong, field in (({"replicas": -1}, "replicas"),
                         ({"replicas": 2**31}, "replicas"),
                         ({"object": huge}, "object.spec.replicas"),
                         ({"replicas": 3, "preferences": {"clusters": {"*": {
                             "weight": 10**12}}}}, "preferences.clusters.*.weight"),
                         ({"replicas": 3, "preferences": {"clusters": {"mars": {}}}},
                          "preferences.clusters"),
                         ({"object": {**deployment, "kind": "ConfigMap"}}, "object.kind"),
                         ({"replicas": 3, "object": deployment}, "request body")):
        code, bad = api.call("POST", "/plan", wrong)
        assert code == 422, bad
        assert bad["details"]["causes"][0]["field"] == field, bad
    # Nothing was made or told of the object planned.
    assert kubectl(gateway, "federation", "get", "deployment", "x", check=False).returncode != 0
    assert get_json(gateway, "federation", "events", "--field-selector",
                    "involvedObject.name=x")["items"] == []


def test_workloads_and_events(api: Api, gateway: Path, federation: Path) -> None:
    kubectl(gateway, "federation", "apply", "-f", "-",
            stdin=DEPLOYMENT.format(name="api-web", replicas=3))
    kubectl(gateway, "federation", "rollout", "status", "deployment/api-web", "--timeout=120s")

    def workload() -> dict[str, Any] | None:
        code, found = api.call("GET", "/workloads/default/deployments/api-web")
        ready = code == 200 and [c["ready"] for c in found["clusters"]] == [1, 1, 1]
        return found if ready else None

    found = eventually(workload, "every cluster's replica ready")
    assert [c["cluster"] for c in found["clusters"]] == sorted(MEMBERS)
    assert found["replicas"] == 3 and found["readyReplicas"] == 3
    assert any(c["type"] == "Available" for c in found["conditions"])
    listed = api.call("GET", "/workloads?namespace=default")[1]["items"]
    assert "api-web" in [w["name"] for w in listed]
    assert api.call("GET", "/workloads/default/deployments/nothing")[0] == 404
    assert api.call("GET", "/workloads/default/statefulsets/api-web")[0] == 404

    def events() -> list[dict[str, Any]]:
        found = api.call("GET", "/events?kind=Deployment&name=api-web&cluster=member-2")[1]
        return [e for e in found["items"] if e["reason"] == "ScalingReplicaSet"]

    event = eventually(events, "member-2's events of api-web")[0]
    assert event["cluster"] == "member-2" and event["message"].startswith("[member-2] ")
    code, bad = api.call("GET", "/events?type=Sometimes")
    assert code == 422 and bad["details"]["causes"][0]["field"] == "type"
    # Newest first, at most `limit`, every one of the cluster asked for.
    every = api.call("GET", "/events?name=api-web&cluster=member-2")[1]["items"]
    assert every and all(e["cluster"] == "member-2" for e in every)
    stamps = [e["lastTimestamp"] for e in every]
    assert stamps == sorted(stamps, reverse=True)
    assert api.call("GET", "/events?name=api-web&cluster=member-2&limit=1")[1]["items"] == \
        every[:1]

    # The live stream: a member event written now arrives as a Server-Sent Event.
    received: list[str] = []
    opened = threading.Event()

    def listen() -> None:
        with requests.get(api.base + "/events/stream?name=api-web&cluster=member-1",
                          headers={"Authorization": f"Bearer {TOKEN}"}, verify=api.ca,
                          stream=True, timeout=60) as stream:
            opened.set()
            for line in stream.iter_lines(decode_unicode=True):
                received.append(line)
                if line.startswith("data:") and "StreamCheck" in line and '"count":2' in line:
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert opened.wait(30)
    copy = get_json(federation, "member-1", "deployment", "api-web")
    kubectl(federation, "member-1", "create", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "api-web.stream"},
        "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api-web",
                           "namespace": "default", "uid": copy["metadata"]["uid"]},
        "reason": "StreamCheck", "message": "seen live", "type": "Normal",
        "source": {"component": "test"}}))
    eventually(lambda: any("seen live" in line for line in received), "the event, live")
    # The same event again in the member (count 2): a MODIFIED of the same federated event.
    kubectl(federation, "member-1", "patch", "event", "api-web.stream", "--type=merge",
            "-p", json.dumps({"count": 2}))
    listener.join(60)
    assert not listener.is_alive(), received
    sent = [(kind, json.loads(data[5:])) for kind, data in itertools.pairwise(received)
            if kind.startswith("event:") and "StreamCheck" in data]
    assert [kind for kind, _ in sent] == ["event: ADDED", "event: MODIFIED"], received
    (_, added), (_, modified) = sent
    assert (added["cluster"], added["message"]) == ("member-1", "[member-1] seen live")
    assert (modified["message"], modified["count"]) == ("[member-1] seen live", 2)
    kubectl(gateway, "federation", "delete", "deployment", "api-web")
    # ReplicaSets are workloads too.
    kubectl(gateway, "federation", "apply", "-f", "-", stdin=DEPLOYMENT.format(
        name="api-rs", replicas=2).replace("kind: Deployment", "kind: ReplicaSet"))

    def replica_set() -> dict[str, Any] | None:
        code, found = api.call("GET", "/workloads/default/replicasets/api-rs")
        return found if code == 200 and found["readyReplicas"] == 2 else None

    found = eventually(replica_set, "the ReplicaSet's 2 replicas ready")
    assert found["replicas"] == 2 and sum(c["desired"] for c in found["clusters"]) == 2
    kubectl(gateway, "federation", "delete", "replicaset", "api-rs")


def test_unjoin_and_join_through_the_api(api: Api, federation: Path) -> None:
    kubeconfig = federation.read_text()
    code, bad = api.call("DELETE", "/clusters/member-3", {})
    assert code == 422 and "force" in bad["message"]
    code, done = api.call("DELETE", "/clusters/member-3",
                          {"kubeconfig": kubeconfig, "context": "member-3"})
    assert code == 200, done
    assert done["lines"][-1] == "cluster/member-3 unjoined"
    assert api.call("GET", "/clusters/member-3")[0] == 404
    code, joined = api.call("POST", "/clusters", {
        "name": "member-3", "kubeconfig": kubeconfig, "context": "member-3",
        "labels": {"tier": "api"}})
    assert code == 201, joined
    assert joined["labels"] == {"tier": "api"}
    code, again = api.call("POST", "/clusters", {"name": "member-3", "kubeconfig": kubeconfig,
                                                 "context": "member-3"})
    assert (code, again["reason"]) == (409, "AlreadyExists")
    eventually(lambda: api.call("GET", "/clusters/member-3")[1].get("ready") == "True",
               "member-3 Ready again")
    # deleteResources: the copies federator made there go too.
    kubectl(federation, "federation", "create", "configmap", "api-removed",
            "--from-literal=a=1")
    eventually(lambda: kubectl(federation, "member-3", "get", "configmap", "api-removed",
                               check=False).returncode == 0, "the copy in member-3")
    code, done = api.call("DELETE", "/clusters/member-3", {
        "kubeconfig": kubeconfig, "context": "member-3", "deleteResources": True})
    assert code == 200, done
    assert kubectl(federation, "member-3", "get", "configmap", "api-removed",
                   check=False).returncode != 0
    kubectl(federation, "federation", "delete", "configmap", "api-removed")
    # force: forgotten by the plane, the member left as it is (its identity stays there).
    assert api.call("POST", "/clusters", {"name": "member-3", "kubeconfig": kubeconfig,
                                          "context": "member-3"})[0] == 201
    code, done = api.call("DELETE", "/clusters/member-3", {"force": True})
    assert code == 200, done
    assert api.call("GET", "/clusters/member-3")[0] == 404
    assert kubectl(federation, "member-3", "-n", "federation-system", "get",
                   "serviceaccount", "federator", check=False).returncode == 0
    remove_forced_leftovers(federation, "member-3")
    assert api.call("POST", "/clusters", {"name": "member-3", "kubeconfig": kubeconfig,
                                          "context": "member-3"})[0] == 201
    eventually(lambda: api.call("GET", "/clusters/member-3")[1].get("ready") == "True",
               "member-3 Ready again")


def test_every_operation_answers_without_a_server_error(
        api: Api, serving: Serve, federation: Path) -> None:
    code, document = api.call("GET", "/openapi.json")
    assert code == 200 and document["openapi"].startswith("3.1")
    schema = schemathesis.openapi.from_dict(document)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    base = f"https://127.0.0.1:{serving.gateway_port}"
    tried: dict[str, int] = {}
    def fuzz(operation: Any) -> None:
        @settings(max_examples=30, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def one(case: Any) -> None:
            response = case.call(base_url=base, session=session, verify=api.ca)
            case.validate_response(response, checks=[
                checks.not_a_server_error, checks.status_code_conformance,
                checks.content_type_conformance, checks.response_schema_conformance])
            tried[operation.label] = tried.get(operation.label, 0) + 1

        one()

    try:
        for result in schema.get_all_operations():
            operation = result.ok()  # type: ignore[union-attr]  # an invalid document raises
            if not operation.path.endswith("/stream"):  # endless by design; tested above
                fuzz(operation)
        assert len(tried) == 9, tried  # every operation but the stream
        left = sorted(c["name"] for c in api.call("GET", "/clusters")[1]["items"])
    finally:
        # Join and unjoin are among the operations: what the fuzz may have taken away is
        # put back for the tests after this one, and said.
        rejoined = rejoin_missing(federation)
    assert left == sorted(MEMBERS) and not rejoined, rejoined
