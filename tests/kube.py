"""Running the real kubectl from tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def kubectl(kubeconfig: Path, context: str, *args: str, stdin: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["kubectl", f"--kubeconfig={kubeconfig}", f"--context={context}", *args]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False,
                          timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {done.stderr}")
    return done


def get_json(kubeconfig: Path, context: str, *args: str) -> Any:
    return json.loads(kubectl(kubeconfig, context, "get", *args, "-o", "json").stdout)
