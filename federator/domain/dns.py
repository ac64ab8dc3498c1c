"""The DNS records of federated Services, as federation v1 named them:

    <svc>.<ns>.<federation>.svc.<zone>.<region>.<domain>
    <svc>.<ns>.<federation>.svc.<region>.<domain>
    <svc>.<ns>.<federation>.svc.<domain>

Each name holds A (and AAAA) records for the endpoints of the healthy clusters at its level; a
zone or region level with none is a CNAME to the next level up; the global level with none has
no record. A pure function of the Services' endpoints in each cluster and the clusters' places
and health; what the DNS servers are told follows from it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

RecordType = Literal["A", "AAAA", "CNAME", "TXT"]
DEFAULT_TTL = 30
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Place:
    """Where a member is and whether it is Ready."""

    region: str | None
    zone: str | None
    ready: bool


@dataclass(frozen=True)
class Endpoints:
    """A federated Service in one member: the addresses it is reached at, and whether it
    has a ready endpoint."""

    addresses: tuple[str, ...]
    healthy: bool


@dataclass(frozen=True, order=True)
class RecordSet:
    name: str  # absolute, without the final dot, lower case
    type: RecordType
    ttl: int
    values: tuple[str, ...]  # sorted; a CNAME's target is a name without the final dot


Service = tuple[str, str]  # (namespace, name)


def label_problem(value: str, what: str) -> str | None:
    if _LABEL.match(value):
        return None
    return (f"{what} {value!r} is not a valid DNS label (at most 63 lower-case letters, "
            "digits and '-', starting and ending with a letter or digit)")


def _split(addresses: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
    """(IPv4, IPv6, not addresses)."""
    four: set[str] = set()
    six: set[str] = set()
    other: set[str] = set()
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            other.add(text)
            continue
        (four if address.version == 4 else six).add(address.compressed)
    return (sorted(four, key=ipaddress.ip_address), sorted(six, key=ipaddress.ip_address),
            sorted(other))


def records(federation: str, domain: str, services: Mapping[Service, Mapping[str, Endpoints]],
            places: Mapping[str, Place], *, ttl: int = DEFAULT_TTL
            ) -> tuple[list[RecordSet], list[str]]:
    """(record sets, problems). `services`: per federated Service, its endpoints in each
    member it was propagated to; `places`: every joined member. A problem (a name part that
    is not a DNS label, a name too long, an address that is not an IP) leaves out what it
    concerns and is reported, never raised."""
    domain = domain.lower().rstrip(".")
    problems: list[str] = []
    problem = label_problem(federation, "federation name")
    if problem:
        return [], [problem]
    result: list[RecordSet] = []
    for (namespace, name), members in sorted(services.items()):
        bad = label_problem(name, "service name") or label_problem(namespace, "namespace")
        if bad:
            problems.append(f"service {namespace}/{name}: {bad}")
            continue
        prefix = f"{name}.{namespace}.{federation}.svc"
        sets, found = _service(prefix, domain, members, places, ttl)
        result += sets
        problems += [f"service {namespace}/{name}: {p}" for p in found]
    return sorted(result), problems


def _service(prefix: str, domain: str, members: Mapping[str, Endpoints],
             places: Mapping[str, Place], ttl: int) -> tuple[list[RecordSet], list[str]]:
    problems: list[str] = []
    healthy: dict[str, tuple[str, ...]] = {}
    for cluster, endpoints in sorted(members.items()):
        place = places.get(cluster)
        if place is not None and place.ready and endpoints.healthy and endpoints.addresses:
            healthy[cluster] = endpoints.addresses
    regions: dict[str, set[str]] = {}  # region -> its zones, of the members it went to
    for cluster in sorted(members):
        place = places.get(cluster)
        if place is None or not place.region:
            continue
        problem = label_problem(place.region, f"region of cluster {cluster}")
        if problem:
            problems.append(problem)
            continue
        zones = regions.setdefault(place.region, set())
        if place.zone:
            problem = label_problem(place.zone, f"zone of cluster {cluster}")
            if problem:
                problems.append(problem)
            else:
                zones.add(place.zone)
    sets: list[RecordSet] = []

    def level(name: str, clusters: Iterable[str], up: str | None) -> None:
        if len(name) > 253:
            problems.append(f"name {name} is longer than 253 characters")
            return
        four, six, other = _split(a for c in clusters for a in healthy.get(c, ()))
        problems.extend(f"{a!r} is not an IP address: left out" for a in other)
        if four:
            sets.append(RecordSet(name, "A", ttl, tuple(four)))
        if six:
            sets.append(RecordSet(name, "AAAA", ttl, tuple(six)))
        if not four and not six and up is not None:
            sets.append(RecordSet(name, "CNAME", ttl, (up,)))

    top = f"{prefix}.{domain}"
    level(top, members, None)
    for region, zones in sorted(regions.items()):
        in_region = [c for c in members if (p := places.get(c)) and p.region == region]
        region_name = f"{prefix}.{region}.{domain}"
        level(region_name, in_region, top)
        for zone in sorted(zones):
            in_zone = [c for c in in_region if places[c].zone == zone]
            level(f"{prefix}.{zone}.{region}.{domain}", in_zone, region_name)
    return sets, sorted(set(problems))


def service_addresses(service: Mapping[str, Any], node_addresses: Iterable[str]
                      ) -> tuple[str, ...]:
    """Where a member's Service is reached from outside: its load balancer's ingress
    addresses, else its externalIPs, else (a NodePort Service) the addresses of the
    member's nodes."""
    spec = service.get("spec") or {}
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    found = [str(i["ip"]) for i in ingress if i.get("ip")]
    if found:
        return tuple(found)
    if spec.get("externalIPs"):
        return tuple(str(ip) for ip in spec["externalIPs"])
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        return tuple(node_addresses)
    return ()


