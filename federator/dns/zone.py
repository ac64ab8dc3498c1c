"""A zone held in memory, and the answer an authoritative server gives from it: SOA and NS
at the apex, A/AAAA/CNAME/TXT, NXDOMAIN and NODATA with the SOA, the AA flag, truncation over
UDP and EDNS. Pure: a query message in, a response message out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from federator.domain.dns import RecordSet

EDNS_PAYLOAD = 1232  # what this server offers and sends at most over UDP with EDNS
PLAIN_UDP = 512
MAX_CHAIN = 8  # CNAMEs followed within the zone


@dataclass(frozen=True)
class SoaFields:
    nameserver: str  # the primary name server (MNAME), absolute
    hostmaster: str  # the RNAME, e.g. hostmaster.example.com
    refresh: int = 3600
    retry: int = 600
    expire: int = 86400
    negative_ttl: int = 30  # the SOA's MINIMUM: how long NXDOMAIN and NODATA are cached


class Zone:
    """An immutable snapshot of one zone: swap a whole Zone to change what is answered."""

    def __init__(self, origin: str, record_sets: Iterable[RecordSet], *, serial: int,
                 soa: SoaFields, nameservers: Iterable[str]) -> None:
        self.origin = dns.name.from_text(origin)
        self.serial = serial
        self.rrsets: dict[tuple[dns.name.Name, dns.rdatatype.RdataType], dns.rrset.RRset] = {}
        soa_text = (f"{_absolute(soa.nameserver)} {_absolute(soa.hostmaster)} {serial} "
                    f"{soa.refresh} {soa.retry} {soa.expire} {soa.negative_ttl}")
        self.soa = dns.rrset.from_text(self.origin, soa.negative_ttl, "IN", "SOA", soa_text)
        self._add(self.soa)
        self._add(dns.rrset.from_text_list(self.origin, 3600, "IN", "NS",
                                           [_absolute(n) for n in nameservers]))
        for record in record_sets:
            name = dns.name.from_text(record.name)
            if not name.is_subdomain(self.origin) or name == self.origin:
                continue  # not ours to answer (or the apex, which holds SOA and NS)
            values = [_absolute(v) if record.type == "CNAME" else
                      _quoted(v) if record.type == "TXT" else v for v in record.values]
            self._add(dns.rrset.from_text_list(name, record.ttl, "IN", record.type, values))
        # Answers already made from this snapshot, by the query's bytes after its ID.
        self.answered: dict[tuple[bytes, bool], bytes] = {}
        # Every name that exists, empty non-terminals included: NODATA, not NXDOMAIN.
        self.names: set[dns.name.Name] = set()
        for name, _ in self.rrsets:
            while name.is_subdomain(self.origin) and name not in self.names:
                self.names.add(name)
                name = name.parent()

    def _add(self, rrset: dns.rrset.RRset) -> None:
        self.rrsets[(rrset.name, rrset.rdtype)] = rrset

    def of_name(self, name: dns.name.Name) -> list[dns.rrset.RRset]:
        return [r for (n, _), r in self.rrsets.items() if n == name]


def _absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _resolve(zone: Zone, qname: dns.name.Name, qtype: dns.rdatatype.RdataType,
             response: dns.message.Message) -> None:
    """Fill the answer (and authority) sections for one question."""
    name = qname
    for _ in range(MAX_CHAIN):
        if not name.is_subdomain(zone.origin):
            return  # a CNAME out of the zone: the resolver follows it
        cname = zone.rrsets.get((name, dns.rdatatype.CNAME))
        if cname is not None and qtype != dns.rdatatype.CNAME:
            response.answer.append(cname)
            name = dns.name.from_text(cname[0].to_text())
            continue
        if qtype == dns.rdatatype.ANY:
            found = zone.of_name(name)
        else:
            one = zone.rrsets.get((name, qtype))
            found = [one] if one is not None else []
        if found:
            response.answer.extend(found)
            return
        if name not in zone.names:  # the last name of a chain decides (RFC 6604)
            response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(zone.soa)
        return


def answer(zone: Zone, query: dns.message.Message, *, udp: bool) -> bytes:
    """The wire-format response to `query` (truncated, TC set, if it does not fit UDP)."""
    response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
    response.flags &= ~dns.flags.RA
    if query.edns > 0:
        response.use_edns(0, 0, EDNS_PAYLOAD)
        response.set_rcode(dns.rcode.BADVERS)
        return response.to_wire()
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response.to_wire()
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    question = query.question[0]
    if question.rdclass != dns.rdataclass.IN or not question.name.is_subdomain(zone.origin):
        response.set_rcode(dns.rcode.REFUSED)
        return response.to_wire()
    response.flags |= dns.flags.AA
    _resolve(zone, question.name, question.rdtype, response)
    limit = 65535
    if udp:
        limit = min(max(query.payload, PLAIN_UDP), EDNS_PAYLOAD) if query.edns == 0 else PLAIN_UDP
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        response.answer.clear()
        response.authority.clear()
        response.additional.clear()
        response.flags |= dns.flags.TC
        return response.to_wire()


ANSWERED_MAX = 10000  # answers kept per snapshot


def answer_wire(zone: Zone, wire: bytes, *, udp: bool) -> bytes | None:
    """The response to a query as it came off the wire, or None to send nothing. The same
    query bytes (but for the ID) get the same answer from one snapshot: made once, then
    copied with the asker's ID."""
    key = (wire[2:], udp)
    made = zone.answered.get(key)
    if made is not None:
        return wire[:2] + made[2:]
    query = parse(wire)
    if query is None:
        return None
    reply = answer(zone, query, udp=udp)
    if len(zone.answered) < ANSWERED_MAX and query.keyring is None and not query.had_tsig:
        zone.answered[key] = reply
    return reply


def parse(wire: bytes) -> dns.message.Message | None:
    """A query from the wire, or None if it cannot be read (no answer is sent then)."""
    try:
        message = dns.message.from_wire(wire)
    except (dns.exception.DNSException, ValueError):
        return None
    if message.flags & dns.flags.QR:
        return None  # a response, not a query
    return message
