"""Cross-cluster DNS on the lab, answered by the embedded server and kept in a real BIND 9:
records appear; a member whose pods are all unready leaves the zone-level name, which falls
back to a CNAME; a member whose apiserver stops leaves every level and comes back with it.
Queried with dnspython and with dig."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
import requests

from tests.bind import KEY_NAME, Bind
from tests.integration.conftest import (
    DEPLOYMENT,
    DNS_ZONE,
    GATEWAY_TOKENS,
    THEIR_RECORD,
    ca_of,
    in_place_of,
)
from tests.integration.test_faults import events_of
from tests.kube import eventually, get_json, kubectl
from tests.serving import Serve, free_port

pytestmark = pytest.mark.integration
SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: dns-web}
spec:
  type: NodePort
  selector: {app: dns-web}
  ports: [{port: 80, targetPort: 80}]
"""
BASE = "dns-web.default.federation.svc"
GLOBAL = f"{BASE}.{DNS_ZONE}"
WEST = f"{BASE}.us-west-2.{DNS_ZONE}"
WEST_ZONE = f"{BASE}.us-west-2b.us-west-2.{DNS_ZONE}"
EAST_ZONE = f"{BASE}.us-east-1a.us-east-1.{DNS_ZONE}"
ADDRESSES = {m: [f"127.20.{i}.1", f"127.20.{i}.2"]
             for i, m in enumerate(("member-1", "member-2", "member-3"), start=1)}


def _embedded(serving: Serve, name: str, kind: str = "A") -> list[str]:
    """What the embedded server answers (dnspython): values of the answer, in order."""
    reply = dns.query.udp(dns.message.make_query(name, kind), "127.0.0.1",
                          port=serving.dns_port, timeout=5)
    return sorted(r.to_text() for rrset in reply.answer for r in rrset
                  if dns.rdatatype.to_text(rrset.rdtype) == kind)


def _dig(port: int, name: str, kind: str = "A") -> list[str]:
    done = subprocess.run(["dig", "+short", "+norecurse", "-p", str(port), "@127.0.0.1", name,
                           kind], capture_output=True, text=True, check=True, timeout=30)
    return sorted(line for line in done.stdout.splitlines() if line)


def _both(serving: Serve, bind: Bind, name: str, kind: str, expected: list[str]) -> bool:
    return (_embedded(serving, name, kind) == expected
            and _dig(serving.dns_port, name, kind) == expected
            and bind.dig(name, kind) == expected)


def _ips(*members: str) -> list[str]:
    return sorted(a for m in members for a in ADDRESSES[m])


def _set_ready(federation: Path, member: str, ready: bool) -> None:
    """Mark every dns-web pod of a member (un)ready, as a failing readiness probe would."""
    pods = get_json(federation, member, "pods", "-l", "app=dns-web")["items"]
    status = "True" if ready else "False"
    for pod in pods:
        conditions = [c for c in pod["status"].get("conditions") or []
                      if c["type"] not in ("Ready", "ContainersReady")]
        conditions += [{"type": kind, "status": status} for kind in ("Ready", "ContainersReady")]
        statuses: list[dict[str, Any]] = [{**s, "ready": ready}
                                          for s in pod["status"].get("containerStatuses") or []]
        kubectl(federation, member, "patch", "pod", pod["metadata"]["name"],
                "--subresource=status", "--type=merge", "-p",
                json.dumps({"status": {"conditions": conditions,
                                       "containerStatuses": statuses}}))


def _api_records(serving: Serve, gateway: Path, tmp_path: Path) -> Any:
    """What the REST API lists under /federator/v1/dns."""
    ca = tmp_path / "ca.pem"
    ca.write_text(ca_of(gateway))
    answer = requests.get(f"https://127.0.0.1:{serving.gateway_port}/federator/v1/dns",
                          headers={"Authorization": f"Bearer {next(iter(GATEWAY_TOKENS))}"},
                          verify=str(ca), timeout=30)
    assert answer.status_code == 200
    return answer.json()


def test_records_follow_readiness_and_cluster_health(
        serving: Serve, bind: Bind, federation: Path, gateway: Path, lab: Any, lab_spec: Any,
        tmp_path: Path) -> None:
    kubectl(federation, "federation", "apply", "-f", "-",
            stdin=DEPLOYMENT.format(name="dns-web", replicas=3))
    kubectl(federation, "federation", "apply", "-f", "-", stdin=SERVICE)
    try:
        _follow(serving, bind, federation, gateway, lab, lab_spec, tmp_path)
    finally:  # later tests count what is in the members
        kubectl(federation, "federation", "delete", "deployment,service", "dns-web")
    eventually(lambda: bind.dig(GLOBAL) == [] and not _embedded(serving, GLOBAL),
               "dns-web's records gone with it")


