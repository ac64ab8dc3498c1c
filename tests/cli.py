"""Running the `federator` command as a user would, in a child process."""

from __future__ import annotations

import os
import subprocess
import sys


def federator(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "federator", *args], capture_output=True,
                          text=True, check=False, env={**os.environ, **(env or {})},
                          timeout=900)
