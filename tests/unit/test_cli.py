from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.cli import federator_here as federator


def test_unknown_provider_is_one_clear_line(tmp_path: Path) -> None:
    done = federator("lab", "--dir", str(tmp_path), "up", "--provider", "vagrant")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "federator: error: unknown provider 'vagrant': use --provider process or "
        "--provider kind"
    )
    assert not (tmp_path / "state.json").exists()


def test_unsupported_version_names_the_flag(tmp_path: Path) -> None:
    done = federator("lab", "--dir", str(tmp_path), "up", "--k8s-version", "1.30.2",
                     "--provider", "process")
    assert done.returncode == 1
    assert done.stderr.startswith("federator: error: --k8s-version: Kubernetes 1.30.2")
    assert len(done.stderr.strip().splitlines()) == 1


def test_missing_go_is_one_clear_line(tmp_path: Path) -> None:
    done = federator("lab", "build", env={"PATH": str(tmp_path), "FEDERATOR_GO": "",
                                          "FEDERATOR_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "the Go toolchain is not installed" in lines[0]


def test_env_without_a_lab_says_how_to_start_one(tmp_path: Path) -> None:
    done = federator("lab", "--dir", str(tmp_path / "none"), "env")
    assert done.returncode == 1
    assert "federator lab up" in done.stderr


def test_down_without_a_lab_is_fine(tmp_path: Path) -> None:
    done = federator("lab", "--dir", str(tmp_path / "none"), "down")
    assert done.returncode == 0
    assert "nothing to stop" in done.stdout


def test_bad_capacity_names_the_format(tmp_path: Path) -> None:
    done = federator("lab", "--dir", str(tmp_path), "up", "--capacity", "member-2")
    assert done.returncode == 2
    assert "CLUSTER=PODS" in done.stderr


def test_config_file_errors_name_the_field(tmp_path: Path) -> None:
    config = tmp_path / "lab.yaml"
    config.write_text("members:\n  - {name: a, region: r, zone: z, nodes: 0}\n")
    done = federator("lab", "--dir", str(tmp_path), "up", "--config", str(config))
    assert done.returncode == 1
    assert "members.0.nodes: Input should be greater than or equal to 1" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_shipped_lab_config_is_valid() -> None:
    import yaml

    from federator.lab.spec import LabSpec

    spec = LabSpec.model_validate(yaml.safe_load(Path("config/lab.yaml").read_text()))
    assert [m.name for m in spec.members] == ["member-1", "member-2", "member-3"]


def test_an_empty_cluster_name_is_named(tmp_path: Path) -> None:
    done = federator("--kubeconfig", str(tmp_path / "none"), "unjoin", "")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "federator: error: NAME: '' is not a valid name: use at most 63 lower-case letters, "
        "digits and '-', starting and ending with a letter or digit")


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`federator lab env | head -0`: the reader is gone before anything is written."""
    (tmp_path / "state.json").write_text('{"spec": {"provider": "process"}}')
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "federator", "lab", "--dir", str(tmp_path),
                               "env"], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              check=False, timeout=60)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")
