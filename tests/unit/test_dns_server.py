"""The embedded authoritative server: answers from a zone in memory (pure), and the server on
loopback UDP and TCP queried with dnspython while its records change."""

from __future__ import annotations

import asyncio

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from federator.dns.server import DnsServer
from federator.dns.zone import SoaFields, Zone, answer, answer_wire
from federator.domain.dns import RecordSet

ORIGIN = "example.com"
SOA = SoaFields("ns.example.com", "hostmaster.example.com", negative_ttl=30)
WEB = "web.shop.fed.svc.example.com"
RECORDS = [RecordSet(WEB, "A", 30, ("1.1.1.1", "2.2.2.2")),
           RecordSet(WEB, "AAAA", 30, ("2001:db8::1",)),
           RecordSet("web.shop.fed.svc.eu.example.com", "CNAME", 30, (WEB,)),
           RecordSet("owner.example.com", "TXT", 30, ('heritage=federator "x"',)),
           RecordSet("elsewhere.org", "A", 30, ("9.9.9.9",))]


def _zone(records: list[RecordSet] | None = None) -> Zone:
    return Zone(ORIGIN, RECORDS if records is None else records, serial=7, soa=SOA,
                nameservers=["ns.example.com"])


def _ask(name: str, rdtype: str, *, udp: bool = True, edns: int = -1,
         payload: int = 1232, zone: Zone | None = None) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=edns, payload=payload)
    return dns.message.from_wire(answer(zone or _zone(), query, udp=udp))


def test_records_are_answered_with_authority() -> None:
    reply = _ask(WEB, "A")
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert sorted(r.to_text() for r in reply.answer[0]) == ["1.1.1.1", "2.2.2.2"]
    assert reply.answer[0].ttl == 30
    assert [r.to_text() for r in _ask(WEB, "AAAA").answer[0]] == ["2001:db8::1"]
    txt = _ask("owner.example.com", "TXT").answer[0]
    assert [r.to_text() for r in txt] == ['"heritage=federator \\"x\\""']


def test_a_cname_is_followed_within_the_zone() -> None:
    reply = _ask("web.shop.fed.svc.eu.example.com", "A")
    assert [r.rdtype for r in reply.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    only = _ask("web.shop.fed.svc.eu.example.com", "CNAME")
    assert [r.to_text() for r in only.answer[0]] == [WEB + "."]


def test_the_apex_has_soa_and_ns() -> None:
    soa = _ask(ORIGIN, "SOA").answer[0][0]
    assert (soa.serial, soa.minimum, soa.mname.to_text()) == (7, 30, "ns.example.com.")
    assert [r.to_text() for r in _ask(ORIGIN, "NS").answer[0]] == ["ns.example.com."]


def test_missing_names_and_types_carry_the_soa() -> None:
    missing = _ask("nothing.example.com", "A")
    assert missing.rcode() == dns.rcode.NXDOMAIN and missing.flags & dns.flags.AA
    assert missing.authority[0].rdtype == dns.rdatatype.SOA
    nodata = _ask(WEB, "TXT")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA
    between = _ask("shop.fed.svc.example.com", "A")  # an empty non-terminal
    assert between.rcode() == dns.rcode.NOERROR and not between.answer
    dangling = _zone([RecordSet("a.example.com", "CNAME", 30, ("gone.example.com",))])
    chained = _ask("a.example.com", "A", zone=dangling)
    assert chained.rcode() == dns.rcode.NXDOMAIN and len(chained.answer) == 1


def test_names_outside_the_zone_are_refused() -> None:
    reply = _ask("elsewhere.org", "A")
    assert reply.rcode() == dns.rcode.REFUSED and not reply.flags & dns.flags.AA


def test_udp_answers_that_do_not_fit_are_truncated() -> None:
    many = [RecordSet(WEB, "A", 30, tuple(f"10.0.{i // 250}.{i % 250}" for i in range(200)))]
    zone = _zone(many)
    plain = _ask(WEB, "A", zone=zone)
    assert plain.flags & dns.flags.TC and not plain.answer
    small = _ask(WEB, "A", zone=zone, edns=0, payload=1232)
    assert small.flags & dns.flags.TC and small.edns == 0
    tcp = _ask(WEB, "A", zone=zone, udp=False)
    assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 200


def test_edns_is_answered_in_kind() -> None:
    reply = _ask(WEB, "A", edns=0, payload=4096)
    assert reply.edns == 0 and reply.payload == 1232
    assert _ask(WEB, "A").edns == -1
    bad = _ask(WEB, "A", edns=1)
    assert bad.rcode() == dns.rcode.BADVERS


@pytest.mark.asyncio
async def test_the_server_answers_over_udp_and_tcp_while_records_change() -> None:
    server = DnsServer(ORIGIN, SOA, ["ns.example.com"])
    port = await server.start("127.0.0.1", 0)
    try:
        server.update(RECORDS)
        query = dns.message.make_query(WEB, "A")
        udp = await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=5)
        assert sorted(r.to_text() for r in udp.answer[0]) == ["1.1.1.1", "2.2.2.2"]
        tcp = await dns.asyncquery.tcp(query, "127.0.0.1", port=port, timeout=5)
        assert tcp.answer == udp.answer
        serial = server.zone.serial
        answers: list[set[str]] = []

        async def keep_asking() -> None:
            for _ in range(200):
                reply = await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=5)
                answers.append({r.to_text() for rrset in reply.answer for r in rrset})

        async def keep_changing() -> None:
            for i in range(50):
                server.update([RecordSet(WEB, "A", 30, (f"10.0.0.{i % 2 + 1}",))])
                await asyncio.sleep(0)  # a turn of the loop: the queries in between

        await asyncio.gather(keep_asking(), keep_changing())
        assert all(a in ({"10.0.0.1"}, {"10.0.0.2"}, {"1.1.1.1", "2.2.2.2"}) for a in answers)
        assert server.zone.serial > serial
    finally:
        await server.stop()


def test_a_repeated_query_gets_the_same_answer_with_its_own_id() -> None:
    zone = _zone()
    first = dns.message.make_query(WEB, "A")
    second = dns.message.make_query(WEB, "A")
    second.id = (first.id + 1) % 65536
    one = answer_wire(zone, first.to_wire(), udp=True)
    two = answer_wire(zone, second.to_wire(), udp=True)
    assert one is not None and two is not None and len(zone.answered) == 1
    assert dns.message.from_wire(two).id == second.id
    assert dns.message.from_wire(two).answer == dns.message.from_wire(one).answer
    assert answer_wire(zone, b"\x00\x01garbage", udp=True) is None
