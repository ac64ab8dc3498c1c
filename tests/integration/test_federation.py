"""init, join, unjoin and the cluster registry on the lab, with the real kubectl."""

from __future__ import annotations

import base64
import datetime
import json
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from federator.lab.process import ProcessLab
from federator.lab.spec import LabSpec
from tests.cli import federator
from tests.integration.conftest import (
    DNS_ZONE,
    readyz_forbidden,
    remove_forced_leftovers,
    write_contexts,
)
from tests.kube import eventually, get_json, kubectl
from tests.serving import Serve

pytestmark = pytest.mark.integration


def fed(kubeconfig: Path, *args: str) -> Any:
    return federator("--kubeconfig", str(kubeconfig), *args)


def snapshot(kubeconfig: Path, member: str) -> dict[str, list[tuple[str, str]]]:
    """Names and resourceVersions of what join and unjoin touch, in the plane and a member."""
    def versions(context: str, *args: str) -> list[tuple[str, str]]:
        items = get_json(kubeconfig, context, *args)["items"]
        return sorted((i["metadata"]["name"], i["metadata"]["resourceVersion"]) for i in items)
    return {
        "clusters": versions("federation", "clusters"),
        "plane secrets": versions("federation", "secrets", "-n", "federation-system"),
        "member namespaces": versions(member, "namespaces"),
        "member clusterroles": versions(member, "clusterroles", "-l",
                                        "federator.io/managed-by"),
        "member serviceaccounts": versions(member, "serviceaccounts", "-A"),
    }


def wait_ready(kubeconfig: Path, cluster: str, status: str) -> dict[str, Any]:
    kubectl(kubeconfig, "federation", "wait", f"cluster/{cluster}", "--timeout=120s",
            f"--for=jsonpath={{.status.conditions[?(@.type==\"Ready\")].status}}={status}")
    cluster_obj: dict[str, Any] = get_json(kubeconfig, "federation", "cluster", cluster)
    return cluster_obj


def events_of(kubeconfig: Path, cluster: str, reason: str) -> list[dict[str, Any]]:
    events = get_json(kubeconfig, "federation", "events", "-n", "default",
                      "--field-selector", f"involvedObject.name={cluster},reason={reason}")
    return sorted(events["items"], key=lambda e: (e["lastTimestamp"], e["metadata"]["name"]))


def test_init_twice_changes_nothing(federation: Path) -> None:
    def versions() -> dict[str, str]:
        items = []
        for kind in ("crd", "clusterrole", "clusterrolebinding"):
            items += get_json(federation, "federation", kind)["items"]
        items += get_json(federation, "federation", "all,sa,cm,role,rolebinding", "-n",
                          "federation-system")["items"]
        return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["resourceVersion"]
                for i in items}

    before = versions()
    done = fed(federation, "init")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert all(line.endswith("unchanged") or line.startswith("context federation unchanged")
               for line in lines), lines
    assert versions() == before


def test_init_wrote_a_federation_context(federation: Path) -> None:
    config = yaml.safe_load(federation.read_text())
    contexts = {c["name"]: c["context"] for c in config["contexts"]}
    assert contexts["federation"] == contexts["plane"]


def test_clusters_become_ready_with_version_and_capacity(serving: Serve, federation: Path,
                                                         lab_spec: LabSpec) -> None:
    for member in lab_spec.members:
        cluster = wait_ready(federation, member.name, "True")
        assert cluster["status"]["kubernetesVersion"] == "v1.33.13"
        assert cluster["spec"]["region"] == member.region
        assert cluster["spec"]["zone"] == member.zone
        kubectl(federation, "federation", "wait", f"cluster/{member.name}", "--timeout=60s",
                "--for=jsonpath={.status.capacity.allocatablePods}="
                f"{member.pod_capacity}")
    table = kubectl(federation, "federation", "get", "clusters").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "REGION", "ZONE", "VERSION", "AGE"]
    assert table[1].split()[:5] == ["member-1", "True", "us-east-1", "us-east-1a", "v1.33.13"]
    assert serving.metric("federator_leader") == 1.0
    assert events_of(federation, "member-1", "ClusterReady")
    # The registry's metrics, per member.
    for member in lab_spec.members:
        at = f'{{cluster="{member.name}"}}'
        assert serving.metric(f"federator_cluster_ready{at}") == 1.0
        assert (serving.metric(f'federator_cluster_probes_total{{cluster="{member.name}",'
                               'result="ok"}') or 0) >= 1
        assert (serving.metric(f"federator_cluster_probe_duration_seconds_count{at}")
                or 0) >= 1
    # Logs are JSON lines, each with a level, a timestamp and the replica's identity (up to
    # the task stacks SIGUSR1 asks for, plain text by design, if that test ran first).
    logged = serving.log.read_text().split("Stack for <Task", 1)[0]
    lines = [json.loads(line) for line in logged.splitlines() if line.strip()]
    assert lines and all({"event", "level", "timestamp", "identity"} <= set(line)
                         for line in lines)
    assert any(line.get("cluster") == "member-1" and line["event"] == "cluster ready"
               for line in lines)


