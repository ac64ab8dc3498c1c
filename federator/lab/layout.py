"""How a process lab is laid out: the command line of every component, the kwok nodes of each
member and the lab's kubeconfig. Pure functions of the spec and the paths; no I/O."""

from __future__ import annotations

import base64
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from federator.domain.naming import REGION_LABEL, ZONE_LABEL
from federator.lab.spec import PLANE, LabSpec, MemberSpec
from federator.lab.toolchain import Binaries

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
# The plane stores templates: it runs no controller that would turn them into pods; it does
# aggregate ClusterRoles (view, edit, admin take in what federator.io adds to them), and lifts
# the protection finalizers its admission puts on claims and volumes (no pod uses them there).
PLANE_CONTROLLERS = ("namespace,garbagecollector,clusterrole-aggregation,pvc-protection,"
                     "pv-protection")
# A member without workloads: what join and unjoin need (tokens, namespace deletion).
LIGHT_CONTROLLERS = "serviceaccount-token,serviceaccount,namespace,garbagecollector"


@dataclass(frozen=True)
class LabPaths:
    """Files of one lab, all under its directory."""

    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    def work(self, cluster: str) -> Path:
        """Scratch space of one cluster's components (self-signed serving certs and such)."""
        return self.root / "work" / cluster

    def log(self, component: str) -> Path:
        return self.logs / (component.replace("/", "_") + ".log")


@dataclass(frozen=True)
class Health:
    """How to ask a component whether it is well: an HTTP(S) GET that must answer 200."""

    url: str
    tls: bool  # with the lab's CA and admin client certificate


@dataclass(frozen=True)
class Component:
    """One process of the lab."""

    name: str  # "etcd", "plane/kube-apiserver", "member-1/kwok", ...
    cluster: str | None
    argv: tuple[str, ...]
    health: Health
    ports: tuple[int, ...]
    stage: int  # components of a stage start together, after the earlier stages are healthy
    hosts: tuple[str, ...] = ("127.0.0.1",)  # where it listens on its ports
    env: tuple[tuple[str, str], ...] = ()  # its environment (else the lab's own)


def service_range(index: int) -> tuple[str, str]:
    """Service CIDR of the cluster at `index` (0 = plane) and its first address."""
    return f"10.{96 + index}.0.0/16", f"10.{96 + index}.0.1"


def pod_range(index: int) -> str:
    return f"10.{index + 1}.0.0/16"


# Every address of the process lab that anything connects to is a loopback one
# (127.0.0.0/8): nothing of it may ever send traffic elsewhere. Member i's (i from 1) node n
# (from 1) is reached at 127.10.i.n (InternalIP: the member's apiserver asks the node's
# kubelet API there) and has ExternalIP 127.20.i.n (what DNS answers for a NodePort
# Service). Pods and Services keep private addresses that nothing connects to (the lab has
# no pod network): Kubernetes refuses loopback addresses in a Service's endpoints.
def node_address(index: int, node: int) -> str:
    return f"127.10.{index}.{node}"


def node_external_address(index: int, node: int) -> str:
    return f"127.20.{index}.{node}"


def node_addresses(spec: LabSpec, cluster: str) -> tuple[str, ...]:
    """The InternalIPs of a member's nodes, in order."""
    index = spec.cluster_names.index(cluster)
    count = len(spec.member(cluster).node_pods())
    return tuple(node_address(index, n) for n in range(1, count + 1))


def _pki(paths: LabPaths, name: str) -> str:
    return str(paths.pki / name)


def etcd(spec: LabSpec, paths: LabPaths, binaries: Binaries) -> Component:
    client = f"http://127.0.0.1:{spec.etcd_client_port}"
    peer = f"http://127.0.0.1:{spec.etcd_peer_port}"
    argv = (
        str(binaries.etcd), "--name=federator-lab", f"--data-dir={paths.etcd_data}",
        f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=federator-lab={peer}", "--unsafe-no-fsync", "--log-level=warn",
        "--quota-backend-bytes=4294967296",
    )
    return Component("etcd", None, argv, Health(f"{client}/health", tls=False),
                     (spec.etcd_client_port, spec.etcd_peer_port), stage=0)


