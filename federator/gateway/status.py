"""Errors of the gateway's own, as Kubernetes Status objects (what kubectl prints)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def status_response(code: int, reason: str, message: str) -> web.Response:
    return web.Response(status=code, text=json.dumps(status_body(code, reason, message)),
                        content_type="application/json")
