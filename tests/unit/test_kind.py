"""The kind provider without Docker: its configuration and the commands it runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from federator.lab.errors import LabError
from federator.lab.kind import TEMPLATES, KindLab, kind_name, merge_kubeconfigs, render
from federator.lab.spec import LabSpec, default_members

SPEC = LabSpec(provider="kind", members=default_members(2, capacities={"member-2": 2}))


def kind_kubeconfig(name: str) -> dict[str, object]:
    ctx = f"kind-{name}"
    return {"apiVersion": "v1", "kind": "Config", "current-context": ctx,
            "clusters": [{"name": ctx, "cluster": {"server": f"https://127.0.0.1/{name}"}}],
            "users": [{"name": ctx, "user": {"client-key-data": name}}],
            "contexts": [{"name": ctx, "context": {"cluster": ctx, "user": ctx}}]}


class FakeKind:
    """Answers the commands KindLab runs as a Docker host with kind would, and records them."""

    def __init__(self, *, docker: bool = True, existing: Sequence[str] = ()) -> None:
        self.docker = docker
        self.clusters = list(existing)
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> str:
        argv = list(argv)
        self.calls.append(argv)
        if argv[:2] == ["docker", "info"]:
            if not self.docker:
                raise LabError("docker info", "Cannot connect to the Docker daemon")
            return "28.2.2\n"
        if argv[:3] == ["kind", "get", "clusters"]:
            return "".join(f"{c}\n" for c in self.clusters)
        if argv[:3] in (["kind", "create", "cluster"], ["kind", "export", "kubeconfig"]):
            name = argv[argv.index("--name") + 1]
            path = Path(argv[argv.index("--kubeconfig") + 1])
            path.write_text(yaml.safe_dump(kind_kubeconfig(name)))
            if argv[1] == "create":
                self.clusters.append(name)
            return ""
        if argv[:3] == ["kind", "delete", "cluster"]:
            self.clusters.remove(argv[argv.index("--name") + 1])
            return ""
        raise AssertionError(f"unexpected command {argv}")


def test_member_config_sets_location_capacity_and_port() -> None:
    config = yaml.safe_load(render(SPEC, "member-2", (TEMPLATES / "member.yaml").read_text()))
    assert config["name"] == "federator-member-2"
    assert config["networking"]["apiServerPort"] == SPEC.ports("member-2").apiserver
    node = config["nodes"][0]
    assert node["image"] == "kindest/node:v1.33.13"
    assert node["labels"] == {"topology.kubernetes.io/region": "us-west-2",
                              "topology.kubernetes.io/zone": "us-west-2b"}
    kubelet = yaml.safe_load(node["kubeadmConfigPatches"][0])
    assert kubelet["kind"] == "KubeletConfiguration"
    assert kubelet["maxPods"] == 2 + 10


def test_plane_config_limits_the_controllers() -> None:
    config = yaml.safe_load(render(SPEC, "plane", (TEMPLATES / "plane.yaml").read_text()))
    patches = [yaml.safe_load(p) for p in config["kubeadmConfigPatches"]]
    v1beta4 = next(p for p in patches if p["apiVersion"].endswith("v1beta4"))
    only = "namespace,garbagecollector,clusterrole-aggregation,pvc-protection,pv-protection"
    assert v1beta4["controllerManager"]["extraArgs"] == [{"name": "controllers", "value": only}]
    v1beta3 = next(p for p in patches if p["apiVersion"].endswith("v1beta3"))
    assert v1beta3["controllerManager"]["extraArgs"]["controllers"] == only


def test_up_creates_each_cluster_and_merges_kubeconfigs(tmp_path: Path) -> None:
    fake = FakeKind()
    KindLab(tmp_path, runner=fake, progress=lambda _: None).up(SPEC)
    creates = [c for c in fake.calls if c[:3] == ["kind", "create", "cluster"]]
    assert [c[c.index("--name") + 1] for c in creates] == [
        "federator-plane", "federator-member-1", "federator-member-2"]
    assert "--wait" not in creates[0] and "--wait" in creates[1]
    config = yaml.safe_load((tmp_path / "kubeconfig").read_text())
    assert [c["name"] for c in config["contexts"]] == ["plane", "member-1", "member-2"]
    assert config["current-context"] == "member-1"
    assert (tmp_path / "kind-member-2.yaml").exists()


def test_up_again_creates_nothing(tmp_path: Path) -> None:
    fake = FakeKind()
    KindLab(tmp_path, runner=fake, progress=lambda _: None).up(SPEC)
    fake.calls.clear()
    KindLab(tmp_path, runner=fake, progress=lambda _: None).up(SPEC)
    assert not [c for c in fake.calls if c[1] == "create"]


def test_up_without_docker_engine_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="--provider process"):
        KindLab(tmp_path, runner=FakeKind(docker=False)).up(SPEC)
    assert not (tmp_path / "kubeconfig").exists()


def test_down_deletes_only_the_labs_clusters(tmp_path: Path) -> None:
    fake = FakeKind(existing=["someone-elses"])
    lab = KindLab(tmp_path / "lab", runner=fake, progress=lambda _: None)
    lab.up(SPEC)
    lab.down()
    assert fake.clusters == ["someone-elses"]
    assert not (tmp_path / "lab").exists()


def test_merge_renames_contexts() -> None:
    merged = merge_kubeconfigs({"plane": kind_kubeconfig(kind_name("plane"))}, "plane")
    assert merged["contexts"] == [{"name": "plane",
                                   "context": {"cluster": "plane", "user": "plane-admin"}}]
    assert merged["users"][0]["user"] == {"client-key-data": "federator-plane"}
