"""Running the `federator` command as a user would: in a child process (what the lab tests
use: a process of its own, as a user's shell gives it), or in this one through `main(argv)`
(what the unit tests use where a child adds nothing but a second of imports)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from unittest import mock

from federator.cli import main


def federator(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "federator", *args], capture_output=True,
                          text=True, check=False, env={**os.environ, **(env or {})},
                          timeout=900)


def federator_here(*args: str, env: dict[str, str] | None = None
                   ) -> subprocess.CompletedProcess[str]:
    """`federator ARGS` through `main(argv)` in this process, with `env` added to the
    environment meanwhile: its exit code (argparse's exit too) and what it printed."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env or {}), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: a usage error, or --help
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(["federator", *args], code, out.getvalue(),
                                       err.getvalue())
