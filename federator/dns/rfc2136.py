"""Keeping federator's records in a zone of a real authoritative server (BIND and others) by
RFC 2136 UPDATE messages signed with TSIG.

It reads the zone by transfer (AXFR, signed) when it starts and whenever an update is turned
down, and changes only names it marked as its own (domain.dns.changes): a name someone else
put there is never touched. Changes go in batches of a few names per UPDATE, each with a
prerequisite (the name is still free, or still carries our mark); a batch turned down is
retried name by name after reading the zone again. A refused or badly signed update is
reported (on_problem, and a metric) and retried with backoff, never raised."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import dns.xfr
import dns.zone
import structlog

from federator import metrics
from federator.domain.dns import OWNER_LABEL, NameChange, RecordSet, changes, ownership

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Rfc2136Settings:
    server: str  # an address
    zone: str
    key_name: str
    key_secret: str = ""  # base64, as tsig-keygen prints it; never logged
    port: int = 53
    algorithm: str = "hmac-sha256"
    timeout: float = 5.0
    batch: int = 20  # names per UPDATE message

    def __repr__(self) -> str:
        return (f"Rfc2136Settings(server={self.server!r}, port={self.port}, "
                f"zone={self.zone!r}, key_name={self.key_name!r})")


class UpdateRefused(Exception):
    """The server turned an update down for a reason other than a prerequisite."""


def zone_records(zone: dns.zone.Zone) -> list[RecordSet]:
    """Every record set of a transferred zone, as RecordSets (names absolute)."""
    found = []
    assert zone.origin is not None
    for name, rdataset in zone.iterate_rdatasets():
        kind = dns.rdatatype.to_text(rdataset.rdtype)
        if kind not in ("A", "AAAA", "CNAME", "TXT"):
            continue
        absolute = name.derelativize(zone.origin).to_text(omit_final_dot=True).lower()
        values = tuple(sorted(
            b"".join(r.strings).decode(errors="replace") if kind == "TXT"
            else r.to_text().rstrip(".") if kind == "CNAME" else r.to_text()
            for r in rdataset))
        found.append(RecordSet(absolute, kind, rdataset.ttl, values))  # type: ignore[arg-type]
    return found


class Rfc2136Provider:
    def __init__(self, settings: Rfc2136Settings, federation: str, *,
                 on_problem: Callable[[str], None] = lambda _: None) -> None:
        self.settings = settings
        self.federation = federation
        self.on_problem = on_problem
        self.origin = dns.name.from_text(settings.zone)
        self.keyring = dns.tsigkeyring.from_text({settings.key_name: settings.key_secret})
        self.keyname = dns.name.from_text(settings.key_name)
        self.current: list[RecordSet] | None = None  # the zone as last read or written
        self._reported: set[str] = set()

    # reading -----------------------------------------------------------------------------
    async def read_zone(self) -> list[RecordSet]:
        zone = dns.zone.Zone(self.origin)
        query, _ = dns.xfr.make_query(zone, keyring=self.keyring, keyname=self.keyname,
                                      keyalgorithm=self.settings.algorithm)
        try:
            await dns.asyncquery.inbound_xfr(self.settings.server, zone, query,
                                             port=self.settings.port,
                                             timeout=self.settings.timeout,
                                             lifetime=self.settings.timeout * 6)
        except dns.tsig.PeerError as exc:
            raise UpdateRefused(self._unsigned(exc, "a transfer")) from exc
        except dns.xfr.TransferError as exc:
            raise UpdateRefused(f"{self.settings.server} refused a transfer of zone "
                                f"{self.settings.zone} ({dns.rcode.to_text(exc.rcode)}): "
                                f"allow it to key {self.settings.key_name}") from exc
        return zone_records(zone)

    def _unsigned(self, exc: dns.tsig.PeerError, what: str) -> str:
        return (f"{self.settings.server} did not accept the TSIG signature of {what} "
                f"({exc.__class__.__name__}): check the name, secret and algorithm of key "
                f"{self.settings.key_name}")

    # writing -----------------------------------------------------------------------------
    def _message(self, batch: Iterable[NameChange]) -> dns.update.UpdateMessage:
        update = dns.update.UpdateMessage(self.origin, keyring=self.keyring,
                                          keyname=self.keyname,
                                          keyalgorithm=self.settings.algorithm)
        mark = ownership(self.federation)
        quoted = '"' + mark + '"'
        for change in batch:
            owner_name = f"{OWNER_LABEL}.{change.name}."
            name = change.name + "."
            if change.new:
                update.absent(name)  # still nobody's: not even created meanwhile
                update.add(owner_name, min((r.ttl for r in change.put), default=30), "TXT",
                           quoted)
            else:
                update.present(owner_name, "TXT", quoted)  # still ours
            for kind in change.remove:
                update.delete(name, kind)
            for record in change.put:
                values = [v + "." if record.type == "CNAME" else
                          '"' + v.replace('"', '\\"') + '"' if record.type == "TXT" else v
                          for v in record.values]
                update.replace(name, record.ttl, record.type, *values)
            if change.release:
                update.delete(owner_name)
        return update

    async def _send(self, batch: list[NameChange]) -> bool:
        """True if applied; False if a prerequisite failed (the zone changed meanwhile);
        UpdateRefused otherwise."""
        message = self._message(batch)
        try:
            reply = await dns.asyncquery.tcp(message, self.settings.server,
                                             port=self.settings.port,
                                             timeout=self.settings.timeout)
        except dns.tsig.PeerError as exc:
            raise UpdateRefused(self._unsigned(exc, "an update")) from exc
        except (dns.exception.DNSException, OSError) as exc:
            raise UpdateRefused(f"no answer from {self.settings.server}:"
                                f"{self.settings.port}: {exc.__class__.__name__}") from exc
        code = reply.rcode()
        if code == dns.rcode.NOERROR:
            return True
        if code in (dns.rcode.YXDOMAIN, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN,
                    dns.rcode.NXRRSET):
            return False
        raise UpdateRefused(f"{self.settings.server} answered {dns.rcode.to_text(code)} to "
                            f"an update of zone {self.settings.zone}")

    async def apply(self, desired: list[RecordSet]) -> None:
        """Make the zone hold `desired` for the names it owns (reading the zone first if it
        has not been read, or an earlier update was turned down)."""
        if self.current is None:
            self.current = await self.read_zone()
        todo, problems = changes(desired, self.current, self.federation)
        self._report(problems)
        size = max(1, self.settings.batch)
        turned_down: list[NameChange] = []
        for start in range(0, len(todo), size):
            batch = todo[start:start + size]
            if await self._send(batch):
                metrics.DNS_UPDATES.labels("rfc2136", "applied").inc()
            else:
                turned_down += batch
        if turned_down:  # someone changed the zone meanwhile: look again, one name at a time
            metrics.DNS_UPDATES.labels("rfc2136", "prerequisite").inc()
            self.current = await self.read_zone()
            retry, problems = changes(desired, self.current, self.federation)
            self._report(problems)
            names = {c.name for c in turned_down}
            for change in (c for c in retry if c.name in names):
                if not await self._send([change]):
                    self._report([f"{change.name} changed under federator: left alone"])
        self.current = await self.read_zone() if turned_down else _after(self.current, todo,
                                                                           self.federation)

    def _report(self, problems: list[str]) -> None:
        for problem in problems:
            if problem not in self._reported:
                self._reported.add(problem)
                log.warning("dns record left alone", zone=self.settings.zone, problem=problem)
                self.on_problem(problem)

    async def run(self, desired: Callable[[], list[RecordSet]], wake: asyncio.Event,
                  *, backoff_min: float = 1.0, backoff_max: float = 60.0,
                  sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Apply what `desired()` says whenever `wake` is set (and once at start, after a
        full read of the zone), retrying with backoff while the server refuses: the wait
        (`sleep`) doubles from `backoff_min` up to `backoff_max` (each drawn from 0.5x to
        1.5x)."""
        delay = backoff_min
        self.current = None
        while True:
            wake.clear()
            try:
                await self.apply(desired())
                delay = backoff_min
            except UpdateRefused as exc:
                self._fail(str(exc))
            except (dns.exception.DNSException, OSError) as exc:
                self._fail(f"zone {self.settings.zone} cannot be read from "
                           f"{self.settings.server}:{self.settings.port}: "
                           f"{exc.__class__.__name__}: {exc}")
            else:
                await wake.wait()
                continue
            self.current = None  # read the zone again before the next try
            await sleep(delay * (0.5 + random.random()))  # noqa: S311
            delay = min(delay * 2, backoff_max)

    def _fail(self, message: str) -> None:
        metrics.DNS_UPDATES.labels("rfc2136", "failed").inc()
        log.warning("dns update failed", zone=self.settings.zone, error=message)
        self.on_problem(message)


def _after(current: list[RecordSet], applied: list[NameChange],
           federation: str) -> list[RecordSet]:
    """The zone as it is once `applied` went through (without reading it again)."""
    touched = {c.name for c in applied}
    kept = [r for r in current
            if r.name not in touched and r.name.removeprefix(f"{OWNER_LABEL}.") not in touched]
    for change in applied:
        if change.release:
            continue
        held = {r.type: r for r in current if r.name == change.name}
        for kind in change.remove:
            held.pop(kind, None)
        for record in change.put:
            held[record.type] = record
        kept += held.values()
        kept.append(RecordSet(f"{OWNER_LABEL}.{change.name}", "TXT",
                              min((r.ttl for r in held.values()), default=30),
                              (ownership(federation),)))
    return kept
