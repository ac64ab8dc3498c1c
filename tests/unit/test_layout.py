from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from federator.domain.naming import REGION_LABEL, ZONE_LABEL
from federator.lab import layout
from federator.lab.layout import LabPaths
from federator.lab.spec import LabSpec, default_members
from federator.lab.toolchain import Binaries

BINARIES = Binaries(*(Path("/bin") / n for n in (
    "kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok")))
SPEC = LabSpec(members=default_members(3, capacities={"member-2": 2}), base_port=30000)
PATHS = LabPaths(Path("/lab"))


def flag(argv: tuple[str, ...], name: str) -> str:
    values = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    assert len(values) == 1, (name, argv)
    return values[0]


def test_components_in_start_order() -> None:
    names = [c.name for c in layout.components(SPEC, PATHS, BINARIES)]
    assert names[0] == "etcd"
    assert names[1:5] == [f"{c}/kube-apiserver" for c in SPEC.cluster_names]
    assert "plane/kube-scheduler" not in names
    assert "plane/kwok" not in names
    assert len(names) == 1 + 4 + 1 + 3 * 4
    assert names.index("member-2/nodes") > names.index("member-2/kwok")


def test_every_cluster_has_its_own_etcd_prefix_port_and_key() -> None:
    apiservers = [c for c in layout.components(SPEC, PATHS, BINARIES)
                  if c.name.endswith("kube-apiserver")]
    for key in ("etcd-prefix", "secure-port", "service-account-key-file",
                "service-cluster-ip-range"):
        values = [flag(c.argv, key) for c in apiservers]
        assert len(set(values)) == len(values), key


def test_the_plane_runs_only_namespace_and_gc_controllers() -> None:
    plane = layout.controller_manager(SPEC, PATHS, BINARIES, "plane")
    assert flag(plane.argv, "controllers") == (
        "namespace,garbagecollector,clusterrole-aggregation,pvc-protection,pv-protection")
    member = layout.controller_manager(SPEC, PATHS, BINARIES, "member-1")
    assert not any(a.startswith("--controllers=") for a in member.argv)


def test_ports_of_components_match_the_spec() -> None:
    used = [p for c in layout.components(SPEC, PATHS, BINARIES) if "127.0.0.1" in c.hosts
            for p in c.ports]
    assert sorted(used) == sorted(SPEC.all_ports())


def test_each_node_is_reached_at_its_own_loopback_address() -> None:
    """The member's apiserver asks a node's kubelet API at its InternalIP and kwok's port;
    the node agent listens on every such address and carries it to the member's kwok."""
    relay = next(c for c in layout.components(SPEC, PATHS, BINARIES)
                 if c.name == "member-2/nodes")
    kwok_port = SPEC.ports("member-2").kwok
    nodes = layout.nodes(SPEC.member("member-2"), 2, kwok_port)
    internal = [next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")
                for n in nodes]
    assert internal == ["127.10.2.1", "127.10.2.2"] == list(relay.hosts)
    assert relay.ports == (kwok_port,)
    assert "--enable-crds=Logs" in next(c for c in layout.components(SPEC, PATHS, BINARIES)
                                        if c.name == "member-2/kwok").argv
    assert relay.argv[-2:] == (f"127.10.2.1:{kwok_port}=127.0.0.1:{kwok_port}",
                               f"127.10.2.2:{kwok_port}=127.0.0.1:{kwok_port}")
    assert [n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] for n in nodes] == [
        kwok_port, kwok_port]
    apiserver = next(c for c in layout.components(SPEC, PATHS, BINARIES)
                     if c.name == "member-2/kube-apiserver")
    assert flag(apiserver.argv, "kubelet-preferred-address-types") == "InternalIP"


def test_every_address_anything_connects_to_is_loopback() -> None:
    """What components listen on and are told to reach, and the nodes' addresses: all in
    127.0.0.0/8. Only pod and Service ranges are not (nothing connects to them: the lab has
    no pod network, and Kubernetes refuses loopback endpoints)."""
    found = []
    for component in layout.components(SPEC, PATHS, BINARIES):
        found += list(component.hosts)
        argv = [a for a in component.argv if not a.startswith(
            ("--cidr=", "--service-cluster-ip-range="))]
        found += re.findall(r"\b(\d+\.\d+\.\d+\.\d+)\b", " ".join(argv))
    for index, member in enumerate(SPEC.members, start=1):
        for node in layout.nodes(member, index, 1):
            found += [a["address"] for a in node["status"]["addresses"] if a["type"] != "Hostname"]
    assert len(found) > 20
    assert [a for a in found if not ipaddress.ip_address(a).is_loopback] == []


