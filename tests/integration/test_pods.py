"""Pods through the gateway with the real kubectl 1.33: exec, attach, cp and port-forward
pass through a `federation-<cluster>` context, over WebSocket (kubectl's default) and over
SPDY (its fallback), as the calling user; through the `federation` context a pod's log,
exec, port-forward, label and delete go to the member that holds it, and ReplicaSets fan
out."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from federator.domain.fanout import CLUSTER_ANNOTATION
from tests.integration.conftest import DEPLOYMENT, write_contexts
from tests.kube import (
    attach_shows,
    background,
    eventually,
    forward_answers,
    get_json,
    kubectl,
    printed,
)
from tests.serving import Serve

pytestmark = pytest.mark.integration

MEMBER = "member-2"
NAMESPACE = "gw-pods"
POD = f"""
apiVersion: v1
kind: Pod
metadata: {{name: shell, namespace: {NAMESPACE}}}
spec:
  containers: [{{name: app, image: registry.k8s.io/pause:3.10}}]
"""
# kubectl's switches back to SPDY, the protocol kubectl before 1.30 speaks.
SPDY = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false", "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}
PROTOCOLS = {"websocket": {}, "spdy": SPDY}


@pytest.fixture(scope="module")
def pod(kubeconfig: Path, federation: Path) -> Iterator[str]:
    """A pod made straight in member-2 (not federated), Running on a kwok node."""
    kubectl(kubeconfig, MEMBER, "create", "namespace", NAMESPACE)
    kubectl(kubeconfig, MEMBER, "apply", "-f", "-", stdin=POD)
    kubectl(kubeconfig, MEMBER, "-n", NAMESPACE, "wait", "--for=condition=Ready",
            "pod/shell", "--timeout=120s")
    yield "shell"
    kubectl(kubeconfig, MEMBER, "delete", "namespace", NAMESPACE, "--wait=false")


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_exec_cp_attach_and_port_forward_through_a_members_context(
        gateway: Path, pod: str, lab: Any, protocol: str, tmp_path: Path) -> None:
    env = PROTOCOLS[protocol]

    def run(*args: str, stdin: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        return kubectl(gateway, f"federation-{MEMBER}", "-n", NAMESPACE, *args, stdin=stdin,
                       check=check, env=env)

    assert run("logs", pod, "--tail=1").stdout == f"{pod}: serving\n"
    assert run("exec", pod, "--", "echo", protocol).stdout == f"{protocol}\n"
    failed = run("exec", pod, "--", "ls", "no-such-file", check=False)
    assert failed.returncode == 1 and "exit status 2" in failed.stderr
    assert run("exec", "-i", pod, "--", "head", "-c", "5", stdin="stdin and more"
               ).stdout == "stdin"
    # A reply larger than any buffer on the way.
    big = run("exec", pod, "--", "head", "-c", "3000000", "/dev/zero").stdout
    assert len(big) == 3_000_000

    (lab.paths.work(MEMBER) / "exec" / f"{protocol}.txt").write_text(f"copied by {protocol}\n")
    run("cp", f"{pod}:{protocol}.txt", str(tmp_path / "copied.txt"))
    assert (tmp_path / "copied.txt").read_text() == f"copied by {protocol}\n"

    attach_shows(gateway, f"federation-{MEMBER}", NAMESPACE, pod,
                 lab.paths.work(MEMBER) / "containers.log", f"attached by {protocol}", env)
    forward_answers(gateway, f"federation-{MEMBER}", NAMESPACE, pod, env, requests=2)


def test_a_user_who_may_only_view_a_member_cannot_exec_there(
        gateway: Path, pod: str, kubeconfig: Path, federation: Path, serving: Serve,
        tmp_path: Path) -> None:
    viewer = tmp_path / "viewer"
    write_contexts(federation, serving, viewer, "--user", "pod-viewer")
    kubectl(kubeconfig, MEMBER, "-n", NAMESPACE, "create", "rolebinding", "pod-viewer",
            "--clusterrole=view", "--user=pod-viewer")
    try:
        listed = kubectl(viewer, f"federation-{MEMBER}", "-n", NAMESPACE, "get", "pods")
        assert pod in listed.stdout
        for env in PROTOCOLS.values():
            refused = kubectl(viewer, f"federation-{MEMBER}", "-n", NAMESPACE, "exec", pod,
                              "--", "echo", "no", check=False, env=env)
            assert refused.returncode == 1 and "no\n" not in refused.stdout
            assert 'cannot create resource "pods/exec"' in refused.stderr, refused.stderr
            assert 'User "pod-viewer"' in refused.stderr
    finally:
        kubectl(kubeconfig, MEMBER, "-n", NAMESPACE, "delete", "rolebinding", "pod-viewer")


FEDERATED = "gw-hello"


@pytest.fixture(scope="module")
def hello_deployment(gateway: Path) -> Iterator[str]:
    """A Deployment of 3 replicas applied through the federation context (one a member)."""
    kubectl(gateway, "federation", "create", "namespace", FEDERATED)
    kubectl(gateway, "federation", "-n", FEDERATED, "apply", "-f", "-",
            stdin=DEPLOYMENT.format(name="hello", replicas=3))
    yield "hello"
    kubectl(gateway, "federation", "delete", "namespace", FEDERATED, "--timeout=120s")


@pytest.fixture
def hello(gateway: Path, hello_deployment: str) -> list[dict[str, Any]]:
    """hello's 3 pods as the federation lists them now, each Running (a test that deletes one
    leaves the member's replacement to the next)."""
    def running() -> list[dict[str, Any]] | None:
        pods = [p for p in get_json(gateway, "federation", "-n", FEDERATED, "pods", "-l",
                                    f"app={hello_deployment}")["items"]
                if p["status"].get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")]
        return pods if len(pods) == 3 else None

    pods: list[dict[str, Any]] = eventually(running, "hello's 3 pods Running through the "
                                            "federation", attempts=900)
    return pods


def _cluster(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["annotations"][CLUSTER_ANNOTATION])


def test_logs_of_a_deployment_and_of_its_pods_by_label_through_the_federation(
        gateway: Path, hello: list[dict[str, Any]]) -> None:
    run = functools.partial(kubectl, gateway, "federation", "-n", FEDERATED)
    one = hello[0]
    name, cluster = one["metadata"]["name"], _cluster(one)
    said = f"federator lab: container app of pod {FEDERATED}/{name} in {cluster}"
    assert run("logs", f"pod/{name}").stdout.splitlines()[0] == said
    assert f"of pod {FEDERATED}/hello-" in run("logs", "deploy/hello").stdout
    prefixed = run("logs", "-l", "app=hello", "--prefix").stdout.splitlines()
    for pod in hello:
        other = pod["metadata"]["name"]
        assert (f"[pod/{other}/app] federator lab: container app of pod {FEDERATED}/{other} "
                f"in {_cluster(pod)}") in prefixed
    with background(gateway, "federation", "-n", FEDERATED, "logs", "-f",
                    f"pod/{name}") as following:
        seen = printed(following)
        try:
            eventually(lambda: len(seen) >= 3, "three lines followed")
        finally:
            following.terminate()
    assert seen[0] == said + "\n"


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_exec_cp_attach_and_port_forward_find_the_member_that_holds_the_pod(
        gateway: Path, hello: list[dict[str, Any]], protocol: str, lab: Any,
        tmp_path: Path) -> None:
    env = PROTOCOLS[protocol]
    for pod in hello:
        done = kubectl(gateway, "federation", "-n", FEDERATED, "exec", pod["metadata"]["name"],
                       "--", "pwd", env=env)
        assert done.stdout.strip().endswith(f"/work/{_cluster(pod)}/exec")
    name, cluster = hello[0]["metadata"]["name"], _cluster(hello[0])
    (lab.paths.work(cluster) / "exec" / "federated.txt").write_text(f"from {cluster}\n")
    kubectl(gateway, "federation", "-n", FEDERATED, "cp", f"{name}:federated.txt",
            str(tmp_path / "federated.txt"), env=env)
    assert (tmp_path / "federated.txt").read_text() == f"from {cluster}\n"
    attach_shows(gateway, "federation", FEDERATED, name,
                 lab.paths.work(cluster) / "containers.log", f"federated {protocol}", env)
    forward_answers(gateway, "federation", FEDERATED, name, env)


def test_an_ephemeral_container_reaches_the_member_that_holds_the_pod(
        gateway: Path, kubeconfig: Path, hello: list[dict[str, Any]]) -> None:
    """`kubectl debug` through the federation (a PATCH of the pod's ephemeralcontainers
    subresource) lands in the pod's own member; the pod is deleted after, so that later
    tests find hello's pods as the Deployment makes them."""
    pod = hello[0]
    name, cluster = pod["metadata"]["name"], _cluster(pod)
    try:
        # (kubectl says nothing when it is given the container's name and no -it.)
        kubectl(gateway, "federation", "-n", FEDERATED, "debug", name,
                "--image=registry.k8s.io/pause:3.10", "--container=federated-debug",
                "--profile=general")
        held = get_json(kubeconfig, cluster, "-n", FEDERATED, "pod", name)
        assert [c["name"] for c in held["spec"].get("ephemeralContainers") or []] == [
            "federated-debug"]
    finally:
        kubectl(gateway, "federation", "-n", FEDERATED, "delete", "pod", name,
                "--wait=true", "--timeout=60s")


def test_label_delete_and_replicasets_of_a_federated_deployment(
        gateway: Path, kubeconfig: Path, hello: list[dict[str, Any]]) -> None:
    run = functools.partial(kubectl, gateway, "federation", "-n", FEDERATED)
    pod = hello[-1]
    name, cluster = pod["metadata"]["name"], _cluster(pod)
    run("label", "pod", name, "touched=yes")
    assert get_json(kubeconfig, cluster, "-n", FEDERATED, "pod", name)["metadata"][
        "labels"]["touched"] == "yes"
    # Deleted through the federation: the member's ReplicaSet makes another, and the
    # plane's Deployment is fully available again.
    run("delete", "pod", name, "--wait=true", "--timeout=60s")
    assert kubectl(kubeconfig, cluster, "-n", FEDERATED, "get", "pod", name,
                   check=False).returncode != 0
    eventually(lambda: get_json(gateway, "federation", "-n", FEDERATED, "deployment",
                                "hello")["status"].get("availableReplicas") == 3,
               "hello available 3/3 again", attempts=600)
    table = run("get", "rs", "-l", "app=hello").stdout.splitlines()
    assert table[0].split()[:2] == ["CLUSTER", "NAME"]
    assert {line.split()[0] for line in table[1:]} == {_cluster(p) for p in hello}


def test_a_pod_name_in_two_members_is_a_conflict_naming_both(
        gateway: Path, kubeconfig: Path, hello: list[dict[str, Any]]) -> None:
    for member in ("member-1", "member-3"):
        kubectl(kubeconfig, member, "create", "namespace", "gw-twice")
        kubectl(kubeconfig, member, "apply", "-f", "-",
                stdin=POD.replace("shell", "twin").replace(NAMESPACE, "gw-twice"))
    try:
        for args in (("logs", "twin"), ("get", "pod", "twin"), ("delete", "pod", "twin")):
            done = kubectl(gateway, "federation", "-n", "gw-twice", *args, check=False)
            assert done.returncode == 1
            assert "more than one cluster (member-1, member-3)" in done.stderr, done.stderr
            assert "federation-member-1, federation-member-3" in done.stderr
        # A Status with code 409 (kubectl's -v=6 shows the HTTP status it got).
        raw = kubectl(gateway, "federation", "get", "-v=6",
                      "--raw=/api/v1/namespaces/gw-twice/pods/twin", check=False)
        assert raw.returncode == 1 and "409 Conflict" in raw.stderr, raw.stderr
        # (kubectl asks the plane for the namespace after a NotFound: one it holds.)
        for args in (("get", "pod", "nobody"), ("delete", "pod", "nobody"),
                     ("logs", "nobody")):
            missing = kubectl(gateway, "federation", "-n", FEDERATED, *args, check=False)
            assert 'pods "nobody" not found in any Ready cluster' in missing.stderr
    finally:
        for member in ("member-1", "member-3"):
            kubectl(kubeconfig, member, "delete", "namespace", "gw-twice", "--wait=false")


def _sleepers(marker: str) -> list[int]:
    """PIDs of processes running `sleep <marker>`."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if (proc / "cmdline").read_bytes().split(b"\0")[:2] == [b"sleep",
                                                                         marker.encode()]:
                    found.append(int(proc.name))
    return found


def test_a_caller_that_goes_ends_the_command_in_the_member(
        gateway: Path, hello: list[dict[str, Any]]) -> None:
    """kubectl killed mid-exec: the gateway closes the member's side too, and the command
    there ends (kwok stops it when its stream goes). Over SPDY: over WebSocket the member's
    apiserver, which turns it into SPDY for the kubelet, keeps the command running after its
    caller went, with or without federator in between (seen straight against a member)."""
    protocol, marker = "spdy", "301"
    with subprocess.Popen(["kubectl", f"--kubeconfig={gateway}", "--context=federation",
                           "-n", FEDERATED, "exec", hello[0]["metadata"]["name"], "--",
                           "sleep", marker],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env={**os.environ, **PROTOCOLS[protocol]}) as caller:
        eventually(lambda: _sleepers(marker), "the command running in the member")
        caller.kill()
    eventually(lambda: not _sleepers(marker), "the command ended with its caller")


def test_a_hung_member_delays_finding_a_pod_elsewhere_only_to_member_timeout(
        gateway: Path, hello: list[dict[str, Any]], lab: Any) -> None:
    """member-3's apiserver frozen (SIGSTOP): a pod held by another member is still found
    (member-3 left out after `gateway.member_timeout`, or once it is not Ready) and its log
    and exec go through."""
    pod = next(p for p in hello if _cluster(p) != "member-3")
    name = pod["metadata"]["name"]
    lab.pause_component("member-3/kube-apiserver")
    try:
        logged = kubectl(gateway, "federation", "-n", FEDERATED, "logs", name, "--tail=1")
        assert logged.stdout == f"{name}: serving\n"
        # Asked before member-3 is found not Ready: left out once member_timeout passed
        # (not after its client's own timeout), and said.
        assert "cluster member-3 left out: no answer within 5s" in logged.stderr, logged.stderr
        done = kubectl(gateway, "federation", "-n", FEDERATED, "exec", name, "--", "echo",
                       "found")
        assert done.stdout == "found\n"
    finally:
        lab.pause_component("member-3/kube-apiserver", resume=True)
        kubectl(gateway, "federation", "wait", "cluster/member-3", "--for=condition=Ready",
                "--timeout=60s")  # the tests after this one count on it
