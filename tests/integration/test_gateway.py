"""The gateway with the real kubectl: the federation as one cluster, each member by its own
context, pods of every member in one listing, and who may do what."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from federator.pki import issue, new_ca
from tests.integration.conftest import (
    DEPLOYMENT,
    GATEWAY_TOKENS,
    MEMBERS,
    ca_of,
    write_contexts,
)
from tests.kube import eventually, get_json, kubectl
from tests.serving import Serve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reader(serving: Serve, federation: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Contexts of user `reader`, bound to a read-only role in the plane only."""
    output = tmp_path_factory.mktemp("reader") / "kubeconfig"
    write_contexts(federation, serving, output, "--user", "reader", "--group", "readers")
    # The plane's built-in `view` (aggregated: it takes in federator.io's reads too). A
    # binding is propagated like any object: this one is labelled to stay in the plane.
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "gw-reader", "labels": {"federator.io/local": "true"}},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "view"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                             "name": "reader"}]}
    kubectl(federation, "federation", "apply", "-f", "-", stdin=json.dumps(binding))
    yield output
    kubectl(federation, "federation", "delete", "clusterrolebinding", "gw-reader")


def test_kubectl_verbs_through_the_gateway(gateway: Path) -> None:
    ctx = "federation"
    kubectl(gateway, ctx, "apply", "-f", "-", stdin=DEPLOYMENT.format(name="gw-web", replicas=3))
    kubectl(gateway, ctx, "rollout", "status", "deployment/gw-web", "--timeout=120s")
    wide = kubectl(gateway, ctx, "get", "deployment", "gw-web", "-o", "wide").stdout
    assert "3/3" in wide and "registry.k8s.io/pause:3.10" in wide
    # Server-side apply, then kubectl's protobuf body of `create deployment`.
    kubectl(gateway, ctx, "apply", "--server-side", "-f", "-",
            stdin=DEPLOYMENT.format(name="gw-web", replicas=4))
    assert get_json(gateway, ctx, "deployment", "gw-web")["spec"]["replicas"] == 4
    kubectl(gateway, ctx, "create", "deployment", "gw-made", "--image=registry.k8s.io/pause:3.10",
            "--replicas=2")
    kubectl(gateway, ctx, "rollout", "status", "deployment/gw-made", "--timeout=120s")
    made = get_json(gateway, ctx, "deployment", "gw-made")
    assert made["status"]["readyReplicas"] == 2
    kubectl(gateway, ctx, "scale", "deployment/gw-made", "--replicas=3")
    kubectl(gateway, ctx, "label", "deployment/gw-made", "tier=web")
    edited = kubectl(gateway, ctx, "edit", "deployment/gw-made",
                     env={"KUBE_EDITOR": "sed -i s/replicas:\\ 3/replicas:\\ 5/"})
    assert "edited" in edited.stdout
    kubectl(gateway, ctx, "rollout", "status", "deployment/gw-made", "--timeout=120s")
    made = get_json(gateway, ctx, "deployment", "gw-made")
    assert (made["spec"]["replicas"], made["metadata"]["labels"]["tier"]) == (5, "web")
    assert made["status"]["readyReplicas"] == 5
    described = kubectl(gateway, ctx, "describe", "deployment", "gw-made").stdout
    assert "Scheduled" in described and "replicas per cluster" in described
    happened = kubectl(gateway, ctx, "get", "events", "--field-selector",
                       "involvedObject.name=gw-made").stdout
    assert "CreatedInCluster" in happened
    clusters = kubectl(gateway, ctx, "get", "clusters").stdout
    assert all(m in clusters for m in MEMBERS)
    as_yaml = kubectl(gateway, ctx, "get", "deployment", "gw-made", "-o", "yaml").stdout
    assert "federator.io/cluster-status" in as_yaml
    for name in ("gw-web", "gw-made"):
        kubectl(gateway, ctx, "delete", "deployment", name, "--wait=true", "--timeout=120s")
    for member in MEMBERS:
        gone = kubectl(gateway, f"federation-{member}", "get", "deployment", "gw-made",
                       check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_a_watch_streams_through_the_gateway(gateway: Path) -> None:
    # A namespace of its own: the watch lists what is there first.
    kubectl(gateway, "federation", "create", "namespace", "gw-watching")
    argv = ["kubectl", f"--kubeconfig={gateway}", "--context=federation", "-n", "gw-watching",
            "get", "configmaps", "-w", "-o", "name", "--request-timeout=60s"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True) as watcher:
        try:
            assert watcher.stdout is not None
            kubectl(gateway, "federation", "-n", "gw-watching", "create", "configmap",
                    "gw-watched", "--from-literal=a=1")
            assert watcher.stdout.readline().strip() == "configmap/gw-watched"
            kubectl(gateway, "federation", "-n", "gw-watching", "label", "configmap",
                    "gw-watched", "seen=twice")
            assert watcher.stdout.readline().strip() == "configmap/gw-watched"
        finally:
            watcher.kill()
            kubectl(gateway, "federation", "delete", "namespace", "gw-watching",
                    "--wait=false", check=False)


def test_pods_of_every_member_in_one_watch(gateway: Path) -> None:
    kubectl(gateway, "federation", "apply", "-f", "-",
            stdin=DEPLOYMENT.format(name="gw-watch", replicas=3))
    kubectl(gateway, "federation", "rollout", "status", "deployment/gw-watch", "--timeout=120s")
    argv = ["kubectl", f"--kubeconfig={gateway}", "--context=federation", "get", "pods",
            "-l", "app=gw-watch", "-w", "--output-watch-events"]
    lines: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as watcher:
        reader = threading.Thread(target=lambda: lines.extend(watcher.stdout or []),
                                  daemon=True)
        reader.start()
        try:
            listed = eventually(lambda: len(lines) >= 4 and lines[:4],
                                "the listing of 3 pods")
            assert listed[0].split()[:3] == ["EVENT", "CLUSTER", "NAME"]
            assert sorted(row.split()[1] for row in listed[1:]) == sorted(MEMBERS)
            kubectl(gateway, "federation", "scale", "deployment/gw-watch", "--replicas=6")

            def added() -> list[str]:
                return sorted({row.split()[1] for row in lines[4:]
                               if row.split()[0] == "ADDED"})

            assert eventually(lambda: added() == sorted(MEMBERS) and added(),
                              "new pods of every member in the watch")
        finally:
            watcher.kill()
            reader.join(10)
        assert watcher.stderr is not None
        assert "error" not in watcher.stderr.read().lower()
    kubectl(gateway, "federation", "delete", "deployment", "gw-watch")


def test_each_member_has_its_own_context(gateway: Path, federation: Path) -> None:
    kubectl(gateway, "federation", "apply", "-f", "-",
            stdin=DEPLOYMENT.format(name="gw-per-cluster", replicas=3))
    for member in MEMBERS:
        pods = eventually(lambda m=member: get_json(gateway, f"federation-{m}", "pods", "-l",
                                                     "app=gw-per-cluster")["items"],
                          f"a pod in {member}")
        direct = get_json(federation, member, "pods", "-l", "app=gw-per-cluster")["items"]
        assert {p["metadata"]["name"] for p in pods} == {p["metadata"]["name"] for p in direct}
    missing = kubectl(gateway, "federation-member-1", "get", "deployment", "nothing-here",
                      check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr
    kubectl(gateway, "federation", "delete", "deployment", "gw-per-cluster")


def test_pods_of_every_member_in_one_listing(gateway: Path, federation: Path, lab: Any,
                                             lab_spec: Any) -> None:
    kubectl(gateway, "federation", "apply", "-f", "-",
            stdin=DEPLOYMENT.format(name="gw-fan", replicas=3))
    kubectl(gateway, "federation", "rollout", "status", "deployment/gw-fan", "--timeout=120s")
    table = kubectl(gateway, "federation", "get", "pods", "-A", "-l", "app=gw-fan").stdout
    rows = table.splitlines()
    assert rows[0].split()[:3] == ["NAMESPACE", "CLUSTER", "NAME"]
    assert sorted(row.split()[1] for row in rows[1:]) == sorted(MEMBERS)
    listed = get_json(gateway, "federation", "pods", "-l", "app=gw-fan")["items"]
    assert sorted(p["metadata"]["annotations"]["federator.io/cluster"]
                  for p in listed) == sorted(MEMBERS)
    lab.stop_component("member-3/kube-apiserver")
    try:
        partial = kubectl(gateway, "federation", "get", "pods", "-l", "app=gw-fan")
        assert partial.returncode == 0, partial.stderr
        clusters = sorted(row.split()[0] for row in partial.stdout.splitlines()[1:])
        assert clusters == ["member-1", "member-2"]
        assert "member-3" in partial.stderr and "Warning" in partial.stderr
    finally:
        lab.up(lab_spec)
    kubectl(gateway, "federation", "delete", "deployment", "gw-fan")


def test_who_may_do_what(gateway: Path, reader: Path, serving: Serve) -> None:
    url = f"https://127.0.0.1:{serving.gateway_port}/api/v1/namespaces"
    ca = ssl.create_default_context(cadata=ca_of(gateway))
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers), context=ca)
        status = json.loads(refused.value.read())
        assert (refused.value.code, status["kind"], status["reason"]) == (
            401, "Status", "Unauthorized")
    wrong = kubectl(gateway, "federation", "get", "namespaces", "--token=not-a-token",
                    check=False)
    assert wrong.returncode != 0 and "Unauthorized" in wrong.stderr
    token = next(iter(GATEWAY_TOKENS))
    listed = kubectl(gateway, "federation", "get", "namespaces", f"--token={token}")
    assert "federation-system" in listed.stdout
    # The plane's RBAC decides for the impersonated user: reader may look, not write.
    assert "federation-system" in kubectl(reader, "federation", "get", "namespaces").stdout
    assert "member-1" in kubectl(reader, "federation", "get", "clusters").stdout
    denied = kubectl(reader, "federation", "create", "configmap", "gw-denied", check=False)
    assert denied.returncode != 0
    assert 'User "reader" cannot create resource "configmaps"' in denied.stderr
    # In a member, the member's RBAC decides: reader is bound to nothing there.
    member = kubectl(reader, "federation-member-1", "get", "pods", check=False)
    assert member.returncode != 0 and 'User "reader" cannot list' in member.stderr