def _follow(serving: Serve, bind: Bind, federation: Path, gateway: Path, lab: Any,
            lab_spec: Any, tmp_path: Path) -> None:
    everyone = _ips("member-1", "member-2", "member-3")
    eventually(lambda: _both(serving, bind, GLOBAL, "A", everyone), "every member's addresses")
    assert _both(serving, bind, WEST_ZONE, "A", _ips("member-2"))
    listed = _api_records(serving, gateway, tmp_path)
    assert {"name": GLOBAL, "type": "A", "ttl": 30, "values": everyone} in listed["records"]
    assert listed["zone"] == DNS_ZONE
    assert _both(serving, bind, EAST_ZONE, "A", _ips("member-1"))
    assert bind.dig(THEIR_RECORD[0]) == [THEIR_RECORD[1]]  # someone else's: untouched

    _set_ready(federation, "member-2", False)
    try:
        eventually(lambda: _both(serving, bind, WEST_ZONE, "CNAME", [WEST + "."]),
                   "member-2's zone name falls back to its region")
        assert _both(serving, bind, WEST, "CNAME", [GLOBAL + "."])
        assert _both(serving, bind, GLOBAL, "A", _ips("member-1", "member-3"))
    finally:
        _set_ready(federation, "member-2", True)
    eventually(lambda: _both(serving, bind, WEST_ZONE, "A", _ips("member-2")),
               "member-2's addresses back")

    lab.stop_component("member-3/kube-apiserver")
    try:
        eventually(lambda: _both(serving, bind, GLOBAL, "A", _ips("member-1", "member-2")),
                   "member-3 out of every level", attempts=600)
        eu = f"{BASE}.eu-west-1.{DNS_ZONE}"
        assert _both(serving, bind, eu, "CNAME", [GLOBAL + "."])
    finally:
        lab.up(lab_spec)
    eventually(lambda: _both(serving, bind, GLOBAL, "A", everyone), "member-3 back",
               attempts=600)
    assert bind.dig(THEIR_RECORD[0]) == [THEIR_RECORD[1]]

    # The plane away for longer than serve's lease: the embedded server still answers from
    # the members it watches.
    since = len(serving.log.read_text())
    lab.stop_component("plane/kube-apiserver")
    try:
        eventually(lambda: "lost leadership: the leader's work stopped; campaigning again"
                   in {e["event"] for e in events_of(serving.log.read_text(), since)},
                   "serve gives up its lease without the plane", attempts=600)
        assert _embedded(serving, GLOBAL) == everyone
        assert _dig(serving.dns_port, WEST_ZONE) == _ips("member-2")
    finally:
        lab.up(lab_spec)
    eventually(lambda: serving.get("/readyz")[0] == 200, "serve ready again", attempts=600)


def test_the_embedded_server_is_authoritative_for_the_zone(serving: Serve) -> None:
    reply = dns.query.tcp(dns.message.make_query(f"nothing.{DNS_ZONE}", "A"), "127.0.0.1",
                          port=serving.dns_port, timeout=5)
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert reply.authority[0].rdtype == dns.rdatatype.SOA
    assert _dig(serving.dns_port, DNS_ZONE, "SOA")[0].startswith(f"ns.{DNS_ZONE}. ")


def test_a_region_that_is_not_a_dns_label_is_reported_on_the_service(
        serving: Serve, federation: Path) -> None:
    kubectl(federation, "federation", "apply", "-f", "-",
            stdin=SERVICE.replace("dns-web", "dns-odd"))  # no pod: CNAMEs up to nothing
    region = f"dns-odd.default.federation.svc.us-east-1.{DNS_ZONE}"
    eventually(lambda: _embedded(serving, region, "CNAME"), "dns-odd's records")
    kubectl(federation, "federation", "patch", "cluster", "member-1", "--type=merge",
            "-p", json.dumps({"spec": {"region": "US_East"}}))
    try:
        def reported() -> list[dict[str, Any]]:
            return list(get_json(federation, "federation", "events", "--field-selector",
                                 "involvedObject.name=dns-odd,reason=DNSRecordInvalid")["items"])

        event = eventually(reported, "a DNSRecordInvalid event on the Service")[0]
        assert "region of cluster member-1 'US_East' is not a valid DNS label" in (
            event["message"])
        assert event["type"] == "Warning"
        eventually(lambda: not _embedded(serving, region, "CNAME"),
                   "member-1's region level left out")
    finally:
        kubectl(federation, "federation", "patch", "cluster", "member-1", "--type=merge",
                "-p", json.dumps({"spec": {"region": "us-east-1"}}))
        kubectl(federation, "federation", "delete", "service", "dns-odd")


