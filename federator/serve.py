"""`federator serve`: one process with the controllers (for the shards it holds), the
leader's work (Cluster status, the zone of an authoritative DNS server), the registry, the
gateway, DNS, and the health and metrics endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from federator import logs, metrics
from federator.clusters.plane import Federation, read_federation
from federator.clusters.registry import ProbeSettings, Registry
from federator.config import DnsConfig, GatewayConfig, Rfc2136Config, Settings
from federator.controllers.dns import DnsController
from federator.controllers.events import EventFederator, EventSettings
from federator.controllers.propagation.controller import PropagationSettings, Propagator
from federator.controllers.propagation.memory import Key
from federator.dns.rfc2136 import Rfc2136Provider, Rfc2136Settings
from federator.dns.server import DnsServer
from federator.dns.zone import SoaFields
from federator.domain.dns import RecordSet
from federator.domain.naming import CONFIG_NAME, FEDERATION_NAMESPACE
from federator.gateway.app import Gateway
from federator.gateway.auth import TokenFileError, read_tokens
from federator.gateway.certificates import gateway_ca, serving_context
from federator.kube.client import KubeClient, KubeError
from federator.kube.events import EventRecorder
from federator.kube.kubeconfig import (
    CredentialsError,
    default_kubeconfig,
    in_cluster_credentials,
    load_credentials,
)
from federator.kube.leader import LeaderElector, LeaseSettings
from federator.kube.resources import CONFIGMAPS, path
from federator.kube.sharding import ShardKeeper
from federator.kube.watching import unwatched

log = structlog.get_logger(__name__)


async def plane_client(settings: Settings) -> KubeClient:
    if settings.kubeconfig is None:
        inside = in_cluster_credentials()
        if inside is not None:
            return KubeClient(inside)
    return KubeClient(await load_credentials(settings.kubeconfig or default_kubeconfig(),
                                             settings.plane_context))


def health_app(plane: KubeClient, elector: LeaderElector | None,
               keeper: ShardKeeper | None) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        try:
            await plane.request("GET", "/readyz", timeout=2)
        except KubeError as exc:
            return web.Response(status=503, text=f"plane not ready: {exc}; the gateway and "
                                "DNS answer from what they hold, the controllers wait")
        waiting = unwatched(plane)
        if waiting:  # after an outage, until each watch is back: changes would wait
            return web.Response(status=503, text=f"plane watches not open yet: "
                                f"{len(waiting)} ({', '.join(waiting[:3])}"
                                f"{', …' if len(waiting) > 3 else ''})")
        role = "leader" if elector is None or elector.leading else "standby"
        shards = (f"{len(keeper.held)}/{keeper.shards} shards" if keeper is not None
                  else "every shard")
        return web.Response(text=f"ok ({role}, {shards})")

    async def metrics_page(_: web.Request) -> web.Response:
        body = generate_latest(metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    return app


class GatewayError(Exception):
    """The gateway's settings cannot be used; the message names the setting."""


async def start_gateway(config: GatewayConfig, plane: KubeClient, registry: Registry,
                        dns_records: Callable[[], list[RecordSet]],
                        learned_capacity: Callable[[Key], Mapping[str, int]],
                        exclude: tuple[str, ...] = ()) -> web.AppRunner:
    try:
        tokens = read_tokens(config.token_file) if config.token_file else {}
    except TokenFileError as exc:
        raise GatewayError(str(exc)) from exc
    if config.client_ca_file is not None and not config.client_ca_file.is_file():
        raise GatewayError(f"gateway.client_ca_file: {config.client_ca_file} is not a file")
    try:
        ca_cert, ca_key = await gateway_ca(plane)
    except KubeError as exc:
        raise GatewayError(f"the gateway CA could not be read or stored in the plane "
                           f"(has `federator init` run?): {exc}") from exc
    context = serving_context(ca_cert, ca_key, config.hostnames, config.client_ca_file)
    gateway = Gateway(plane, registry, tokens, dns_records,
                      member_timeout=config.member_timeout, learned_capacity=learned_capacity,
                      exclude=exclude)
    # A client that goes away cancels its handler (and so its watch upstream); on shutdown,
    # open watches get a moment, then they are cut (clients watch again elsewhere).
    runner = web.AppRunner(gateway.app(), access_log=None, handler_cancellation=True,
                           shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, config.address, config.port, ssl_context=context).start()
    return runner