def test_nodes_single_pods_warnings_tokens_and_versions(gateway: Path, federation: Path,
                                                        serving: Serve, tmp_path: Path) -> None:
    """More of what the README promises of the gateway, each with the real kubectl."""
    # Nodes fan out like pods: every member's, with a CLUSTER column.
    nodes = kubectl(gateway, "federation", "get", "nodes").stdout.splitlines()
    assert nodes[0].split()[:2] == ["CLUSTER", "NAME"]
    assert {row.split()[0] for row in nodes[1:]} == set(MEMBERS)
    # One pod by name: from the member that has it, marked with its cluster.
    kubectl(gateway, "federation", "apply", "-f", "-",
            stdin=DEPLOYMENT.format(name="gw-one", replicas=1))
    kubectl(gateway, "federation", "rollout", "status", "deployment/gw-one", "--timeout=120s")
    pod = get_json(gateway, "federation", "pods", "-l", "app=gw-one")["items"][0]
    name, cluster = pod["metadata"]["name"], pod["metadata"]["annotations"][
        "federator.io/cluster"]
    one = get_json(gateway, "federation", "pod", name)
    assert (one["metadata"]["name"], one["metadata"]["annotations"]["federator.io/cluster"]) \
        == (name, cluster)
    missing = kubectl(gateway, "federation", "get", "pod", "no-such-pod", check=False)
    assert missing.returncode != 0 and "not found in any Ready cluster" in missing.stderr
    kubectl(gateway, "federation", "delete", "deployment", "gw-one")
    # The plane's Warning headers pass through to kubectl.
    unknown_field = ('{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": '
                     '"gw-warned"}, "data": {"a": "1"}, "surprise": true}')
    warned = kubectl(gateway, "federation", "create", "--validate=warn", "-f", "-",
                     stdin=unknown_field)
    assert 'Warning: unknown field "surprise"' in warned.stderr
    kubectl(gateway, "federation", "delete", "configmap", "gw-warned")
    # A watch from a resourceVersion the gateway did not give out: 410, list again.
    gone = kubectl(gateway, "federation", "get", "--raw",
                   "/api/v1/pods?watch=1&resourceVersion=12345", check=False)
    assert gone.returncode != 0 and "Expired" in gone.stderr + gone.stdout
    # `federator kubeconfig --token`: contexts that send a token of the gateway's token file.
    output = tmp_path / "kubeconfig"
    token = next(iter(GATEWAY_TOKENS))
    write_contexts(federation, serving, output, "--token", token)
    assert token in output.read_text()
    assert "federation-system" in kubectl(output, "federation", "get", "namespaces").stdout


