"""Cross-cluster DNS: the records of federated Services follow their endpoints' readiness,
their clusters' health and the Services themselves, by watches (no polling). What follows
from them (domain.dns.records) is given to the embedded server at once, and to an RFC 2136
provider (run by the leader) through `changed`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from federator.clusters.registry import Registry
from federator.domain import dns as rules
from federator.domain.dns import Endpoints, Place, RecordSet
from federator.domain.naming import MANAGED_BY
from federator.kube.client import KubeClient, KubeError, Object
from federator.kube.events import EventRecorder
from federator.kube.resources import KINDS, Resource, path
from federator.kube.watching import Reflector

log = structlog.get_logger(__name__)

SERVICES = KINDS[("v1", "Service")]
NODES = KINDS[("v1", "Node")]
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices", True)
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass
class _Member:
    client: KubeClient
    services: Reflector
    slices: Reflector
    nodes: Reflector
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def endpoints(self) -> dict[tuple[str, str], Endpoints]:
        """Each federated Service of this member: where it is reached, and whether a ready
        endpoint backs it."""
        addresses = rules.node_addresses(self.nodes.objects.values())
        slices: dict[tuple[str, str], list[Object]] = {}
        for piece in self.slices.objects.values():
            meta = piece["metadata"]
            owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
            if owner:
                slices.setdefault((meta.get("namespace", ""), owner), []).append(piece)
        return {key: Endpoints(rules.service_addresses(service, addresses),
                               rules.has_ready_endpoint(slices.get(key, [])))
                for key, service in self.services.objects.items()}


class DnsController:
    def __init__(self, plane: KubeClient, registry: Registry, federation: str, domain: str, *,
                 ttl: int,
                 publish: Callable[[list[RecordSet]], None], recorder: EventRecorder,
                 may_write: Callable[[], bool], debounce: float = 0.05) -> None:
        self.plane = plane
        self.registry = registry
        self.federation = federation
        self.domain = domain
        self.ttl = ttl
        self.publish = publish
        self.recorder = recorder
        self.may_write = may_write
        self.debounce = debounce
        self.members: dict[str, _Member] = {}
        self.records: list[RecordSet] = []
        self.changed = asyncio.Event()  # set whenever `records` changed
        self._dirty = asyncio.Event()
        self._announced: set[str] = set()

    async def _on_change(self, kind: str, obj: Object) -> None:
        self._dirty.set()

    def _on_cluster(self, name: str) -> None:
        self.registry.follow(name, self.members, self._watch)
        self._dirty.set()  # readiness or place changed

    def _watch(self, name: str, client: KubeClient) -> _Member:
        """Watch a member's federated Services; its EndpointSlices and Nodes too once it
        holds one (a member without any costs one watch)."""
        async def on_services(kind: str, obj: Object) -> None:
            if member.services.objects and len(member.tasks) == 1:
                member.tasks += [asyncio.create_task(r.run())
                                 for r in (member.slices, member.nodes)]
            self._dirty.set()

        # federator's copies of Services: propagation follows them too, one watch for both.
        services = self.registry.watches.subscribe(
            client, path(SERVICES), on_services,
            label_selector=f"{MANAGED_BY}={self.federation}", absent_is_empty=True)
        member = _Member(
            client, services.reflector,
            Reflector(client, path(ENDPOINT_SLICES), self._on_change,
                      label_selector=SERVICE_NAME_LABEL),
            Reflector(client, path(NODES), self._on_change))
        member.tasks = [asyncio.create_task(services.run())]
        return member

    def compute(self) -> tuple[list[RecordSet], list[str]]:
        places = {}
        for name, member in self.registry.members.items():
            spec = member.cluster.get("spec") or {}
            places[name] = Place(spec.get("region"), spec.get("zone"), member.ready)
        services: dict[tuple[str, str], dict[str, Endpoints]] = {}
        for name, watched in self.members.items():
            if not all(r.synced.is_set() for r in (watched.services, watched.slices,
                                                   watched.nodes)):
                continue  # not listed yet, or no federated Service: as if it had nothing
            for key, endpoints in watched.endpoints().items():
                services.setdefault(key, {})[name] = endpoints
        return rules.records(self.federation, self.domain, services, places, ttl=self.ttl)

    async def run(self) -> None:
        await self.registry.synced.wait()
        self.registry.listeners.append(self._on_cluster)
        for name in list(self.registry.members):
            self._on_cluster(name)
        try:
            while True:
                await self._dirty.wait()
                await asyncio.sleep(self.debounce)  # a burst of changes: one computation
                self._dirty.clear()
                records, problems = self.compute()
                await self._announce(problems)
                if records != self.records:
                    self.records = records
                    self.publish(records)
                    self.changed.set()
                    log.info("dns records changed", names=len({r.name for r in records}))
        finally:
            await self.registry.unfollow(self.members, self._on_cluster)

    async def _announce(self, problems: list[str]) -> None:
        """Log each new problem; as the leader, also an event on the plane Service it is
        about."""
        for problem in problems:
            if problem in self._announced:
                continue
            self._announced.add(problem)
            log.warning("dns record left out", problem=problem)
            if not self.may_write() or not problem.startswith("service "):
                continue
            namespace, _, rest = problem.removeprefix("service ").partition("/")
            try:
                service = await self.plane.get(path(SERVICES, namespace=namespace,
                                                    name=rest.split(":", 1)[0]))
            except KubeError:
                continue  # gone meanwhile
            await self.recorder.record(service, "Warning", "DNSRecordInvalid", problem)
