"""The lab's clusters are real: pods get scheduled and run on kwok nodes; the plane keeps
templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from federator.domain.naming import REGION_LABEL, ZONE_LABEL
from federator.lab.process import ProcessLab
from federator.lab.spec import LabSpec
from tests.kube import get_json, kubectl

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
    assert get_json(kubeconfig, "plane", "replicasets", "-A")["items"] == []
    assert get_json(kubeconfig, "plane", "pods", "-A")["items"] == []
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
    target = f"{lab_spec.members[-1].name}/kube-apiserver"
    lab.stop_component(target)
    stopped = {s.name: s for s in lab.status()}[target]
    assert not stopped.running
    lab.up(lab_spec)
    assert {s.name: s for s in lab.status()}[target].healthy
    kubectl(kubeconfig, lab_spec.members[-1].name, "get", "--raw", "/readyz")
