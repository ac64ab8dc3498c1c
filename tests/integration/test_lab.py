"""The lab's clusters are real: pods get scheduled and run on kwok nodes; the plane keeps
templates."""

from __future__ import annotations

import contextlib
import functools
import ipaddress
from pathlib import Path

import pytest

from federator.domain.naming import REGION_LABEL, ZONE_LABEL
from federator.lab.process import ProcessLab
from federator.lab.spec import LabSpec
from tests.kube import attach_shows, forward_answers, get_json, kubectl

pytestmark = pytest.mark.integration

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: app
          image: registry.k8s.io/pause:3.10
"""


def test_every_member_runs_a_deployment_on_kwok_nodes(kubeconfig: Path, lab_spec: LabSpec) -> None:
    # A namespace and a name of its own: whatever other tests federated (a "web" in
    # default, say) must not count here, whichever runs first.
    for member in lab_spec.members:
        kubectl(kubeconfig, member.name, "create", "namespace", "lab-only")
        kubectl(kubeconfig, member.name, "apply", "-f", "-",
                stdin=DEPLOYMENT.format(name="lab-web", namespace="lab-only"))
    for member in lab_spec.members:
        kubectl(kubeconfig, member.name, "-n", "lab-only", "wait",
                "--for=condition=Available", "deployment/lab-web", "--timeout=180s")
        deployment = get_json(kubeconfig, member.name, "-n", "lab-only", "deployment",
                              "lab-web")
        assert deployment["status"]["availableReplicas"] == 2
        pods = get_json(kubeconfig, member.name, "-n", "lab-only", "pods", "-l",
                        "app=lab-web")["items"]
        running = [p for p in pods if p["status"]["phase"] == "Running"]
        assert len(running) == 2
        nodes = {n["metadata"]["name"]: n for n in get_json(
            kubeconfig, member.name, "nodes")["items"]}
        for pod in running:
            node = nodes[pod["spec"]["nodeName"]]
            assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
            assert node["metadata"]["labels"][REGION_LABEL] == member.region
            assert node["metadata"]["labels"][ZONE_LABEL] == member.zone
            ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
            assert ready["Ready"] == "True"
    for member in lab_spec.members:
        kubectl(kubeconfig, member.name, "delete", "namespace", "lab-only", "--wait=false")


def test_the_plane_keeps_a_deployment_as_a_template(kubeconfig: Path,
                                                    lab_spec: LabSpec) -> None:
    member = lab_spec.members[0].name
    # The same Deployment in the plane and in a member; once the member's is Available, its
    # controllers have had every chance to act, and the plane's must not have. (kube-public:
    # federator, when it runs, neither propagates it nor writes its status.)
    for context in ("plane", member):
        kubectl(kubeconfig, context, "apply", "-f", "-",
                stdin=DEPLOYMENT.format(name="tmpl", namespace="kube-public"))
    kubectl(kubeconfig, member, "-n", "kube-public", "wait", "--for=condition=Available",
            "deployment/tmpl", "--timeout=180s")
    assert get_json(kubeconfig, member, "-n", "kube-public", "replicasets", "-l",
                    "app=tmpl")["items"]
    plane_deployment = get_json(kubeconfig, "plane", "-n", "kube-public", "deployment", "tmpl")
    assert "observedGeneration" not in plane_deployment.get("status", {})
    # Nothing made from it (other tests may leave a ReplicaSet or a pod federated as it is).
    uid = plane_deployment["metadata"]["uid"]
    assert not [rs for rs in get_json(kubeconfig, "plane", "replicasets", "-A")["items"]
                if any(o["uid"] == uid for o in rs["metadata"].get("ownerReferences", []))]
    assert get_json(kubeconfig, "plane", "-n", "kube-public", "pods", "-l",
                    "app=tmpl")["items"] == []
    for context in ("plane", member):
        kubectl(kubeconfig, context, "-n", "kube-public", "delete", "deployment", "tmpl")
    assert get_json(kubeconfig, "plane", "nodes")["items"] == []


def test_the_plane_runs_the_namespace_controller(kubeconfig: Path) -> None:
    kubectl(kubeconfig, "plane", "create", "namespace", "doomed")
    kubectl(kubeconfig, "plane", "-n", "doomed", "create", "configmap", "c",
            "--from-literal=k=v")
    kubectl(kubeconfig, "plane", "delete", "namespace", "doomed", "--wait=true",
            "--timeout=120s")
    gone = kubectl(kubeconfig, "plane", "get", "namespace", "doomed", check=False)
    assert "NotFound" in gone.stderr


def test_member_capacity_is_what_the_spec_says(kubeconfig: Path, lab_spec: LabSpec) -> None:
    for member in lab_spec.members:
        nodes = get_json(kubeconfig, member.name, "nodes")["items"]
        pods = sum(int(n["status"]["allocatable"]["pods"]) for n in nodes)
        assert pods == member.pod_capacity
        assert len(nodes) == member.nodes


def test_status_reports_every_component_healthy(lab: ProcessLab, lab_spec: LabSpec) -> None:
    statuses = lab.status()
    names = {s.name for s in statuses}
    assert "etcd" in names and "plane/kube-apiserver" in names
    for member in lab_spec.members:
        assert f"{member.name}/kwok" in names
    assert [s.name for s in statuses if not s.healthy] == []


def test_a_stopped_component_comes_back_with_up(lab: ProcessLab, lab_spec: LabSpec,
                                               kubeconfig: Path) -> None:
    member = lab_spec.members[-1].name
    target = f"{member}/kube-apiserver"
    before = {s.name: s.pid for s in lab.status()}
    lab.stop_component(target)
    stopped = {s.name: s for s in lab.status()}[target]
    assert not stopped.running
    lab.up(lab_spec)
    after = {s.name: s for s in lab.status()}
    assert after[target].healthy
    kubectl(kubeconfig, member, "get", "--raw", "/readyz")
    # What talks to the returning apiserver was started afresh (no client-go backoff to
    # wait out), and nothing of any other cluster was touched.
    clients = {n for n in before if n.startswith(f"{member}/") and n != target}
    assert clients and all(after[n].pid != before[n] and after[n].healthy for n in clients)
    assert all(after[n].pid == before[n] for n in before
               if not n.startswith(f"{member}/"))
    # Frozen (SIGSTOP) and let go on: the same process answers again, and its clients are
    # started afresh as after a restart.
    lab.pause_component(target)
    hung = kubectl(kubeconfig, member, "get", "--raw", "/readyz", "--request-timeout=1s",
                   check=False)
    assert hung.returncode != 0
    lab.pause_component(target, resume=True)
    resumed = {s.name: s for s in lab.status()}
    assert resumed[target].pid == after[target].pid and resumed[target].healthy
    assert all(resumed[n].pid != after[n].pid and resumed[n].healthy for n in clients)
    kubectl(kubeconfig, member, "-n", "kube-public", "create", "deployment", "comes-back",
            "--image=registry.k8s.io/pause:3.10")
    kubectl(kubeconfig, member, "-n", "kube-public", "rollout", "status",
            "deployment/comes-back", "--timeout=120s")
    kubectl(kubeconfig, member, "-n", "kube-public", "delete", "deployment", "comes-back")


POD = """
apiVersion: v1
kind: Pod
metadata: {name: kubelet-api, namespace: lab-kubelet}
spec:
  containers: [{name: app, image: registry.k8s.io/pause:3.10}]
