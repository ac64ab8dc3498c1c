"""serve's logs: every line JSON, those of libraries that log through the standard library
too (aiohttp's server logs a request it cannot parse with a traceback). In a child process:
configuring logging is process-wide, and would change the logging of every later test."""

from __future__ import annotations

import json
import subprocess
import sys

LIBRARY_AND_OURS = """
import logging
import structlog
from federator import logs
logs.configure("info", "json")
try:
    raise ValueError("bad request line")
except ValueError:
    logging.getLogger("aiohttp.server").exception("Error handling request from %s", "::1")
logging.getLogger("aiohttp.access").debug("below the level: not shown")
structlog.get_logger("federator.x").info("ours", cluster="member-1")
"""


def test_every_line_is_json_with_a_level_and_a_time() -> None:
    done = subprocess.run([sys.executable, "-c", LIBRARY_AND_OURS], capture_output=True,
                          text=True, check=True, timeout=60)
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(line["event"], line["level"]) for line in lines] == [
        ("Error handling request from ::1", "error"), ("ours", "info")]
    assert lines[0]["logger"] == "aiohttp.server"
    assert "ValueError: bad request line" in lines[0]["exception"]
    assert lines[1]["cluster"] == "member-1"
    assert all("timestamp" in line for line in lines)
