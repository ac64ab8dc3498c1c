"""The shards of the controllers' work (see `domain.sharding`), held through Leases in the
plane: `<lease>-shard-<i>` for each shard, and `<lease>-replica-<hash of identity>` for each
running replica (so that a replica holding nothing yet is counted when the others share).

Every `retry_period` a replica lists the Leases of its group, renews its own, and takes or
gives up shards as `domain.sharding.plan` says. A Lease held by another replica counts as
free only after it went unrenewed for its duration, timed by this replica's clock from when
it last saw the record change (as leader election does). Before a shard is given up the
controllers stop working on it and wait for what they were doing to end; a shard whose Lease
could not be renewed within the renew deadline is dropped at once (another replica may take
it a little later: the renew deadline is shorter than the lease)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Protocol

import structlog

from federator import metrics
from federator.domain.sharding import Holding, namespace_of, plan, shard_of
from federator.kube.client import KubeClient, KubeError, Object
from federator.kube.leader import LeaseSettings, micro_time
from federator.kube.resources import LEASES, path

log = structlog.get_logger(__name__)

GROUP_LABEL = "federator.io/lease-group"
SHARDS_LABEL = "federator.io/shards"  # on a shard's Lease: how many shards its group has


class Sharded(Protocol):
    """A controller whose work is sharded."""

    def gain(self, shards: frozenset[int]) -> None:
        """These shards are this replica's now: look at everything in them."""

    def drop(self, shards: frozenset[int]) -> None:
        """These shards are not this replica's any more: start nothing in them from now on,
        and stop what went on alone."""

    async def settled(self, shards: frozenset[int]) -> None:
        """Return once nothing that was under way for these shards runs."""