def test_a_stopped_member_turns_not_ready_and_back(serving: Serve, federation: Path,
                                                   lab: ProcessLab, lab_spec: LabSpec) -> None:
    wait_ready(federation, "member-2", "True")
    stopped_at = time.monotonic()
    lab.stop_component("member-2/kube-apiserver")
    cluster = wait_ready(federation, "member-2", "False")
    print(f"Ready=False {time.monotonic() - stopped_at:.1f} s after the apiserver died")
    condition = cluster["status"]["conditions"][0]
    assert condition["reason"] == "Unreachable"
    # The failure threshold (3) is what turned it: the condition says how many probes failed.
    assert condition["message"].startswith("3 probes failed in a row, the last: cannot connect")
    warnings = events_of(federation, "member-2", "ClusterNotReady")
    assert warnings and warnings[-1]["type"] == "Warning"
    assert "Unreachable" in warnings[-1]["message"]

    lab.up(lab_spec)
    cluster = wait_ready(federation, "member-2", "True")
    assert cluster["status"]["conditions"][0]["reason"] == "ClusterReady"
    ready_events = events_of(federation, "member-2", "ClusterReady")
    assert max(e["lastTimestamp"] for e in ready_events) >= warnings[-1]["lastTimestamp"]


def test_leader_election_hands_over_when_the_leader_dies(federation: Path,
                                                         tmp_path: Path) -> None:
    env = {"FEDERATOR_LEADER_ELECTION__LEASE_NAME": "election-test"}
    first = Serve(federation, "first", tmp_path / "first.log", env)
    second = None
    try:
        lease = wait_for_holder(federation, "first")
        second = Serve(federation, "second", tmp_path / "second.log", env)
        # Both replicas of the group share its shards (their work); only one leads.
        eventually(lambda: second.get("/readyz") == (200, "ok (standby, 4/8 shards)"),
                   "the second replica holds half the shards")
        assert second.metric("federator_leader") == 0.0
        # A standby serves the gateway and DNS all the same.
        contexts = tmp_path / "standby.kubeconfig"
        write_contexts(federation, second, contexts)
        assert "member-1" in kubectl(contexts, "federation", "get", "clusters").stdout
        soa = subprocess.run(["dig", "@127.0.0.1", "-p", str(second.dns_port), DNS_ZONE,
                              "SOA", "+short"], capture_output=True, text=True, check=False,
                             timeout=30)
        assert soa.stdout.startswith(f"ns.{DNS_ZONE}."), soa
        assert first.metric("federator_leader") == 1.0
        first.kill()
        dead = get_json(federation, "federation", "lease", "election-test", "-n",
                        "federation-system")
        assert dead["spec"]["holderIdentity"] == "first"
        last_renewal = dead["spec"]["renewTime"]
        taken = wait_for_holder(federation, "second")
        assert taken["spec"]["leaseTransitions"] == lease["spec"]["leaseTransitions"] + 1
        gap = micro_time(taken["spec"]["acquireTime"]) - micro_time(last_renewal)
        print(f"the second replica took over {gap.total_seconds():.1f} s after the last renewal")
        # Not before the lease ran out: the second replica waits a whole lease duration
        # (by its own clock) after it last saw the record change. How soon after is a
        # matter of load, not of correctness.
        assert gap >= datetime.timedelta(seconds=dead["spec"]["leaseDurationSeconds"])
        assert second.metric("federator_leader") == 1.0
        eventually(lambda: second.get("/readyz") == (200, "ok (leader, 8/8 shards)"),
                   "the second replica holds every shard")
    finally:
        first.stop()
        if second is not None:
            assert second.stop() == 0
    released = get_json(federation, "federation", "lease", "election-test", "-n",
                        "federation-system")
    assert released["spec"]["holderIdentity"] == ""