def test_nodes_carry_location_and_capacity() -> None:
    nodes = layout.nodes(SPEC.member("member-2"), 2, 30033)
    assert [n["status"]["capacity"]["pods"] for n in nodes] == ["1", "1"]
    assert [n["status"]["addresses"][1] for n in nodes] == [
        {"type": "ExternalIP", "address": "127.20.2.1"},
        {"type": "ExternalIP", "address": "127.20.2.2"}]
    for node in nodes:
        labels = node["metadata"]["labels"]
        assert labels[REGION_LABEL] == "us-west-2"
        assert labels[ZONE_LABEL] == "us-west-2b"
        assert node["metadata"]["annotations"][layout.KWOK_ANNOTATION] == "fake"


def test_kubeconfig_has_a_context_per_cluster() -> None:
    config = layout.kubeconfig({"plane": "https://127.0.0.1:1", "member-1": "https://x:2"},
                               "member-1", ca=b"CA", cert=b"C", key=b"K")
    assert [c["name"] for c in config["contexts"]] == ["plane", "member-1"]
    assert config["current-context"] == "member-1"
    assert config["clusters"][1]["cluster"]["server"] == "https://x:2"
    assert config["users"][0]["user"]["client-key-data"] == "Sw=="


def test_merge_kubeconfig_keeps_other_contexts() -> None:
    ours = layout.kubeconfig({"plane": "https://new:1"}, "plane", ca=b"", cert=b"", key=b"")
    existing = {"clusters": [{"name": "plane", "cluster": {"server": "https://old:1"}}],
                "users": [],
                "contexts": [{"name": "federation", "context": {"cluster": "plane"}},
                             {"name": "plane", "context": {"cluster": "plane"}}],
                "current-context": "federation"}
    merged = layout.merge_kubeconfig(existing, ours)
    assert [c["name"] for c in merged["contexts"]] == ["federation", "plane"]
    assert merged["clusters"][0]["cluster"]["server"] == "https://new:1"
    assert merged["current-context"] == "federation"
    assert layout.merge_kubeconfig(None, ours) == ours


def test_a_member_without_workloads_runs_only_what_join_needs() -> None:
    spec = LabSpec(members=default_members(2, workloads=False), base_port=30000)
    names = [c.name for c in layout.components(spec, PATHS, BINARIES)]
    assert "member-1/kube-scheduler" not in names and "member-1/kwok" not in names
    kcm = layout.controller_manager(spec, PATHS, BINARIES, "member-1")
    assert "serviceaccount-token" in flag(kcm.argv, "controllers")
    used = [p for c in layout.components(spec, PATHS, BINARIES) if "127.0.0.1" in c.hosts
            for p in c.ports]
    assert sorted(used) == sorted(spec.all_ports())


def test_a_returning_apiserver_has_its_own_clusters_clients_started_afresh() -> None:
    plan = layout.components(SPEC, PATHS, BINARIES)
    everything = {c.name for c in plan}
    assert layout.stale_clients(plan, everything) == []
    member = everything - {"member-2/kube-apiserver"}
    assert layout.stale_clients(plan, member) == [
        "member-2/kube-controller-manager", "member-2/kube-scheduler", "member-2/kwok",
        "member-2/nodes"]
    plane = everything - {"plane/kube-apiserver", "member-1/kwok"}
    assert layout.stale_clients(plan, plane) == ["plane/kube-controller-manager"]
    # etcd returning: the apiservers reconnect by themselves, nothing is restarted.
    assert layout.stale_clients(plan, everything - {"etcd"}) == []
    # A whole cluster away: nothing of it runs, nothing to stop.
    gone = {n for n in everything if not n.startswith("member-3/")}
    assert layout.stale_clients(plan, gone) == []
