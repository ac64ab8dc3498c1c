"""Static Kubernetes manifests that federator installs (data files beside this module)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml


def load(name: str) -> list[dict[str, Any]]:
    """The objects of one manifest file, e.g. load("crds.yaml")."""
    text = resources.files(__package__).joinpath(name).read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]