def node_addresses(nodes: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The addresses of Ready nodes: ExternalIP where nodes have them, else InternalIP."""
    by_type: dict[str, list[str]] = {"ExternalIP": [], "InternalIP": []}
    for node in nodes:
        conditions = (node.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            continue
        for address in (node.get("status") or {}).get("addresses") or []:
            if address.get("type") in by_type:
                by_type[address["type"]].append(str(address["address"]))
    return tuple(by_type["ExternalIP"] or by_type["InternalIP"])


def has_ready_endpoint(slices: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any EndpointSlice has an endpoint that is ready (an unset ready counts as
    ready, as the API says consumers should read it)."""
    return any((endpoint.get("conditions") or {}).get("ready") is not False
               for piece in slices for endpoint in piece.get("endpoints") or [])


# Changes to an authoritative server shared with others ---------------------------------
OWNER_LABEL = "_federator"  # ownership TXT of name N lives at _federator.N


def ownership(federation: str) -> str:
    """The TXT value that marks a name as this federation's."""
    return f"heritage=federator,federation={federation}"


@dataclass(frozen=True)
class NameChange:
    """What to do with one name: `new` names are created only if nothing is there yet (and
    then marked as ours); `put` record sets replace what the name holds of their type;
    `remove` types are deleted; `release` deletes the name's records and its mark."""

    name: str
    new: bool = False
    put: tuple[RecordSet, ...] = ()
    remove: tuple[RecordType, ...] = ()
    release: bool = False


def _by_name(sets: Iterable[RecordSet]) -> dict[str, dict[RecordType, RecordSet]]:
    found: dict[str, dict[RecordType, RecordSet]] = {}
    for record in sets:
        found.setdefault(record.name.lower().rstrip("."), {})[record.type] = record
    return found


def changes(desired: Iterable[RecordSet], current: Iterable[RecordSet], federation: str
            ) -> tuple[list[NameChange], list[str]]:
    """(changes, problems) that make a zone shared with others hold `desired` for the names
    this federation owns: names marked with its ownership TXT (see OWNER_LABEL). A wanted
    name that holds records not marked as ours is someone else's: left alone, reported."""
    want, have = _by_name(desired), _by_name(current)
    mark = ownership(federation)
    owned = {name for name in have
             if (txt := have.get(f"{OWNER_LABEL}.{name}", {}).get("TXT")) is not None
             and mark in txt.values}
    result: list[NameChange] = []
    problems: list[str] = []
    for name in sorted(set(want) | owned):
        wanted, held = want.get(name, {}), have.get(name, {})
        if name not in owned:
            if held:
                problems.append(f"{name} holds records federator did not create: left alone")
                continue
            result.append(NameChange(name, new=True, put=tuple(wanted.values())))
        elif not wanted:
            result.append(NameChange(name, remove=tuple(sorted(held)), release=True))
        else:
            put = tuple(rs for kind, rs in sorted(wanted.items())
                        if held.get(kind) is None or (held[kind].ttl, set(held[kind].values))
                        != (rs.ttl, set(rs.values)))
            remove = tuple(kind for kind in sorted(held) if kind not in wanted)
            if put or remove:
                result.append(NameChange(name, put=put, remove=remove))
    return result, problems
