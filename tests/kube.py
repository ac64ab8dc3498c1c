"""Running the real kubectl from tests."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any


def kubectl(kubeconfig: Path, context: str, *args: str, stdin: str | None = None,
            check: bool = True, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    argv = ["kubectl", f"--kubeconfig={kubeconfig}", f"--context={context}", *args]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False,
                          timeout=300, env={**os.environ, **(env or {})})
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {done.stderr}")
    return done


def get_json(kubeconfig: Path, context: str, *args: str) -> Any:
    return json.loads(kubectl(kubeconfig, context, "get", *args, "-o", "json").stdout)


def eventually(check: Any, what: str, attempts: int = 300) -> Any:
    """Poll `check` until it returns something truthy (every 0.2 s, a bounded number of
    times); what it returned."""
    for _ in range(attempts):
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")