def micro_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def wait_for_holder(kubeconfig: Path, holder: str) -> dict[str, Any]:
    kubectl(kubeconfig, "federation", "wait", "-n", "federation-system", "lease/election-test",
            f"--for=jsonpath={{.spec.holderIdentity}}={holder}", "--timeout=60s")
    lease: dict[str, Any] = get_json(kubeconfig, "federation", "lease", "election-test", "-n",
                                     "federation-system")
    return lease


def managed_configmap(kubeconfig: Path, member: str, name: str) -> None:
    """A ConfigMap as propagation will leave it in a member: labelled as federator's."""
    kubectl(kubeconfig, member, "create", "configmap", name, "--from-literal=k=v")
    kubectl(kubeconfig, member, "label", "configmap", name,
            "federator.io/managed-by=federation")


def test_unjoin_keeps_member_objects_by_default(federation: Path) -> None:
    managed_configmap(federation, "member-3", "kept")
    done = fed(federation, "unjoin", "member-3")
    assert done.returncode == 0, done.stderr
    # Every object federator managed there (this one, and what earlier tests left) released.
    left = re.search(r"(\d+) object\(s\) in the member left in place", done.stdout)
    assert left is not None and int(left.group(1)) >= 1, done.stdout
    kept = get_json(federation, "member-3", "configmap", "kept")
    assert "federator.io/managed-by" not in kept["metadata"].get("labels", {})
    still = get_json(federation, "member-3", "configmaps,deployments,services", "-A", "-l",
                     "federator.io/managed-by")["items"]
    assert still == []
    assert kubectl(federation, "federation", "get", "cluster", "member-3",
                   check=False).returncode != 0
    assert kubectl(federation, "federation", "get", "secret", "cluster-member-3", "-n",
                   "federation-system", check=False).returncode != 0
    gone = kubectl(federation, "member-3", "get", "serviceaccount", "federator", "-n",
                   "federation-system", check=False)
    assert gone.returncode != 0
    assert kubectl(federation, "member-3", "get", "clusterrole", "federator-member",
                   check=False).returncode != 0
    done = fed(federation, "join", "member-3")
    assert done.returncode == 0, done.stderr


LIMITED_ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: join-test-limited}
rules:
  - apiGroups: [""]
    resources: [namespaces, serviceaccounts]
    verbs: [get, list, create, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: join-test-limited}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: join-test-limited}