"""


def test_a_members_pods_serve_logs_exec_attach_port_forward_and_cp(
        lab: ProcessLab, lab_spec: LabSpec, kubeconfig: Path, tmp_path: Path) -> None:
    """Straight to a member, as through any cluster: the member's apiserver reaches the
    pod's node at its loopback InternalIP (the node agent, then kwok) over TLS."""
    member = lab_spec.members[1].name
    kubectl(kubeconfig, member, "create", "namespace", "lab-kubelet")
    kubectl(kubeconfig, member, "apply", "-f", "-", stdin=POD)
    kubectl(kubeconfig, member, "-n", "lab-kubelet", "wait", "--for=condition=Ready",
            "pod/kubelet-api", "--timeout=120s")
    run = functools.partial(kubectl, kubeconfig, member, "-n", "lab-kubelet")
    pod = get_json(kubeconfig, member, "-n", "lab-kubelet", "pod", "kubelet-api")
    assert ipaddress.ip_address(pod["status"]["hostIP"]).is_loopback
    assert ipaddress.ip_address(pod["status"]["podIP"]).is_private  # nothing connects there

    assert run("logs", "kubelet-api").stdout.splitlines()[0] == (
        f"federator lab: container app of pod lab-kubelet/kubelet-api in {member}")
    assert run("logs", "kubelet-api", "--tail=1").stdout == "kubelet-api: serving\n"

    assert run("exec", "kubelet-api", "--", "echo", "hello", "there").stdout == "hello there\n"
    # kwok answers a command's failure as an error that carries its exit status (a kubelet
    # would answer a NonZeroExitCode Status); kubectl exits 1 either way.
    failed = run("exec", "kubelet-api", "--", "ls", "no-such-file", check=False)
    assert failed.returncode == 1 and "exit status 2" in failed.stderr
    # stdin reaches the command; its end does not (kwok never closes the command's stdin):
    # a command that waits for the end of its input waits for ever.
    assert run("exec", "-i", "kubelet-api", "--", "head", "-c", "12",
               stdin="twelve bytes and more").stdout == "twelve bytes"
    shell = run("exec", "kubelet-api", "--", "sh", "-c", "echo no", check=False)
    assert shell.returncode != 0 and "no\n" not in shell.stdout

    (lab.paths.work(member) / "exec" / "report.txt").write_text("from the pod\n")
    run("cp", "kubelet-api:report.txt", str(tmp_path / "report.txt"))
    assert (tmp_path / "report.txt").read_text() == "from the pod\n"

    # attach shows what the container writes from then on (the lab's container log).
    attach_shows(kubeconfig, member, "lab-kubelet", "kubelet-api",
                 lab.paths.work(member) / "containers.log", "written while attached")
    forward_answers(kubeconfig, member, "lab-kubelet", "kubelet-api")


