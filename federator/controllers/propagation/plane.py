"""The federated kinds, from the plane's discovery (read again whenever a
CustomResourceDefinition changes, and every DISCOVERY_PERIOD), and the plane's objects of
each: one watch per kind. What the plane's definitions say of a custom kind (its scale
subresource), and writes to plane objects."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from federator.domain import kinds
from federator.domain import replicas as replica_rules
from federator.domain.propagation import STATUS_KINDS, group_kind_of
from federator.kube.client import KubeClient, KubeError, Object
from federator.kube.discovery import discover
from federator.kube.resources import Resource, path
from federator.kube.watching import Handler, Reflector

from .memory import Key

log = structlog.get_logger(__name__)

CRD_KIND = "CustomResourceDefinition.apiextensions.k8s.io"
DISCOVERY_PERIOD = 60.0  # discovery is read again this often (and whenever a CRD changes)


def key_of(obj: Object) -> Key:
    meta = obj["metadata"]
    return (group_kind_of(obj), meta.get("namespace", ""), meta["name"])


class Plane:
    """The federated kinds and the plane's objects of each. `added` and `dropped` hear of
    kinds that come and go."""

    def __init__(self, client: KubeClient, exclude: tuple[str, ...], on_change: Handler,
                 added: Callable[[str], None], dropped: Callable[[str], None]) -> None:
        self.client = client
        self.exclude = exclude
        self.on_change = on_change
        self.added = added
        self.dropped = dropped
        self.resources: dict[str, Resource] = {}
        self.views: dict[str, Reflector] = {}
        self.tasks: dict[str, asyncio.Future[None]] = {}
        self.rediscover = asyncio.Event()

    def url(self, kind: str, namespace: str, name: str | None = None,
            subresource: str | None = None) -> str:
        return path(self.resources[kind], namespace=namespace or None, name=name,
                    subresource=subresource)

    def get(self, key: Key) -> Object | None:
        view = self.views.get(key[0])
        return None if view is None else view.objects.get((key[1], key[2]))

    def holds(self, key: Key) -> bool:
        return self.get(key) is not None

    def objects(self) -> list[Object]:
        return [obj for view in self.views.values() for obj in view.objects.values()]

    # kinds -------------------------------------------------------------------------------
    async def discover(self) -> None:
        """Read the plane's discovery and follow it: watch the kinds that came, stop
        watching those that went. A group whose discovery cannot be read keeps the kinds it
        had (an aggregated API down for a moment takes nothing away)."""
        found = await discover(self.client)
        chosen = {r.group_kind: Resource(r.group, r.version, r.plural, r.namespaced)
                  for r in kinds.federated(found.resources, self.exclude)}
        for kind, resource in self.resources.items():
            if kind not in chosen and (resource.group in found.failed
                                       or self.definition(kind) is not None):
                # Kept: discovery of its group failed, or its definition is still in the
                # plane (being deleted: its custom resources' finalizers are still ours
                # to lift).
                chosen[kind] = resource
        for group, why in sorted(found.failed.items()):
            log.warning("discovery of a group failed: its kinds are kept as they were",
                        group=group, error=why)
        for kind in [k for k, r in self.resources.items() if chosen.get(k) != r]:
            self._drop(kind)
        for kind, resource in chosen.items():
            if kind not in self.resources:
                self._add(kind, resource)

    def _add(self, kind: str, resource: Resource) -> None:
        log.info("kind federated", kind=kind, version=resource.version)
        self.resources[kind] = resource
        view = self.views[kind] = Reflector(self.client, path(resource), self.on_change)
        self.tasks[kind] = asyncio.ensure_future(view.run())
        self.added(kind)

    def _drop(self, kind: str) -> None:
        log.info("kind no longer served by the plane: not federated", kind=kind)
        del self.resources[kind]
        del self.views[kind]
        self.tasks.pop(kind).cancel()
        self.dropped(kind)

    async def following(self) -> None:
        """Discovery again whenever a CustomResourceDefinition changes (a moment later:
        they come in bursts), and every DISCOVERY_PERIOD."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.rediscover.wait(), DISCOVERY_PERIOD)
            await asyncio.sleep(0.5)
            self.rediscover.clear()
            try:
                await self.discover()
            except KubeError as exc:
                log.warning("discovery failed: the kinds are kept as they were",
                            error=str(exc))

    def stop(self) -> list[asyncio.Future[None]]:
        """Cancel every watch of the plane; what to await for their ends."""
        for task in self.tasks.values():
            task.cancel()
        return list(self.tasks.values())

    # what definitions say ----------------------------------------------------------------
    def definition(self, kind: str) -> Object | None:
        """The plane's CustomResourceDefinition of a custom kind."""
        resource = self.resources.get(kind)
        definitions = self.views.get(CRD_KIND)
        if resource is None or definitions is None:
            return None
        return definitions.objects.get(("", f"{resource.plural}.{resource.group}"))

    def scale(self, kind: str) -> Object | None:
        """The scale subresource a custom kind's definition declares, if any."""
        definition = self.definition(kind)
        if definition is None:
            return None
        scale = replica_rules.scale_of(definition, self.resources[kind].version)
        return dict(scale) if scale is not None else None

    def summed(self, kind: str) -> bool:
        """Whether a kind's status is summed from its members' copies (so its reconcile is
        never skipped as settled: a copy's status change is news)."""
        return kind in STATUS_KINDS or kind == replica_rules.JOB or self.scale(kind) is not None

    # writes ------------------------------------------------------------------------------
    async def patch(self, obj: Object, url: str, patch: Object) -> Object:
        """Merge-patch a plane object (or its status); the result, also remembered, so that
        reconciles until its watch event arrives do not act on the version before."""
        patched: Object = await self.client.merge_patch(url, patch)
        patched.setdefault("kind", obj["kind"])
        patched.setdefault("apiVersion", obj["apiVersion"])
        view = self.views.get(group_kind_of(patched))
        if view is not None:
            view.remember(patched)
        return patched

    async def set_finalizers(self, obj: Object, finalizers: list[str]) -> Object | None:
        """The object with these finalizers, or None if it changed meanwhile (409)."""
        meta = obj["metadata"]
        try:
            return await self.patch(obj, self.url(*key_of(obj)), {"metadata": {
                "finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}})
        except KubeError as exc:
            if exc.conflict or exc.not_found:
                return None
            raise