READER_POLICY = """
apiVersion: federator.io/v1alpha1
kind: FederationPolicy
metadata: {name: readers, namespace: gw-team}
spec:
  resourceSelectors: [{apiVersion: v1, kind: ConfigMap}]
  placement: {clusters: [member-1]}
"""


def test_the_builtin_edit_role_writes_federation_policies(gateway: Path, reader: Path) -> None:
    """The plane aggregates federator.io's policy writes into `edit`: bound to it in one
    namespace, a user writes FederationPolicies there and nowhere else."""
    kubectl(gateway, "federation", "create", "namespace", "gw-team")
    kubectl(gateway, "federation", "-n", "gw-team", "create", "rolebinding", "reader-edit",
            "--clusterrole=edit", "--user=reader")
    try:
        kubectl(reader, "federation", "apply", "-f", "-", stdin=READER_POLICY)
        assert "readers" in kubectl(reader, "federation", "-n", "gw-team", "get",
                                    "federationpolicies").stdout
        denied = kubectl(reader, "federation", "apply", "-f", "-", check=False,
                         stdin=READER_POLICY.replace("gw-team", "default"))
        assert denied.returncode != 0 and "forbidden" in denied.stderr
    finally:
        kubectl(gateway, "federation", "delete", "namespace", "gw-team", "--wait=false")


