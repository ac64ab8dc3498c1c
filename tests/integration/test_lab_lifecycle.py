"""`lab up` and `lab down` of a lab of its own: nothing is left behind, bad input is one line."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from federator.lab.process import ProcessLab, port_in_use
from federator.lab.spec import LabSpec, default_members
from tests.cli import federator
from tests.integration.conftest import TEST_BASE_PORT
from tests.kube import eventually, get_json, kubectl
from tests.serving import Serve

pytestmark = pytest.mark.integration

BASE_PORT = TEST_BASE_PORT + 1000  # past the session's lab, whatever its base port


def listening_ports() -> set[int]:
    """Ports with a socket in LISTEN state on this machine, read from the kernel."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_down_leaves_no_process_and_no_listening_port(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    spec = LabSpec(base_port=BASE_PORT, members=default_members(1))
    lab = ProcessLab(root, progress=lambda _: None)
    lab.up(spec)
    try:
        _up_stop_pause_status_down(lab, root, spec)
    finally:  # whatever failed, nothing is left running
        if root.exists():
            lab.down()


def _up_stop_pause_status_down(lab: ProcessLab, root: Path, spec: LabSpec) -> None:
    _, records = lab.load()
    # etcd, 2 apiservers, plane kcm, member kcm, scheduler, kwok, nodes
    assert len(records) == 8
    assert all(r.alive() for r in records.values())
    ours = set(spec.all_ports())
    assert ours & listening_ports()
    # A component stopped, then a bare `lab up` (as `lab stop` says) starts it again with
    # the running lab's own spec, and names the ports it takes.
    stopped = federator("lab", "--dir", str(root), "stop", "member-1/kube-apiserver")
    assert "`federator lab up` starts it again" in stopped.stdout
    again = federator("lab", "--dir", str(root), "up")
    assert again.returncode == 0, again.stderr
    assert f"loopback ports {min(ours)}-{max(ours)}" in again.stdout
    _, records = lab.load()
    assert len(records) == 8 and all(r.alive() for r in records.values())
    # pause and resume: a hung process (stopped, state T), then running again.
    pid = records["member-1/kube-apiserver"].pid

    def state() -> str:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]

    assert federator("lab", "--dir", str(root), "pause", "member-1/kube-apiserver"
                     ).returncode == 0
    assert state() == "T"
    assert federator("lab", "--dir", str(root), "resume", "member-1/kube-apiserver"
                     ).returncode == 0
    assert state() != "T"

    # status and env find the lab by FEDERATOR_LAB_DIR as well as by --dir.
    status = federator("lab", "status", env={"FEDERATOR_LAB_DIR": str(root)})
    assert status.returncode == 0, status.stderr
    rows = {line.split()[0]: line.split() for line in status.stdout.splitlines()[1:]}
    assert set(records) | {"total"} == set(rows)
    assert all(rows[name][2] == "running" and rows[name][-1] == "ok" for name in records)
    assert rows["total"][-1] == "MiB" and int(rows["total"][-2]) > 0
    env = federator("lab", "env", env={"FEDERATOR_LAB_DIR": str(root)})
    assert env.stdout.strip() == f"export KUBECONFIG={root / 'kubeconfig'}"

    done = federator("lab", "--dir", str(root), "down")

    assert done.returncode == 0, done.stderr
    assert [name for name, r in records.items() if r.alive()] == []
    assert ours & listening_ports() == set()
    assert not root.exists()


def test_a_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", BASE_PORT + 100))
        blocker.listen()
        done = federator("lab", "--dir", str(root), "up", "--clusters", "1",
                         "--provider", "process", "--base-port", str(BASE_PORT + 100))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port {BASE_PORT + 100} is already in use" in lines[0]
    assert "--base-port" in lines[0]
    _, records = ProcessLab(root).load()
    assert [n for n, r in records.items() if r.alive()] == []
    assert not port_in_use(BASE_PORT + 110)  # the plane's apiserver port: never started


def test_a_kubernetes_version_that_does_not_exist(tmp_path: Path) -> None:
    done = federator("lab", "build", "--k8s-version", "1.33.99",
                     env={"FEDERATOR_CACHE": str(tmp_path)})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Kubernetes 1.33.99 does not exist" in lines[0]
    assert "1.33.13" in lines[0]


def test_a_federation_of_another_name(tmp_path: Path) -> None:
    """`init --federation-name blue`: the name is the plane's, a second init under another
    name is refused naming it (nothing changed), and copies in members carry it."""
    root = tmp_path / "lab"
    lab = ProcessLab(root, progress=lambda _: None)
    lab.up(LabSpec(base_port=BASE_PORT, members=default_members(1)))
    kubeconfig = root / "kubeconfig"
    try:
        def fed(*args: str) -> subprocess.CompletedProcess[str]:
            return federator("--kubeconfig", str(kubeconfig), *args)

        def named() -> Any:
            return get_json(kubeconfig, "plane", "configmap", "-n", "federation-system",
                            "federator")

        done = fed("init", "--plane-context", "plane", "--federation-name", "blue")
        assert done.returncode == 0, done.stderr
        before = named()
        assert before["data"]["federationName"] == "blue"
        again = fed("init", "--plane-context", "plane")
        assert again.returncode == 1
        assert ("the plane already holds federation 'blue'; run init with --federation-name "
                "blue") in again.stderr
        assert "Traceback" not in again.stderr
        assert named()["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert fed("join", "member-1").returncode == 0
        serving = Serve(kubeconfig, "blue", tmp_path / "serve.log",
                        {"FEDERATOR_DNS__ENABLED": "false"})
        try:
            kubectl(kubeconfig, "federation", "create", "configmap", "painted",
                    "--from-literal=a=1")
            copy = eventually(lambda: get_json(kubeconfig, "member-1", "configmaps", "-l",
                                               "federator.io/managed-by=blue")["items"],
                              "a copy of painted managed by blue")
            assert [c["metadata"]["name"] for c in copy] == ["painted"]
        finally:
            assert serving.stop() == 0
    finally:
        lab.down()
