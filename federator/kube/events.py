"""Posting Events to an apiserver. Best effort: a lost event never stops a reconcile."""

from __future__ import annotations

import datetime
import socket

import structlog

from federator.domain.events import EventType, event
from federator.kube.client import KubeClient, KubeError, Object
from federator.kube.resources import EVENTS, path

log = structlog.get_logger(__name__)


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, client: KubeClient, instance: str | None = None) -> None:
        self.client = client
        self.instance = instance or socket.gethostname()

    async def record(self, obj: Object, type_: EventType, reason: str, message: str) -> None:
        body = event(obj, type_, reason, message, now=now_rfc3339(), instance=self.instance)
        try:
            await self.client.create(path(EVENTS, namespace=body["metadata"]["namespace"]), body)
        except KubeError as exc:
            log.warning("event not recorded", reason=reason, object=obj["metadata"]["name"],
                        error=str(exc))