async def federation_of(plane: KubeClient) -> Federation:
    """The federation the plane holds, once `federator init` has run."""
    federation = await read_federation(plane)
    while federation is None:
        log.error("the plane holds no federation: run `federator init`; retrying")
        await asyncio.sleep(10)
        federation = await read_federation(plane)
    return federation


class DnsError(Exception):
    """DNS cannot be served as configured; the message names the setting."""


class DnsService:
    """The DNS records on every replica (answered by the embedded server), and the zone of
    an authoritative server kept by the leader (keep_zone)."""

    def __init__(self, may_write: Callable[[], bool]) -> None:
        self.may_write = may_write
        self.controller: DnsController | None = None
        self.ready = asyncio.Event()

    @property
    def records(self) -> list[RecordSet]:
        return self.controller.records if self.controller is not None else []

    async def run(self, config: DnsConfig, plane: KubeClient, registry: Registry,
                  recorder: EventRecorder) -> None:
        if not config.enabled:
            return
        federation = await federation_of(plane)
        zone = federation.dns_zone
        if not zone:
            log.info("DNS is off: the federation has no DNS zone (federator init "
                     "--dns-zone-name)")
            return
        server = None
        if config.embedded.enabled:
            server = DnsServer(zone, SoaFields(f"ns.{zone}", f"hostmaster.{zone}",
                                               negative_ttl=config.ttl),
                               config.embedded.nameservers or (f"ns.{zone}",))
            try:
                await server.start(config.embedded.address, config.embedded.port)
            except OSError as exc:
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                raise DnsError(f"dns.embedded: cannot listen on {config.embedded.address}:"
                               f"{config.embedded.port}: {reason}") from exc
        self.controller = DnsController(plane, registry, federation.name, zone,
                                        ttl=config.ttl,
                                        publish=server.update if server else lambda _: None,
                                        recorder=recorder, may_write=self.may_write)
        self.ready.set()
        try:
            await self.controller.run()
        finally:
            if server is not None:
                await server.stop()


async def keep_zone(config: Rfc2136Config, federation: Federation, dns: DnsService,
                    plane: KubeClient, recorder: EventRecorder) -> None:
    """As the leader: keep the records in an authoritative server by RFC 2136 updates; what
    goes wrong is an event on the federation's ConfigMap (and a metric), never a crash."""
    await dns.ready.wait()
    assert dns.controller is not None and config.key_secret_file is not None
    try:
        secret = config.key_secret_file.read_text().strip()
    except OSError as exc:
        log.error("dns updates off: dns.rfc2136.key_secret_file cannot be read",
                  file=str(config.key_secret_file), error=exc.strerror)
        return
    problems: asyncio.Queue[str] = asyncio.Queue(100)

    def report(problem: str) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            problems.put_nowait(problem)

    async def announce() -> None:
        while True:
            problem = await problems.get()
            with contextlib.suppress(KubeError):
                about = await plane.get(path(CONFIGMAPS, namespace=FEDERATION_NAMESPACE,
                                             name=CONFIG_NAME))
                await recorder.record(about, "Warning", "DNSUpdateFailed", problem)

    provider = Rfc2136Provider(
        Rfc2136Settings(config.server, config.zone or federation.dns_zone or "",
                        config.key_name, secret, port=config.port, algorithm=config.algorithm,
                        batch=config.batch),
        federation.name, on_problem=report)
    controller = dns.controller
    await asyncio.gather(provider.run(lambda: controller.records, controller.changed),
                         announce())


async def _together(*work: Awaitable[None]) -> None:
    """Run `work` side by side until all of it ends. The first to fail stops the rest and its
    error is raised (gather would leave the rest running, on clients closed under them)."""
    tasks = [asyncio.ensure_future(each) for each in work]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _dump_tasks() -> None:
    """On SIGUSR1: where every task waits, on stderr (for a federator that seems stuck)."""
    for task in asyncio.all_tasks():
        task.print_stack(limit=6, file=sys.stderr)


