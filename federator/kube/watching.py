"""List, then watch, for as long as it runs: relists on 410 Gone, backs off on errors,
and hands each change of the collection to a handler, deletions seen across relists too.
Shared reflectors: one list and watch of a collection for every controller that follows it."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from federator.kube.client import KubeClient, KubeError, Object

log = structlog.get_logger(__name__)

Handler = Callable[[str, Object], Awaitable[None]]  # ("ADDED" | "MODIFIED" | "DELETED", obj)
# Lists and watches of metadata only (names, labels, annotations): far less to hold.
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
Key = tuple[str, str]


def _key(obj: Object) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


def _slim(obj: Object) -> Object:
    """An object as a mirror keeps it: without its managed fields (who set which field: none
    of federator's business, and often a third of the object), and its strings shared."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return share_strings(obj)


def share_strings(obj: Object) -> Object:
    """`obj`, changed in place so that each of its strings (keys and values) is the one
    interned copy of it. A JSON decoder makes every string anew; mirrors hold the same
    ones over and over: the keys of every object, names, namespaces, label values, and an
    object's content in the plane and again in each member's copy (a ConfigMap's data,
    a Deployment's template). Interned, each is held once, for as long as anything holds
    it (measured: a ConfigMap with 1 KiB of data in the plane and three members, 14 KiB
    parsed, 5 KiB shared, for the same time to decode). Iterative: no depth limit."""
    pending: list[dict[str, Any] | list[Any]] = [obj]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            items = list(value.items())
            value.clear()
            for key, item in items:
                value[sys.intern(key)] = _shared(item, pending)
        else:
            for index, item in enumerate(value):
                value[index] = _shared(item, pending)
    return obj


def _shared(value: Any, pending: list[dict[str, Any] | list[Any]]) -> Any:
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict | list):
        pending.append(value)
    return value


def _older(obj: Object, than: Object | None) -> bool:
    """Whether `obj` is an older version than `than` of the same object. Both come from one
    apiserver, whose resourceVersions (etcd revisions) grow; anything else counts as newer."""
    if than is None:
        return False
    mine = str(obj["metadata"].get("resourceVersion", ""))
    theirs = str(than["metadata"].get("resourceVersion", ""))
    return mine.isdigit() and theirs.isdigit() and int(mine) < int(theirs)


class Reflector:
    """Mirrors one collection (`url`, e.g. every Cluster) in `objects` and calls `handler`."""

    def __init__(self, client: KubeClient, url: str, handler: Handler, *,
                 label_selector: str | None = None, field_selector: str | None = None,
                 metadata_only: bool = False, keep: bool = True,
                 backoff_max: float = 30.0, absent_is_empty: bool = False) -> None:
        self.client = client
        # True: a list the apiserver forbids (403) or does not serve (404: a custom resource
        # whose definition has not arrived) counts as an empty, synced collection, listed
        # again with backoff until it is there; `denied` says why meanwhile, `missing` is
        # True while it is not served.
        self.absent_is_empty = absent_is_empty
        self.denied: str | None = None
        self.missing = False
        self._awake = asyncio.Event()
        self.keep = keep  # False: hand changes on without holding the collection (a relist
        # then hands every object on again, as ADDED, and no deletion)
        self.metadata_only = metadata_only
        self.url = url
        self.handler = handler
        self.selectors = {k: v for k, v in (("labelSelector", label_selector),
                                            ("fieldSelector", field_selector)) if v}
        self.backoff_max = backoff_max
        self.objects: dict[Key, Object] = {}
        self.synced = asyncio.Event()
        self.watching = False  # a watch request of its own is open now

    def _opened(self) -> None:
        self.watching = True

    def remember(self, obj: Object) -> None:
        """An object as a write just returned it, before its watch event arrives: what is
        decided meanwhile sees it, and older events do not take its place."""
        key = _key(_slim(obj))
        meta = obj.get("metadata") or {}
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return  # the write deleted it: its DELETED event may even have come first
        if not _older(obj, self.objects.get(key)):
            self.objects[key] = obj

    async def _list(self) -> str:
        answer: dict[str, Any] = await self.client.get(
            self.url, accept=METADATA_LIST if self.metadata_only else None, **self.selectors)
        kind = str(answer.get("kind", "")).removesuffix("List")
        for item in answer.get("items") or []:  # items of a list carry no kind of their own
            _slim(item)
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", answer.get("apiVersion"))
        fresh = {_key(item): item for item in answer.get("items") or []}
        if not self.keep:
            for obj in fresh.values():
                await self.handler("ADDED", obj)
            self.synced.set()
            return str(answer["metadata"]["resourceVersion"])
        for key in list(self.objects):
            if key not in fresh:
                await self.handler("DELETED", self.objects.pop(key))
        for key, obj in fresh.items():
            old = self.objects.get(key)
            self.objects[key] = obj
            if old is None:
                await self.handler("ADDED", obj)
            elif old["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                await self.handler("MODIFIED", obj)
        self.synced.set()
        return str(answer["metadata"]["resourceVersion"])

    def wake(self) -> None:
        """Try again now, not after the backoff: what was absent may be there."""
        self._awake.set()

    async def _absent(self, exc: KubeError) -> None:
        """The list is forbidden or not served: what was known of the collection is gone
        (as a relist would find it) and it counts as synced, empty."""
        if self.denied is None:
            (log.warning if exc.code == 403 else log.info)(
                "list " + ("forbidden" if exc.code == 403 else "not served") +
                ": counted as empty until it is there", url=self.url,
                server=self.client.server, error=exc.message)
        self.denied = exc.message
        self.missing = exc.code == 404
        for key in list(self.objects):
            await self.handler("DELETED", self.objects.pop(key))
        self.synced.set()

    def _recovered(self, failing: int) -> int:
        if failing:
            log.info("watch resumed", url=self.url, server=self.client.server,
                     failures=failing)
        return 0

    async def run(self) -> None:
        _RUNNING.add(self)
        try:
            await self._run()
        finally:
            _RUNNING.discard(self)
            self.watching = False

    async def _run(self) -> None:
        delay = 0.5
        failing = 0
        resource_version: str | None = None
        while True:
            self.watching = False
            try:
                if resource_version is None:
                    resource_version = await self._list()
                    self.denied = None
                    self.missing = False
                    failing = self._recovered(failing)
                async for event in self.client.watch(
                        self.url, resource_version=resource_version, extra=self.selectors,
                        accept=METADATA if self.metadata_only else None,
                        opened=self._opened):
                    failing = self._recovered(failing)
                    kind, obj = event["type"], _slim(event["object"])
                    resource_version = str(obj["metadata"]["resourceVersion"])
                    if kind == "BOOKMARK":
                        continue
                    if self.keep:
                        if kind == "DELETED":
                            self.objects.pop(_key(obj), None)
                        elif _older(obj, self.objects.get(_key(obj))):
                            continue  # a write of ours already brought a newer version
                        else:
                            self.objects[_key(obj)] = obj
                    await self.handler(kind, obj)
                delay = 0.5
            except KubeError as exc:
                if exc.code == 410:
                    resource_version = None  # too old: list again
                    continue
                if (exc.code in (403, 404) and self.absent_is_empty
                        and resource_version is None):
                    await self._absent(exc)
                    failing += 1
                else:
                    self._failed(exc, failing, delay)
                    failing += 1
                    if exc.code == 404:
                        resource_version = None  # no longer served: list to know
            except Exception:  # a mirror must not die quietly: say why, start over
                log.exception("list or watch broke", url=self.url, server=self.client.server,
                              retry_in=round(delay, 1))
                resource_version = None
            else:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._awake.wait(),
                                       delay * (0.5 + random.random()))  # noqa: S311
            delay = 0.5 if self._awake.is_set() else min(delay * 2, self.backoff_max)
            self._awake.clear()

    def _failed(self, exc: KubeError, failing: int, delay: float) -> None:
        """The first failure in a row is a warning; its repeats (a member down for a while,
        watched by many reflectors) only debug lines."""
        (log.warning if failing == 0 else log.debug)(
            "watch failed", url=self.url, server=self.client.server, error=str(exc),
            retry_in=round(delay, 1))