subjects: [{kind: ServiceAccount, name: join-test, namespace: default}]
"""


def limited_context(federation: Path, tmp_path: Path) -> Path:
    """A kubeconfig with context `limited`: member-3 as a user that may create namespaces
    and service accounts but no ClusterRole, so that join fails half-way."""
    kubectl(federation, "member-3", "-n", "default", "create", "serviceaccount", "join-test")
    kubectl(federation, "member-3", "apply", "-f", "-", stdin=LIMITED_ROLE)
    token = kubectl(federation, "member-3", "-n", "default", "create", "token",
                    "join-test").stdout.strip()
    config = yaml.safe_load(federation.read_text())
    cluster = next(c["context"]["cluster"] for c in config["contexts"]
                   if c["name"] == "member-3")
    config["users"].append({"name": "join-test", "user": {"token": token}})
    config["contexts"].append({"name": "limited", "context": {"cluster": cluster,
                                                              "user": "join-test"}})
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_unjoin_with_delete_resources_removes_them(federation: Path, tmp_path: Path) -> None:
    managed_configmap(federation, "member-3", "removed")
    limited: Path | None = None
    try:
        done = fed(federation, "unjoin", "member-3", "--delete-resources")
        assert done.returncode == 0, done.stderr
        # This one, and whatever copies earlier tests left there, of any kind.
        deleted = re.search(r"(\d+) object\(s\) in the member deleted", done.stdout)
        assert deleted is not None and int(deleted.group(1)) >= 1, done.stdout
        assert kubectl(federation, "member-3", "get", "configmap", "removed",
                       check=False).returncode != 0
        left = get_json(federation, "member-3", "configmaps", "-A", "-l",
                        "federator.io/managed-by=federation")["items"]
        assert left == [], [i["metadata"]["name"] for i in left]
        # A join that fails after it created objects in the member (rights run out at the
        # ClusterRole) undoes them: nothing of federator's is left there, nor in the plane.
        limited = limited_context(federation, tmp_path)
        half = fed(limited, "join", "limited", "--cluster-name", "half", "--region", "r",
                   "--zone", "z")
        assert half.returncode == 1
        assert len(half.stderr.strip().splitlines()) == 1, half.stderr
        assert "may not create ClusterRole federator-member" in half.stderr
        assert kubectl(federation, "member-3", "-n", "federation-system", "get",
                       "serviceaccount", "federator", check=False).returncode != 0
        eventually(lambda: kubectl(federation, "member-3", "get", "namespace",
                                   "federation-system", check=False).returncode != 0,
                   "the namespace join made is deleted again")
        assert kubectl(federation, "federation", "get", "cluster", "half",
                       check=False).returncode != 0
    finally:
        if limited is not None:
            kubectl(federation, "member-3", "delete", "-f", "-", stdin=LIMITED_ROLE)
            kubectl(federation, "member-3", "-n", "default", "delete", "serviceaccount",
                    "join-test")
        done = fed(federation, "join", "member-3")  # later tests need all three
    assert done.returncode == 0, done.stderr


@pytest.fixture
def bad_contexts(federation: Path, tmp_path: Path) -> Path:
    """A copy of the lab's kubeconfig with contexts that cannot be joined."""
    config = yaml.safe_load(federation.read_text())
    config["clusters"].append({"name": "nowhere", "cluster": {
        "server": "https://127.0.0.1:9", "insecure-skip-tls-verify": True}})
    config["users"].append({"name": "impostor", "user": {"token": "not-a-real-token"}})
    config["contexts"] += [
        {"name": "unreachable", "context": {"cluster": "nowhere", "user": "impostor"}},
        {"name": "bad-credentials", "context": {"cluster": "plane", "user": "impostor"}},
    ]
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(("args", "message"), [
    (("join", "member-1"), "cluster 'member-1' is already joined"),
    (("join", "member-1", "--cluster-name", "again"),
     "(https://127.0.0.1:{member_1_port}) is already joined as cluster 'member-1'"),
    (("join", "no-such-context"), "context 'no-such-context' is not in"),
    (("join", "unreachable"), "cannot reach the server of context 'unreachable'"),
    (("join", "bad-credentials"), "rejected its credentials (401 Unauthorized)"),
    (("join", "member-1", "--cluster-name", "Bad_Name"), "--cluster-name: 'Bad_Name' is not"),
    (("join", "member-1", "--label", "no-equals"), "--label: label 'no-equals': write it"),
    (("unjoin", "no-such-cluster"), "no cluster 'no-such-cluster' is joined"),
])
def test_bad_input_is_one_line_and_changes_nothing(bad_contexts: Path, args: tuple[str, ...],
                                                   message: str, lab_spec: LabSpec) -> None:
    message = message.format(member_1_port=lab_spec.ports("member-1").apiserver)
    before = snapshot(bad_contexts, "member-1")
    done = fed(bad_contexts, *args)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert message in lines[0]
    assert "not-a-real-token" not in done.stderr
    assert snapshot(bad_contexts, "member-1") == before