def apiserver(spec: LabSpec, paths: LabPaths, binaries: Binaries, cluster: str) -> Component:
    index = spec.cluster_names.index(cluster)
    cidr = service_range(index)[0]
    port = spec.ports(cluster).apiserver
    sa_key = _pki(paths, f"sa-{cluster}.key")
    argv = (
        str(binaries.kube_apiserver),
        f"--etcd-servers=http://127.0.0.1:{spec.etcd_client_port}",
        f"--etcd-prefix=/federator-lab/{cluster}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
        # The lab's apiservers have no routable address to publish for the `kubernetes`
        # Service; nothing in a lab dials it, so its endpoints are not reconciled.
        "--endpoint-reconciler-type=none",
        f"--tls-cert-file={_pki(paths, f'apiserver-{cluster}.crt')}",
        f"--tls-private-key-file={_pki(paths, f'apiserver-{cluster}.key')}",
        f"--client-ca-file={_pki(paths, 'ca.crt')}",
        f"--service-account-issuer=https://{cluster}.federator-lab.invalid",
        f"--service-account-key-file={sa_key}", f"--service-account-signing-key-file={sa_key}",
        f"--service-cluster-ip-range={cidr}", "--authorization-mode=RBAC",
        "--allow-privileged=true", f"--cert-dir={paths.work(cluster)}", "--profiling=false",
        # Logs, exec, attach and port-forward go to the node's kubelet API (kwok's, through
        # the node agent) at its InternalIP, over TLS verified with the lab's CA.
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-certificate-authority={_pki(paths, 'ca.crt')}",
        f"--kubelet-client-certificate={_pki(paths, 'admin.crt')}",
        f"--kubelet-client-key={_pki(paths, 'admin.key')}",
        "--v=1",
    )
    return Component(f"{cluster}/kube-apiserver", cluster, argv,
                     Health(f"https://127.0.0.1:{port}/readyz", tls=True), (port,), stage=1)


def _client_flags(paths: LabPaths, cluster: str) -> tuple[str, ...]:
    """Flags that a cluster's controller-manager and scheduler share: their kubeconfig, and
    the apiserver's serving pair (valid for 127.0.0.1) so that the lab's CA verifies them."""
    kubeconfig = component_kubeconfig(paths, cluster)
    return (f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--tls-cert-file={_pki(paths, f'apiserver-{cluster}.crt')}",
            f"--tls-private-key-file={_pki(paths, f'apiserver-{cluster}.key')}")


# A member's controllers and scheduler may send 100 requests/s (bursts of 200) to their own
# apiserver, not 20 (the controller manager's default): after a failover a member makes
# hundreds of pods at once, and at 20/s the lab, not federator, took most of the time
# (benchmarks.scale: 35 of 42 s after federator had written every new split).
BUSY_CLIENT = ("--kube-api-qps=100", "--kube-api-burst=200")


def controller_manager(spec: LabSpec, paths: LabPaths, binaries: Binaries,
                       cluster: str) -> Component:
    port = spec.ports(cluster).controller_manager
    index = spec.cluster_names.index(cluster)
    argv: tuple[str, ...] = (
        str(binaries.kube_controller_manager), *_client_flags(paths, cluster),
        "--bind-address=127.0.0.1", f"--secure-port={port}", "--leader-elect=false",
        f"--cert-dir={paths.work(cluster)}", f"--root-ca-file={_pki(paths, 'ca.crt')}",
        f"--service-account-private-key-file={_pki(paths, f'sa-{cluster}.key')}",
        f"--service-cluster-ip-range={service_range(index)[0]}", "--v=1",
    )
    if cluster == PLANE:
        argv += (f"--controllers={PLANE_CONTROLLERS}",)
    elif not spec.member(cluster).workloads:
        argv += (f"--controllers={LIGHT_CONTROLLERS}",)
    else:
        argv += (f"--cluster-signing-cert-file={_pki(paths, 'ca.crt')}",
                 f"--cluster-signing-key-file={_pki(paths, 'ca.key')}",
                 # kwok renews node leases only while the apiserver answers; after a member's
                 # apiserver was stopped (as failover tests do), its nodes would be marked
                 # NotReady and kwok never makes their pods Ready again.
                 "--node-monitor-grace-period=10m", *BUSY_CLIENT)
    return Component(f"{cluster}/kube-controller-manager", cluster, argv,
                     Health(f"https://127.0.0.1:{port}/healthz", tls=True), (port,), stage=2)


def scheduler(spec: LabSpec, paths: LabPaths, binaries: Binaries, cluster: str) -> Component:
    port = spec.ports(cluster).scheduler
    argv = (
        str(binaries.kube_scheduler), *_client_flags(paths, cluster),
        "--bind-address=127.0.0.1", f"--secure-port={port}", "--leader-elect=false", "--v=1",
        *BUSY_CLIENT,
    )
    return Component(f"{cluster}/kube-scheduler", cluster, argv,
                     Health(f"https://127.0.0.1:{port}/healthz", tls=True), (port,), stage=2)