async def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT (0). A lost lease stops the work it covers (the leader's,
    or a shard's), not the process: it campaigns again, and the gateway and DNS answer all
    along."""
    logs.configure(settings.log.level, settings.log.format)
    metrics.time_gc()
    structlog.contextvars.bind_contextvars(identity=settings.identity)
    stop = asyncio.Event()  # a signal while starting up ends it once it is up
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
    try:
        plane = await plane_client(settings)
    except CredentialsError as exc:
        log.error("no plane credentials", error=str(exc))
        return 1
    election = settings.leader_election
    elector = keeper = None
    if election.enabled:
        leases = LeaseSettings(election.lease_name, election.namespace,
                               election.lease_duration, election.renew_deadline,
                               election.retry_period)
        elector = LeaderElector(plane, leases, settings.identity)
        keeper = ShardKeeper(plane, leases, settings.identity, election.shards)
    probe = settings.probe
    registry = Registry(plane, ProbeSettings(probe.period, probe.timeout, probe.failure_threshold,
                                             probe.success_threshold, probe.capacity_period),
                        EventRecorder(plane, settings.identity),
                        may_write=lambda: elector is None or elector.leading)
    recorder = EventRecorder(plane, settings.identity)
    dns = DnsService(lambda: elector is None or elector.leading)
    propagating: Propagator | None = None  # what /plan asks
    runners = [web.AppRunner(health_app(plane, elector, keeper), access_log=None)]
    await runners[0].setup()
    await web.TCPSite(runners[0], settings.http.address, settings.http.port).start()
    if settings.gateway.enabled:
        try:
            runners.append(await start_gateway(
                settings.gateway, plane, registry, lambda: dns.records,
                lambda key: propagating.learned(key) if propagating else {},
                settings.propagation.exclude))
        except (GatewayError, KubeError, OSError) as exc:
            log.error("gateway not started", error=str(exc))
            for runner in runners:
                await runner.cleanup()
            await plane.close()
            return 1
    log.info("serving", http=f"{settings.http.address}:{settings.http.port}",
             gateway=(f"https://{settings.gateway.address}:{settings.gateway.port}"
                      if settings.gateway.enabled else None),
             plane=plane.server, leader_election=election.enabled)
    async def controllers() -> None:  # the shards this replica holds
        nonlocal propagating
        federation = await federation_of(plane)
        shard_of = keeper.shard if keeper is not None else None
        propagator = Propagator(plane, registry, federation.name, recorder,
                                PropagationSettings(**settings.propagation.model_dump()),
                                shard_of=shard_of)
        propagating = propagator
        work = [propagator.run()]
        sharded: list[Propagator | EventFederator] = [propagator]
        if settings.events.enabled:
            events = EventFederator(
                plane, registry, federation.name, recorder, settings.identity,
                EventSettings(**settings.events.model_dump(exclude={"enabled"})),
                shard_of=shard_of)
            sharded.append(events)
            work.append(events.run())
        if keeper is not None:
            keeper.consumers.extend(sharded)
            work.append(keeper.run())
        try:
            await _together(*work)
        finally:
            propagating = None

    async def lead() -> None:  # what one replica does for all
        if settings.dns.enabled and settings.dns.rfc2136.enabled:
            federation = await federation_of(plane)
            await keep_zone(settings.dns.rfc2136, federation, dns, plane, recorder)
        await asyncio.Event().wait()  # the registry writes Cluster status while leading

    async def everything() -> None:  # registry, DNS and the shards' controllers on every
        # replica; the rest leads
        await _together(registry.run(), dns.run(settings.dns, plane, registry, recorder),
                        controllers(), elector.run(lead) if elector else lead())

    work = asyncio.ensure_future(everything())
    stopper = asyncio.ensure_future(stop.wait())
    code = 0
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            work.result()
    except DnsError as exc:
        log.error("dns not started", error=str(exc))
        code = 1
    finally:
        for task in (work, stopper):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, DnsError):
            await work
        if elector is not None and keeper is not None and code == 0:
            await asyncio.gather(elector.release(), keeper.release())
        for runner in runners:
            await runner.cleanup()
        await recorder.close()
        await plane.close()
        log.info("stopped", exit_code=code)
    return code
