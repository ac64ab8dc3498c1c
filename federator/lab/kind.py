"""The `kind` provider: the same lab as kind clusters, for users who have a Docker engine.

Each cluster of the lab (the plane and every member) becomes one kind cluster named
`federator-<cluster>`, configured from the templates in deploy/kind/. The lab's kubeconfig
gets one context per cluster with the same names as the process provider's.
"""

from __future__ import annotations

import json
import shutil
import string
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from federator.lab.errors import LabError
from federator.lab.layout import PLANE_CONTROLLERS, pod_range, service_range
from federator.lab.spec import PLANE, LabSpec
from federator.lab.toolchain import Progress, echo

TEMPLATES = Path(__file__).resolve().parents[2] / "deploy" / "kind"
# Pods that a kind node runs for itself (control plane, CNI, kube-proxy, CoreDNS, storage).
SYSTEM_PODS = 10
WAIT = "300s"

Runner = Callable[[Sequence[str]], str]


def run(argv: Sequence[str]) -> str:
    """Run a command; its standard output, or a LabError with the last line it printed."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        hint = ("install kind (a Go module: sigs.k8s.io/kind)" if argv[0] == "kind"
                else f"install {argv[0]}")
        raise LabError(argv[0], f"`{argv[0]}` is not on PATH: {hint}") from exc
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise LabError(" ".join(argv[:3]), lines[-1] if lines else f"exited {done.returncode}")
    return done.stdout


def docker_engine_answers(runner: Runner = run) -> bool:
    """Whether a Docker engine (not just the client) is there to run kind's nodes."""
    try:
        return bool(runner(["docker", "info", "--format", "{{.ServerVersion}}"]).strip())
    except LabError:
        return False


def kind_name(cluster: str) -> str:
    return f"federator-{cluster}"


def node_image(k8s_version: str) -> str:
    return f"kindest/node:v{k8s_version}"


def render(spec: LabSpec, cluster: str, template: str) -> str:
    """The kind configuration of one cluster of the lab, from its template's text."""
    index = spec.cluster_names.index(cluster)
    values: dict[str, object] = {
        "kind_name": kind_name(cluster),
        "apiserver_port": spec.ports(cluster).apiserver,
        "service_subnet": service_range(index)[0],
        "pod_subnet": pod_range(index),
        "image": node_image(spec.k8s_version),
        "controllers": PLANE_CONTROLLERS,
    }
    if cluster != PLANE:
        member = spec.member(cluster)
        values |= {"region": member.region, "zone": member.zone,
                   "max_pods": member.pod_capacity + SYSTEM_PODS}
    return string.Template(template).substitute(values)


def merge_kubeconfigs(per_cluster: dict[str, dict[str, Any]], current: str) -> dict[str, Any]:
    """One kubeconfig from kind's, with each cluster's context, cluster and user renamed to
    the lab's cluster name."""
    merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "preferences": {},
                              "clusters": [], "users": [], "contexts": [],
                              "current-context": current}
    for name, config in per_cluster.items():
        context = next(c for c in config["contexts"]
                       if c["name"] == config.get("current-context"))["context"]
        cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u for u in config["users"] if u["name"] == context["user"])
        merged["clusters"].append({"name": name, "cluster": cluster["cluster"]})
        merged["users"].append({"name": f"{name}-admin", "user": user["user"]})
        merged["contexts"].append({"name": name,
                                   "context": {"cluster": name, "user": f"{name}-admin"}})
    return merged


class KindLab:
    """A lab of kind clusters. `runner` runs one command (tests pass a recorder)."""

    def __init__(self, root: Path, *, progress: Progress = echo, runner: Runner = run,
                 templates: Path = TEMPLATES) -> None:
        self.root = root
        self.progress = progress
        self.runner = runner
        self.templates = templates

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def _state(self) -> Path:
        return self.root / "state.json"

    def load(self) -> LabSpec | None:
        if not self._state.exists():
            return None
        return LabSpec.model_validate(json.loads(self._state.read_text())["spec"])

    def _template(self, cluster: str) -> str:
        path = self.templates / ("plane.yaml" if cluster == PLANE else "member.yaml")
        if not path.exists():
            raise LabError("kind", f"{path} is missing: run federator from its source checkout")
        return path.read_text()

    def up(self, spec: LabSpec) -> None:
        old = self.load()
        if old is not None and old != spec:
            raise LabError("up", f"a different kind lab is recorded in {self.root}; "
                           "run `federator lab down` first")
        if not docker_engine_answers(self.runner):
            raise LabError("kind", "no Docker engine answers (`docker info` failed): start "
                           "Docker, or use `--provider process`")
        self.root.mkdir(parents=True, exist_ok=True)
        self._state.write_text(json.dumps({"spec": spec.model_dump(mode="json")}))
        existing = set(self.runner(["kind", "get", "clusters"]).split())
        configs: dict[str, dict[str, Any]] = {}
        for cluster in spec.cluster_names:
            config_file = self.root / f"kind-{cluster}.yaml"
            own_kubeconfig = self.root / f"kind-{cluster}.kubeconfig"
            if kind_name(cluster) not in existing:
                config_file.write_text(render(spec, cluster, self._template(cluster)))
                self.progress(f"creating kind cluster {kind_name(cluster)}")
                argv = ["kind", "create", "cluster", "--name", kind_name(cluster),
                        "--config", str(config_file), "--kubeconfig", str(own_kubeconfig)]
                if cluster != PLANE:  # the plane's node never turns Ready: it runs no CNI
                    argv += ["--wait", WAIT]
                self.runner(argv)
            else:
                self.runner(["kind", "export", "kubeconfig", "--name", kind_name(cluster),
                             "--kubeconfig", str(own_kubeconfig)])
            configs[cluster] = yaml.safe_load(own_kubeconfig.read_text())
        merged = merge_kubeconfigs(configs, spec.members[0].name)
        self.kubeconfig.write_text(yaml.safe_dump(merged))
        self.kubeconfig.chmod(0o600)
        self.progress(f"lab is up: export KUBECONFIG={self.kubeconfig}")

    def down(self) -> None:
        spec = self.load()
        if spec is not None:
            existing = set(self.runner(["kind", "get", "clusters"]).split())
            for cluster in reversed(spec.cluster_names):
                if kind_name(cluster) in existing:
                    self.progress(f"deleting kind cluster {kind_name(cluster)}")
                    self.runner(["kind", "delete", "cluster", "--name", kind_name(cluster)])
        shutil.rmtree(self.root, ignore_errors=True)
        self.progress(f"lab is down; removed {self.root}")

    def status(self) -> list[tuple[str, bool, str]]:
        """(cluster, healthy, detail) for each cluster of the recorded lab."""
        spec = self.load()
        if spec is None:
            return []
        existing = set(self.runner(["kind", "get", "clusters"]).split())
        result = []
        for cluster in spec.cluster_names:
            if kind_name(cluster) not in existing:
                result.append((cluster, False, "kind cluster missing"))
                continue
            try:
                answer = self.runner(["kubectl", f"--kubeconfig={self.kubeconfig}",
                                      f"--context={cluster}", "get", "--raw", "/readyz"])
                result.append((cluster, answer.strip() == "ok", answer.strip()))
            except LabError as exc:
                result.append((cluster, False, exc.message))
        return result