def kwok(spec: LabSpec, paths: LabPaths, binaries: Binaries, cluster: str) -> Component:
    """The member's fake kubelets: one kwok for all its nodes, serving their kubelet API
    (logs, exec, attach, port-forward) on 127.0.0.1 over TLS (and plain HTTP for its health);
    exec runs in the member's scratch directory with only the lab's own tools on PATH; a
    pod's logs are what its `Logs` object names (kwok watches them: the definition is
    installed before kwok starts)."""
    port = spec.ports(cluster).kwok
    index = spec.cluster_names.index(cluster)
    argv = (
        str(binaries.kwok), f"--kubeconfig={component_kubeconfig(paths, cluster)}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
        f"--cidr=10.{index + 1}.0.1/16", f"--node-ip={node_address(index, 1)}",
        f"--server-address=127.0.0.1:{port}", f"--node-port={port}",
        f"--tls-cert-file={_pki(paths, f'kubelet-{cluster}.crt')}",
        f"--tls-private-key-file={_pki(paths, f'kubelet-{cluster}.key')}",
        f"--config={kwok_config(paths, cluster)}",
        "--enable-crds=Logs",  # a pod's own logs (federator.lab.podlogs), else the member's
        # Nodes keep a Lease, renewed by kwok; without one, their status heartbeats come too
        # seldom for the node controller, which then marks them NotReady now and then.
        "--node-lease-duration-seconds=40",
    )
    return Component(f"{cluster}/kwok", cluster, argv,
                     Health(f"http://127.0.0.1:{port}/healthz", tls=False), (port,), stage=2,
                     env=(("PATH", str(exec_tools(paths))),))


def node_agent(spec: LabSpec, paths: LabPaths, cluster: str) -> Component:
    """`federator.lab.nodes`: each node's address (its InternalIP and kubelet port) carried to
    the member's kwok, and each pod's container logs written; healthy once kwok answers
    through the first node's address."""
    port = spec.ports(cluster).kwok
    hosts = node_addresses(spec, cluster)
    argv = (sys.executable, "-m", "federator.lab.nodes",
            f"--kubeconfig={component_kubeconfig(paths, cluster)}", f"--cluster={cluster}",
            f"--logs={pod_logs(paths, cluster)}",
            *(f"{host}:{port}=127.0.0.1:{port}" for host in hosts))
    return Component(f"{cluster}/nodes", cluster, argv,
                     Health(f"http://{hosts[0]}:{port}/healthz", tls=False), (port,), stage=3,
                     hosts=hosts)


def pod_logs(paths: LabPaths, cluster: str) -> Path:
    """Where each pod's container logs are written (a file per container)."""
    return paths.work(cluster) / "pod-logs"


def kwok_config(paths: LabPaths, cluster: str) -> Path:
    return paths.work(cluster) / "kwok.yaml"


def container_log(paths: LabPaths, cluster: str) -> Path:
    return paths.work(cluster) / "containers.log"


def exec_directory(paths: LabPaths, cluster: str) -> Path:
    """Where `kubectl exec` runs in a member's pods: a scratch directory of the lab."""
    return paths.work(cluster) / "exec"


def exec_tools(paths: LabPaths) -> Path:
    """The only directory on the PATH of what exec runs: links to a few harmless tools."""
    return paths.root / "exec-tools"


# What `kubectl exec` may run by name in a lab pod (`kubectl cp` needs tar); no shell.
EXEC_TOOLS = ("cat", "echo", "env", "false", "head", "ls", "pwd", "sleep", "tail", "tar",
              "true", "wc")
KWOK_API = "kwok.x-k8s.io/v1alpha1"


def kwok_objects(spec: LabSpec, paths: LabPaths, cluster: str) -> list[dict[str, Any]]:
    """kwok's configuration for every pod of a member: logs (and attach) from the member's
    container log, exec in its scratch directory, any port forwarded to kwok's own port
    (plain HTTP there answers /healthz). No selector: every pod, every container."""
    log = str(container_log(paths, cluster))
    work = str(exec_directory(paths, cluster))
    return [
        {"apiVersion": KWOK_API, "kind": "ClusterLogs", "metadata": {"name": "lab-logs"},
         "spec": {"logs": [{"logsFile": log, "follow": True}]}},
        {"apiVersion": KWOK_API, "kind": "ClusterAttach", "metadata": {"name": "lab-attach"},
         "spec": {"attaches": [{"logsFile": log}]}},
        {"apiVersion": KWOK_API, "kind": "ClusterExec", "metadata": {"name": "lab-exec"},
         "spec": {"execs": [{"local": {"workDir": work}}]}},
        {"apiVersion": KWOK_API, "kind": "ClusterPortForward",
         "metadata": {"name": "lab-port-forward"},
         "spec": {"forwards": [{"target": {"port": spec.ports(cluster).kwok,
                                           "address": "127.0.0.1"}}]}},
    ]