def _sockets_of(pid: int) -> set[int]:
    """The inodes of the sockets a process holds."""
    found = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = str(fd.readlink())
                if target.startswith("socket:["):
                    found.add(int(target[8:-1]))
    return found


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address of /proc/net/tcp{,6}: hex, in the kernel's byte order per 32-bit word."""
    raw = bytes.fromhex(text)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(words)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def test_nothing_of_the_lab_listens_or_connects_outside_loopback(
        lab: ProcessLab, lab_spec: LabSpec, kubeconfig: Path) -> None:
    """Every TCP socket of every lab process: listening on a loopback address (never on all
    addresses), connected only to loopback ones; and the addresses the lab's nodes hand out
    (InternalIP, ExternalIP) are loopback ones."""
    _, records = lab.load()
    ours = {inode: name for name, record in records.items()
            for inode in _sockets_of(record.pid)}
    seen = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            inode = int(fields[9])
            if inode not in ours:
                continue
            local, remote = (_address(f.split(":")[0]) for f in fields[1:3])
            listening = fields[3] == "0A"
            seen.append((ours[inode], str(local), str(remote), listening))
            assert local.is_loopback, (ours[inode], str(local))
            assert remote.is_loopback or (listening and remote.is_unspecified), (
                ours[inode], str(remote))
    assert {listening for *_, listening in seen} == {True, False}  # both kinds were seen
    assert {name for name, *_ in seen} >= {"etcd", "plane/kube-apiserver",
                                          f"{lab_spec.members[0].name}/nodes"}
    for member in lab_spec.members:
        for node in get_json(kubeconfig, member.name, "nodes")["items"]:
            for address in node["status"]["addresses"]:
                if address["type"] in ("InternalIP", "ExternalIP"):
                    assert ipaddress.ip_address(address["address"]).is_loopback, address