def plane_watches(kubeconfig: Path, resource: str, context: str = "plane") -> int:
    """Watches of `resource` the plane's (or a member's) apiserver is serving now (its own
    metric)."""
    text = kubectl(kubeconfig, context, "get", "--raw", "/metrics").stdout
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("apiserver_longrunning_requests{")
               and f'resource="{resource}"' in line and 'verb="WATCH"' in line)


def test_a_client_that_leaves_ends_its_upstream_watch(gateway: Path, federation: Path) -> None:
    before = plane_watches(federation, "secrets")
    watcher = subprocess.Popen(["kubectl", f"--kubeconfig={gateway}", "--context=federation",
                                "get", "secrets", "-n", "kube-public", "-w"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        eventually(lambda: plane_watches(federation, "secrets") == before + 1,
                   "the watch open in the plane")
    finally:
        watcher.kill()
        watcher.wait()
    eventually(lambda: plane_watches(federation, "secrets") == before,
               "the plane's watch ended with its client")


def test_the_merged_watch_ends_when_a_members_ends(gateway: Path, federation: Path, lab: Any,
                                                   lab_spec: Any) -> None:
    """A member's watch that ends (its apiserver gone) ends the merged watch, as an
    apiserver ends a watch: the client lists and watches again, and sees who is left."""
    before = plane_watches(federation, "pods", "member-3")
    watcher = subprocess.Popen(["kubectl", f"--kubeconfig={gateway}", "--context=federation",
                                "get", "--raw", "/api/v1/namespaces/default/pods?watch=true"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        eventually(lambda: plane_watches(federation, "pods", "member-3") > before,
                   "the watch open in member-3")
        assert watcher.poll() is None, "the merged watch ended by itself"
        lab.stop_component("member-3/kube-apiserver")
        try:
            eventually(lambda: watcher.poll() is not None, "the merged watch ended")
        finally:
            lab.up(lab_spec)
    finally:
        if watcher.poll() is None:
            watcher.kill()
        watcher.wait()
    kubectl(federation, "federation", "wait", "cluster/member-3", "--timeout=120s",
            "--for=jsonpath={.status.conditions[0].status}=True")


def _certificate_kubeconfig(path: Path, port: int, gateway_ca: str, pair: tuple[bytes, bytes]
                            ) -> Path:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "federation",
        "clusters": [{"name": "federation", "cluster": {
            "server": f"https://127.0.0.1:{port}",
            "certificate-authority-data": b64(gateway_ca.encode())}}],
        "users": [{"name": "them", "user": {"client-certificate-data": b64(pair[0]),
                                            "client-key-data": b64(pair[1])}}],
        "contexts": [{"name": "federation",
                      "context": {"cluster": "federation", "user": "them"}}]}))
    return path


def test_client_certificates_of_another_ca(federation: Path, gateway: Path, serving: Serve,
                                           tmp_path: Path) -> None:
    """`gateway.client_ca_file`: a certificate of that CA gets in as its common name and
    organizations (the plane sees them impersonated); without the setting, or from a CA
    named nowhere, it does not get in."""
    theirs = new_ca("their-ca")
    (tmp_path / "client-ca.pem").write_bytes(theirs[0])
    replica = Serve(federation, "client-ca", tmp_path / "serve.log",
                    {"FEDERATOR_GATEWAY__CLIENT_CA_FILE": str(tmp_path / "client-ca.pem"),
                     "FEDERATOR_DNS__ENABLED": "false"})
    try:
        alice = issue(*theirs, "alice-of-theirs", orgs=("their-team",), server=False)
        stranger = issue(*new_ca("stranger-ca"), "alice-of-theirs", server=False)
        ca = ca_of(gateway)
        kubeconfig = _certificate_kubeconfig(tmp_path / "alice", replica.gateway_port, ca,
                                             alice)
        who = json.loads(kubectl(kubeconfig, "federation", "auth", "whoami", "-o",
                                 "json").stdout)["status"]["userInfo"]
        assert who["username"] == "alice-of-theirs"
        assert "their-team" in who["groups"]
        for port, pair in ((serving.gateway_port, alice), (replica.gateway_port, stranger)):
            refused = kubectl(_certificate_kubeconfig(tmp_path / "refused", port, ca, pair),
                              "federation", "auth", "whoami", check=False)
            assert refused.returncode != 0 and "alice-of-theirs" not in refused.stdout
    finally:
        assert replica.stop() == 0


def test_a_write_that_stays_in_the_plane_says_so(gateway: Path) -> None:
    """Nothing is kept in the plane silently: kubectl prints the gateway's Warning for a kind
    that is each cluster's own and for a namespace that is each cluster's own; a kind it
    propagates gets none."""
    lease = json.dumps({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": "gw-kept"}, "spec": {"holderIdentity": "a"}})
    for command, stdin, said in (
            (("create", "-f", "-"), lease,
             "Warning: stored in the federation, not propagated: leases coordinate processes "
             "of one cluster"),
            (("-n", "kube-public", "create", "configmap", "gw-kept"), None,
             "Warning: stored in the federation, not propagated: namespace kube-public is "
             "each cluster's own"),
            (("create", "configmap", "gw-kept"), None, None),
            (("create", "serviceaccount", "gw-kept"), None, None)):
        done = kubectl(gateway, "federation", *command, stdin=stdin)
        if said is None:
            assert "Warning" not in done.stderr, done.stderr
        else:
            assert said in done.stderr, done.stderr
    kubectl(gateway, "federation", "delete", "serviceaccount,configmap,lease", "gw-kept")
    kubectl(gateway, "federation", "-n", "kube-public", "delete", "configmap", "gw-kept")