def runtime_log(said: list[str], seconds: float) -> str:
    """Lines as a container runtime keeps a container's log, which kwok reads: time (UTC,
    nanoseconds), stream, tag (F: a full line), text."""
    when = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime(seconds))
    return "".join(f"{when} stdout F {line}\n" for line in said)


def container_log_lines(cluster: str, seconds: float) -> str:
    """What attach shows of every container of a member (the lines written to the member's
    log later), and what a pod without its own logs shows: a few lines naming the cluster."""
    return runtime_log([f"federator lab: a container in {cluster}", f"{cluster}: started",
                        f"{cluster}: serving"], seconds)


def components(spec: LabSpec, paths: LabPaths, binaries: Binaries) -> list[Component]:
    """Every process of the lab, in start order."""
    result = [etcd(spec, paths, binaries)]
    result += [apiserver(spec, paths, binaries, c) for c in spec.cluster_names]
    result.append(controller_manager(spec, paths, binaries, PLANE))
    for member in spec.members:
        result.append(controller_manager(spec, paths, binaries, member.name))
        if member.workloads:
            result += [scheduler(spec, paths, binaries, member.name),
                       kwok(spec, paths, binaries, member.name),
                       node_agent(spec, paths, member.name)]
    return result


def stale_clients(plan: list[Component], running: set[str]) -> list[str]:
    """The running components to start again because the apiserver they talk to is about to
    be started again (it was stopped or crashed while they ran): a client-go watch that lost
    its apiserver retries with a backoff of up to 30 s per informer, so a member whose
    apiserver came back would take up to a minute more to run a new pod. Started afresh, they
    list at once."""
    returning = {c.cluster for c in plan
                 if c.name.endswith("/kube-apiserver") and c.name not in running}
    return [c.name for c in plan
            if c.cluster in returning and c.stage > 1 and c.name in running]


def component_kubeconfig(paths: LabPaths, cluster: str) -> Path:
    """The kubeconfig that one cluster's own components use (one context, admin identity)."""
    return paths.work(cluster) / "kubeconfig"


def node_names(member: MemberSpec) -> list[str]:
    return [f"{member.name}-node-{i}" for i in range(1, len(member.node_pods()) + 1)]


def nodes(member: MemberSpec, index: int, kubelet_port: int) -> list[dict[str, Any]]:
    """The kwok Node objects of a member: its capacity split over them, region and zone set,
    and loopback addresses of their own (see `node_address`) where kwok would give every
    node the same one, and their kubelet API at `kubelet_port` there."""
    result = []
    for i, (name, pods) in enumerate(zip(node_names(member), member.node_pods(), strict=True)):
        capacity = {"cpu": "32", "memory": "256Gi", "pods": str(pods)}
        result.append({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "type": "kwok",
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    REGION_LABEL: member.region,
                    ZONE_LABEL: member.zone,
                },
            },
            "status": {"capacity": capacity, "allocatable": capacity,
                       "addresses": [
                           {"type": "InternalIP", "address": node_address(index, i + 1)},
                           {"type": "ExternalIP", "address": node_external_address(index, i + 1)},
                           {"type": "Hostname", "address": name}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}}},
        })
    return result


def _b64(pem: bytes) -> str:
    return base64.b64encode(pem).decode()


def kubeconfig(servers: dict[str, str], current: str, *, ca: bytes, cert: bytes,
               key: bytes) -> dict[str, Any]:
    """A kubeconfig with one context per cluster (context name -> server URL), all with the
    lab's admin client certificate."""
    user = "federator-lab-admin"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}
            for name, server in servers.items()
        ],
        "users": [{"name": user, "user": {"client-certificate-data": _b64(cert),
                                          "client-key-data": _b64(key)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}
                     for name in servers],
        "current-context": current,
    }


def merge_kubeconfig(existing: dict[str, Any] | None, ours: dict[str, Any]) -> dict[str, Any]:
    """`ours` written over `existing`: entries of the same name replaced in place, every other
    entry (such as the `federation` context that `federator init` adds) and the current
    context kept."""
    if not existing:
        return ours
    merged = dict(existing)
    for section in ("clusters", "users", "contexts"):
        mine = {entry["name"]: entry for entry in ours[section]}
        entries = [mine.pop(e.get("name"), e) for e in existing.get(section) or []]
        merged[section] = entries + list(mine.values())
    merged["current-context"] = existing.get("current-context") or ours["current-context"]
    return merged