_RUNNING: weakref.WeakSet[Reflector] = weakref.WeakSet()


def unwatched(client: KubeClient) -> list[str]:
    """The collections of `client` that a running Reflector follows without an open watch
    (listing, or waiting to try again after a failure), but for those it may not or cannot
    list (counted as empty, tried again with backoff by design)."""
    return sorted(r.url for r in list(_RUNNING)
                  if r.client is client and not r.watching and r.denied is None)


@dataclass
class _Shared:
    reflector: Reflector
    handlers: list[Handler]
    task: asyncio.Task[None] | None = None


class SharedReflectors:
    """Reflectors that the controllers of one process share: one list and watch per (client,
    collection, selectors, shape), run while anyone follows it. Each follower hears every
    change; one that comes once the collection is listed first hears what is there, as
    ADDED."""

    def __init__(self) -> None:
        self._shared: dict[tuple[Any, ...], _Shared] = {}

    def __len__(self) -> int:
        return len(self._shared)

    def subscribe(self, client: KubeClient, url: str, handler: Handler, *,
                  label_selector: str | None = None, absent_is_empty: bool = False
                  ) -> Subscription:
        key = (client, url, label_selector, absent_is_empty)
        shared = self._shared.get(key)
        if shared is None:
            handlers: list[Handler] = []

            async def everyone(kind: str, obj: Object) -> None:
                for each in list(handlers):
                    await each(kind, obj)

            shared = self._shared[key] = _Shared(
                Reflector(client, url, everyone, label_selector=label_selector,
                          absent_is_empty=absent_is_empty), handlers)
        return Subscription(self, key, shared, handler)

    def _left(self, key: tuple[Any, ...], shared: _Shared) -> None:
        if not shared.handlers and self._shared.get(key) is shared:
            del self._shared[key]
            if shared.task is not None:
                shared.task.cancel()


class Subscription:
    """One follower of a shared reflector: `reflector` holds the collection; `run` hears its
    changes until cancelled (the last follower to go stops the watch)."""

    def __init__(self, owner: SharedReflectors, key: tuple[Any, ...], shared: _Shared,
                 handler: Handler) -> None:
        self._owner = owner
        self._key = key
        self._shared = shared
        self.handler = handler
        self.reflector = shared.reflector

    async def run(self) -> None:
        shared = self._shared
        shared.handlers.append(self.handler)
        if shared.task is None or shared.task.done():
            shared.task = asyncio.create_task(shared.reflector.run())
        try:
            if shared.reflector.synced.is_set():
                for obj in list(shared.reflector.objects.values()):
                    await self.handler("ADDED", obj)
            await asyncio.shield(shared.task)
        finally:
            shared.handlers.remove(self.handler)
            self._owner._left(self._key, shared)