def test_host_manifests_pass_a_server_side_dry_run(federation: Path, tmp_path: Path) -> None:
    done = federator("--kubeconfig", str(federation), "init", "--host-cluster-context",
                     "member-1", "--dry-run", env={"XDG_STATE_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 8
    assert all(line.endswith("applied (server dry run)") for line in lines)
    created = get_json(federation, "member-1", "deployments,statefulsets,services", "-n",
                       "federation-system")
    assert created["items"] == []
    assert kubectl(federation, "member-1", "get", "secret", "federation-plane-pki", "-n",
                   "federation-system", check=False).returncode != 0


def test_unjoin_force_and_context_and_join_with_a_location(federation: Path) -> None:
    """--force forgets a member without touching it (it says what stays there); --region and
    --zone win over the nodes' labels; --context names the admin context that cleans up."""
    done = fed(federation, "unjoin", "member-3", "--force")
    assert done.returncode == 0, done.stderr
    assert "the member was not cleaned up (--force)" in done.stdout
    assert kubectl(federation, "federation", "get", "cluster", "member-3",
                   check=False).returncode != 0
    assert kubectl(federation, "member-3", "-n", "federation-system", "get",
                   "serviceaccount", "federator", check=False).returncode == 0
    try:
        again = fed(federation, "join", "member-3")
        assert again.returncode == 1
        assert "already has ServiceAccount federator" in again.stderr
    finally:  # what --force left, removed by hand as its message says
        remove_forced_leftovers(federation, "member-3")
        placed = fed(federation, "join", "member-3", "--region", "test-region", "--zone",
                     "test-zone")
    assert placed.returncode == 0, placed.stderr
    cluster = get_json(federation, "federation", "cluster", "member-3")
    assert (cluster["spec"]["region"], cluster["spec"]["zone"]) == ("test-region", "test-zone")
    done = fed(federation, "unjoin", "member-3", "--context", "member-3")
    assert done.returncode == 0, done.stderr
    assert kubectl(federation, "member-3", "get", "clusterrole", "federator-member",
                   check=False).returncode != 0
    done = fed(federation, "join", "member-3")  # the nodes' region and zone again
    assert done.returncode == 0, done.stderr
    cluster = get_json(federation, "federation", "cluster", "member-3")
    assert cluster["spec"]["region"] == "eu-west-1"


def test_sigterm_as_soon_as_it_answers(federation: Path, tmp_path: Path) -> None:
    """SIGTERM while serve is still starting (its health port answers first) is a clean
    stop, exit 0, not death by the signal."""
    replica = Serve(federation, "brief", tmp_path / "serve.log",
                    {"FEDERATOR_DNS__ENABLED": "false"})
    assert replica.stop() == 0, replica.log.read_text()[-2000:]


def test_sigusr1_prints_where_each_task_waits(serving: Serve) -> None:
    before = len(serving.log.read_text())
    serving.process.send_signal(signal.SIGUSR1)
    eventually(lambda: "Stack for <Task" in serving.log.read_text()[before:],
               "task stacks in serve's output")
    assert serving.process.poll() is None  # and it goes on


def test_probe_reason_forbidden(serving: Serve, federation: Path) -> None:
    """A member that refuses federator its /readyz is Forbidden (not Unreachable), and
    Ready again once it allows it."""
    with readyz_forbidden(federation, "member-3"):
        cluster = wait_ready(federation, "member-3", "False")
        ready = next(c for c in cluster["status"]["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "Forbidden", ready
        assert "403" in ready["message"], ready
        assert (serving.metric('federator_cluster_probes_total{cluster="member-3",'
                               'result="Forbidden"}') or 0) >= 3
    wait_ready(federation, "member-3", "True")


def test_probe_reasons_for_credentials(serving: Serve, federation: Path) -> None:
    """A Cluster whose Secret holds a token the member rejects is Unauthorized; one whose
    Secret is missing is CredentialsMissing. (Written by hand, as a broken join would leave
    them; removed at the end.)"""
    real = get_json(federation, "federation", "secret", "-n", "federation-system",
                    "cluster-member-1")
    server = base64.b64decode(real["data"]["server"]).decode()
    impostor = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "cluster-impostor", "namespace": "federation-system"},
                "data": {**real["data"],
                         "token": base64.b64encode(b"not-a-real-token").decode()}}
    clusters = [{"apiVersion": "federator.io/v1alpha1", "kind": "Cluster",
                 "metadata": {"name": name},
                 "spec": {"server": server, "secretRef": {"name": secret}}}
                for name, secret in (("impostor", "cluster-impostor"),
                                     ("orphan", "cluster-nothing"))]
    kubectl(federation, "federation", "apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [impostor, *clusters]}))
    try:
        for name, reason in (("impostor", "Unauthorized"), ("orphan", "CredentialsMissing")):
            cluster = wait_ready(federation, name, "False")
            ready = next(c for c in cluster["status"]["conditions"] if c["type"] == "Ready")
            assert ready["reason"] == reason, ready
            assert "not-a-real-token" not in json.dumps(cluster)
        assert "not-a-real-token" not in serving.log.read_text()
    finally:
        kubectl(federation, "federation", "delete", "cluster", "impostor", "orphan")
        kubectl(federation, "federation", "-n", "federation-system", "delete", "secret",
                "cluster-impostor")