class ShardKeeper:
    def __init__(self, client: KubeClient, settings: LeaseSettings, identity: str,
                 shards: int) -> None:
        self.client = client
        self.settings = settings
        self.identity = identity
        self.shards = shards
        self.held: frozenset[int] = frozenset()
        self.consumers: list[Sharded] = []
        self._seen: dict[str, tuple[Any, float]] = {}  # Lease -> (spec, when it changed)
        self._renewed = 0.0  # when every held shard was last renewed
        self._disagreeing = False

    # what consumers ask ------------------------------------------------------------------
    def shard(self, kind: str, namespace: str, name: str) -> int:
        return shard_of(namespace_of(kind, namespace, name), self.shards)

    def owns(self, kind: str, namespace: str, name: str) -> bool:
        return self.shard(kind, namespace, name) in self.held

    # names -------------------------------------------------------------------------------
    def _shard_lease(self, shard: int) -> str:
        return f"{self.settings.name}-shard-{shard}"

    @property
    def _replica_lease(self) -> str:
        digest = hashlib.sha256(self.identity.encode()).hexdigest()[:12]
        return f"{self.settings.name}-replica-{digest}"

    def _url(self, name: str | None = None) -> str:
        return path(LEASES, namespace=self.settings.namespace, name=name)

    # the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Until cancelled; what it holds then is given back by `release`."""
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            left = (self._renewed + self.settings.renew_deadline - began if self.held
                    else self.settings.renew_deadline)
            try:
                async with asyncio.timeout(max(left, 0.1)):
                    await self._round(began)
            except KubeError as exc:
                log.warning("shard leases not renewed", error=str(exc))
            except TimeoutError:
                log.warning("shard leases not renewed",
                            error=f"no answer within {max(left, 0.1):.1f} s")
            if self.held and loop.time() - self._renewed >= self.settings.renew_deadline:
                log.error("shards lost: not renewed in time; their work stopped",
                          shards=sorted(self.held), deadline=self.settings.renew_deadline)
                self._drop(self.held)
            await asyncio.sleep(self.settings.retry_period)

    async def _round(self, began: float) -> None:
        listed = await self.client.get(self._url(),
                                       labelSelector=f"{GROUP_LABEL}={self.settings.name}")
        leases: dict[str, Object] = {item["metadata"]["name"]: item
                                     for item in listed.get("items") or []}
        now = asyncio.get_running_loop().time()
        for name, lease in leases.items():
            spec = lease.get("spec") or {}
            if name not in self._seen or self._seen[name][0] != spec:
                self._seen[name] = (spec, now)
        for name in set(self._seen) - set(leases):
            del self._seen[name]
        await self._forget_gone_replicas(leases, now)
        await self._renew(leases, began)
        holdings: dict[int, Holding] = {}
        replicas = []
        for name, lease in leases.items():
            holder = (lease.get("spec") or {}).get("holderIdentity") or ""
            live = self._live(name, now)
            shard = self._shard_number(name)
            if shard is not None and holder == self.identity and shard not in self.held:
                # Left by an earlier process of this identity (killed, or its renewals
                # came too late): free to take.
                holdings[shard] = Holding("", live=False)
            elif shard is not None:
                holdings[shard] = Holding(holder, live)
                if live and holder != self.identity and not self._agrees(lease):
                    return
            elif live and holder:
                replicas.append(holder)
        decided = plan(self.shards, self.identity, holdings, replicas)
        if decided.give:
            await self._give(frozenset(decided.give), leases)
        if decided.take:
            await self._take(decided.take, leases)

    async def _forget_gone_replicas(self, leases: dict[str, Object], now: float) -> None:
        """A replica's own Lease left by one that died (a restarted replica has a new
        identity): deleted once unrenewed for three lease durations."""
        for name in list(leases):
            spec, since = self._seen[name]
            duration = float(spec.get("leaseDurationSeconds") or self.settings.duration)
            if (self._shard_number(name) is None and name != self._replica_lease
                    and now > since + 3 * duration):
                try:
                    await self.client.delete(self._url(name))
                except KubeError as exc:
                    if not (exc.not_found or exc.conflict):
                        raise
                del leases[name]

    def _shard_number(self, name: str) -> int | None:
        prefix = f"{self.settings.name}-shard-"
        if not name.startswith(prefix) or not name[len(prefix):].isdigit():
            return None
        number = int(name[len(prefix):])
        return number if number < self.shards else None

    def _live(self, name: str, now: float) -> bool:
        spec, since = self._seen[name]
        duration = float(spec.get("leaseDurationSeconds") or self.settings.duration)
        return bool(spec.get("holderIdentity")) and now < since + duration

    def _agrees(self, lease: Object) -> bool:
        """Whether a live replica shards as many ways as this one (if not, both would work
        on some namespaces: this one takes nothing until the setting agrees)."""
        theirs = (lease["metadata"].get("labels") or {}).get(SHARDS_LABEL)
        agrees = theirs == str(self.shards)
        if not agrees and not self._disagreeing:
            log.error("another replica splits the work into a different number of shards: "
                      "set leader_election.shards alike on every replica",
                      theirs=theirs, ours=self.shards,
                      holder=(lease.get("spec") or {}).get("holderIdentity"))
        self._disagreeing = not agrees
        return agrees

    def _body(self, name: str, lease: Object | None, *, holder: str,
              shard: bool) -> Object:
        stamp = micro_time()
        spec = dict((lease or {}).get("spec") or {})
        if spec.get("holderIdentity") != holder:
            spec["acquireTime"] = stamp
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (lease is not None)
        spec.update(holderIdentity=holder, renewTime=stamp,
                    leaseDurationSeconds=int(self.settings.duration) if holder else 1)
        labels = {GROUP_LABEL: self.settings.name}
        if shard:
            labels[SHARDS_LABEL] = str(self.shards)
        metadata = {**(lease or {}).get("metadata", {}), "name": name,
                    "namespace": self.settings.namespace, "labels": labels}
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
                "spec": spec}

    async def _write(self, name: str, lease: Object | None, *, holder: str,
                     shard: bool) -> bool:
        """Create or update a Lease (optimistically: a conflict means someone else wrote it
        first, and is no error). Whether it was written."""
        body = self._body(name, lease, holder=holder, shard=shard)
        try:
            if lease is None:
                written = await self.client.create(self._url(), body)
            else:
                written = await self.client.replace(self._url(name), body)
        except KubeError as exc:
            if exc.conflict:
                return False
            raise
        self._seen[name] = (written.get("spec") or {}, asyncio.get_running_loop().time())
        return True

    async def _renew(self, leases: dict[str, Object], began: float) -> None:
        mine = {self._shard_lease(s): s for s in self.held}
        lost = frozenset(shard for name, shard in mine.items()
                         if ((leases.get(name) or {}).get("spec") or {}).get("holderIdentity")
                         != self.identity)
        if lost:  # this one's renewals came too late
            self._taken(lost)
        held = sorted(self.held)
        names = [self._replica_lease, *(self._shard_lease(s) for s in held)]
        written = await asyncio.gather(*(
            self._write(name, leases.get(name), holder=self.identity,
                        shard=name != self._replica_lease) for name in names))
        # A conflict: another replica wrote the shard's Lease since it was listed (it found
        # it expired): it is not this replica's any more.
        conflicted = frozenset(s for s, ok in zip(held, written[1:], strict=True) if not ok)
        if conflicted:
            self._taken(conflicted)
        self._renewed = began

    def _taken(self, shards: frozenset[int]) -> None:
        log.error("shards taken by another replica; their work stopped", shards=sorted(shards))
        self._drop(shards)

    async def _give(self, shards: frozenset[int], leases: dict[str, Object]) -> None:
        log.info("giving shards up to share the work", shards=sorted(shards))
        self._drop(shards)
        await asyncio.gather(*(consumer.settled(shards) for consumer in self.consumers))
        await asyncio.gather(*(self._write(self._shard_lease(s), leases.get(self._shard_lease(s)),
                                           holder="", shard=True) for s in shards))

    async def _take(self, shards: tuple[int, ...], leases: dict[str, Object]) -> None:
        names = [self._shard_lease(s) for s in shards]
        written = await asyncio.gather(*(self._write(n, leases.get(n), holder=self.identity,
                                                     shard=True) for n in names))
        taken = frozenset(s for s, ok in zip(shards, written, strict=True) if ok)
        if not taken:
            return
        if not self.held:
            self._renewed = asyncio.get_running_loop().time()
        self._set(self.held | taken)
        log.info("shards taken", shards=sorted(taken), holding=len(self.held),
                 of=self.shards)
        for consumer in self.consumers:
            consumer.gain(taken)

    def _drop(self, shards: frozenset[int]) -> None:
        self._set(self.held - shards)
        for consumer in self.consumers:
            consumer.drop(shards)

    def _set(self, held: frozenset[int]) -> None:
        self.held = held
        metrics.SHARDS_HELD.set(len(held))

    async def release(self, within: float = 2.0) -> None:
        """At shutdown, once the controllers stopped: give up every shard Lease this
        identity holds (those it works on, and any whose take was written when the loop was
        cancelled before it heard back), and remove this replica's own Lease, so that the
        others take over at once (bounded by `within`: an unreachable plane must not hold a
        shutdown)."""
        self._set(frozenset())
        try:
            async with asyncio.timeout(within):
                listed = await self.client.get(
                    self._url(), labelSelector=f"{GROUP_LABEL}={self.settings.name}")
                mine = [lease for lease in listed.get("items") or []
                        if self._shard_number(lease["metadata"]["name"]) is not None
                        and (lease.get("spec") or {}).get("holderIdentity") == self.identity]
                done = await asyncio.gather(
                    self.client.delete(self._url(self._replica_lease)),
                    *(self._write(lease["metadata"]["name"], lease, holder="", shard=True)
                      for lease in mine), return_exceptions=True)
            failed = [e for e in done if isinstance(e, Exception)
                      and not (isinstance(e, KubeError) and e.not_found)]
            if failed:
                log.warning("shards not given back", error=str(failed[0]))
        except KubeError as exc:
            log.warning("shards not given back", error=str(exc))
        except TimeoutError:
            log.warning("shards not given back", error=f"no answer within {within:.1f} s")