def test_a_busy_dns_port_stops_serve_with_one_clear_line(
        serving: Serve, federation: Path) -> None:
    """A second replica (standby: the session's serve leads) still serves DNS, so it needs
    its port; taken, it exits 1 naming the setting, with no traceback."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "federator", "--kubeconfig", str(federation), "serve",
             "--identity", "busy-dns", "--http-port", str(free_port()),
             "--gateway-port", str(free_port())],
            env={**os.environ, "FEDERATOR_DNS__EMBEDDED__PORT": str(port)},
            capture_output=True, text=True, timeout=120, check=False)
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert f"dns.embedded: cannot listen on 127.0.0.1:{port}" in said
    assert "Traceback" not in said and "Unclosed" not in said


def test_load_balancer_ingress_gives_a_and_aaaa_records(serving: Serve, bind: Bind,
                                                        federation: Path) -> None:
    """A LoadBalancer Service is reached at its load balancer's ingress addresses (written
    into each member's status as a cloud's controller would): IPv4 as A, IPv6 as AAAA, in the
    embedded server and in BIND. (Not externalIPs: the apiserver refuses loopback ones, and
    the lab hands out no other address; `service_addresses` unit tests hold that order.)"""
    kubectl(federation, "federation", "apply", "-f", "-",
            stdin=DEPLOYMENT.format(name="dns-lb", replicas=3))
    kubectl(federation, "federation", "apply", "-f", "-",
            stdin=SERVICE.replace("dns-web", "dns-lb").replace("NodePort", "LoadBalancer"))
    name = f"dns-lb.default.federation.svc.{DNS_ZONE}"
    members = ("member-1", "member-2", "member-3")
    try:
        for index, member in enumerate(members, start=1):
            # dns-lb itself (another test's Service may be there too).
            eventually(lambda m=member: any(
                s["metadata"]["name"] == "dns-lb" for s in get_json(
                    federation, m, "services", "-l", "federator.io/managed-by")["items"]),
                f"dns-lb in {member}")
            kubectl(federation, member, "patch", "service", "dns-lb", "--subresource=status",
                    "--type=merge", "-p", json.dumps({"status": {"loadBalancer": {"ingress": [
                        {"ip": f"127.0.1.{index}"}, {"ip": "::1"}]}}}))
        expected = [f"127.0.1.{index}" for index in range(1, len(members) + 1)]
        eventually(lambda: _both(serving, bind, name, "A", expected),
                   "every member's load balancer address", attempts=600)
        assert _both(serving, bind, name, "AAAA", ["::1"])
    finally:
        kubectl(federation, "federation", "delete", "deployment,service", "dns-lb")
    eventually(lambda: bind.dig(name) == [] and bind.dig(name, "AAAA") == [],
               "dns-lb's records gone with it")


def test_a_wrong_key_is_an_event_and_a_metric(serving: Serve, bind: Bind, federation: Path,
                                              tmp_path: Path) -> None:
    """The leader with a key BIND does not know: its zone transfer and updates are refused;
    that is a Warning event DNSUpdateFailed on the federation's ConfigMap and
    federator_dns_updates_total{outcome="failed"}, and serve goes on."""
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("d3Jvbmcgc2VjcmV0IG9mIDMyIGJ5dGVzISEhISEhISE=")
    with in_place_of(serving, federation, "wrong-key", tmp_path / "serve.log",
                     {"FEDERATOR_DNS__RFC2136__ENABLED": "true",
                      "FEDERATOR_DNS__RFC2136__PORT": str(bind.port),
                      "FEDERATOR_DNS__RFC2136__KEY_NAME": KEY_NAME,
                      "FEDERATOR_DNS__RFC2136__KEY_SECRET_FILE": str(wrong)}) as leader:
        failed = 'federator_dns_updates_total{outcome="failed",provider="rfc2136"}'
        eventually(lambda: (leader.metric(failed) or 0) >= 1, "a failed update counted",
                   attempts=600)

        def reported() -> list[dict[str, Any]]:
            return list(get_json(federation, "federation", "events", "-n", "federation-system",
                                 "--field-selector", "reason=DNSUpdateFailed")["items"])

        event = eventually(reported, "a DNSUpdateFailed event")[0]
        assert event["type"] == "Warning"
        assert event["involvedObject"]["name"] == "federator"
        assert "TSIG" in event["message"] and wrong.read_text() not in event["message"]
        assert wrong.read_text() not in leader.log.read_text()
        assert leader.process.poll() is None
