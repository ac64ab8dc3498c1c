from __future__ import annotations

import os
from pathlib import Path

import pytest

from federator.lab.errors import LabError
from federator.lab.toolchain import (
    Toolchain,
    etcd_recipe,
    kubernetes_recipe,
    parse_go_version,
    required_version,
    staging_modules,
    version_ldflags,
)

GO_MOD = """module k8s.io/kubernetes

go 1.24.0

require (
\tgithub.com/spf13/cobra v1.8.1
\tgo.etcd.io/etcd/client/v3 v3.5.21
\tk8s.io/api v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/kube-openapi => k8s.io/kube-openapi v0.0.0-2025
)
"""


def test_staging_modules_are_read_from_the_replace_block() -> None:
    assert staging_modules(GO_MOD) == ["k8s.io/api", "k8s.io/client-go"]


def test_required_version() -> None:
    assert required_version(GO_MOD, "go.etcd.io/etcd/client/v3") == "v3.5.21"
    assert required_version(GO_MOD, "go.etcd.io/etcd/server/v3") is None


def test_kubernetes_recipe_pins_every_staging_module() -> None:
    recipe = kubernetes_recipe("1.33.13", GO_MOD)
    assert "require k8s.io/kubernetes v1.33.13" in recipe.go_mod
    assert "\tk8s.io/api => k8s.io/api v0.33.13" in recipe.go_mod
    assert "\tk8s.io/client-go => k8s.io/client-go v0.33.13" in recipe.go_mod
    assert "kube-openapi =>" not in recipe.go_mod
    assert recipe.name == "kubernetes-v1.33.13"


def test_ldflags_set_the_version_kubectl_reads() -> None:
    flags = version_ldflags("1.33.13")
    assert "-X k8s.io/component-base/version.gitVersion=v1.33.13" in flags
    assert "-X k8s.io/component-base/version.gitMinor=33" in flags


def test_recipe_stamp_changes_with_the_recipe() -> None:
    assert etcd_recipe("v3.5.21").stamp != etcd_recipe("v3.5.22").stamp
    assert etcd_recipe("v3.5.21").stamp == etcd_recipe("v3.5.21").stamp


def test_parse_go_version() -> None:
    assert parse_go_version("go version go1.26.8 linux/amd64") == (1, 26)
    assert parse_go_version("nonsense") is None


def test_missing_go_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDERATOR_GO", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LabError) as caught:
        Toolchain("1.33.13", root=tmp_path, progress=lambda _: None).ensure()
    assert "Go toolchain is not installed" in str(caught.value)
    assert "FEDERATOR_GO" in str(caught.value)
    assert os.linesep not in str(caught.value)
