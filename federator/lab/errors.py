"""The one error type of the lab: a step that failed, what to do, and where the log is."""

from __future__ import annotations

from pathlib import Path


class LabError(Exception):
    """A lab step failed. `str()` is one line for the user: what is wrong and what to do."""

    def __init__(self, step: str, message: str, log: Path | None = None) -> None:
        self.step = step
        self.message = message
        self.log = log
        text = f"{step}: {message}"
        if log is not None:
            text += f" (log: {log})"
        super().__init__(text)
