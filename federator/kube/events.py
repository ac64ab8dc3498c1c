"""Posting Events to an apiserver. Best effort: a lost event never stops a reconcile."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import socket
from collections.abc import Iterable
from typing import Any

import structlog

from federator.domain.events import EventType, event
from federator.kube.client import KubeClient, KubeError, Object
from federator.kube.resources import EVENTS, path

log = structlog.get_logger(__name__)


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    """Posts events in the background, so that recording one never slows a reconcile; a
    backlog past `backlog` events is dropped (and logged), not queued without end."""

    def __init__(self, client: KubeClient, instance: str | None = None, *, senders: int = 4,
                 backlog: int = 10000) -> None:
        self.client = client
        self.instance = instance or socket.gethostname()
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(backlog)
        self._senders = senders
        self._tasks: list[asyncio.Task[None]] = []

    async def record(self, obj: Object, type_: EventType, reason: str, message: str, *,
                     clusters: Iterable[str] = ()) -> None:
        body = event(obj, type_, reason, message, now=now_rfc3339(), instance=self.instance,
                     clusters=clusters)
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._send()) for _ in range(self._senders)]
        try:
            self._queue.put_nowait(body)
        except asyncio.QueueFull:
            log.warning("event dropped: too many waiting", reason=reason,
                        object=obj["metadata"]["name"])

    async def _send(self) -> None:
        while True:
            body = await self._queue.get()
            try:
                await self.client.create(path(EVENTS, namespace=body["metadata"]["namespace"]),
                                         body)
            except KubeError as exc:
                log.warning("event not recorded", reason=body["reason"],
                            object=body["involvedObject"]["name"], error=str(exc))
            finally:
                self._queue.task_done()

    async def close(self) -> None:
        """Send what is waiting (for a moment at most), then stop."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout=5)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
