"""The DNS records of federated Services: levels, fallback CNAMEs, IPv6, bad names."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from federator.domain.dns import (
    Endpoints,
    NameChange,
    Place,
    RecordSet,
    changes,
    has_ready_endpoint,
    node_addresses,
    ownership,
    records,
    service_addresses,
)

PLACES = {"m1": Place("us-east", "us-east-1a", True), "m2": Place("us-east", "us-east-1b", True),
          "m3": Place("eu-west", "eu-west-1a", True)}
PREFIX = "web.shop.fed.svc"


def _sets(services: dict[tuple[str, str], dict[str, Endpoints]],
          places: dict[str, Place] | None = None) -> dict[tuple[str, str], tuple[str, ...]]:
    found, problems = records("fed", "example.com.", services, places or PLACES, ttl=30)
    assert not problems
    assert all(s.ttl == 30 for s in found)
    return {(s.name, s.type): s.values for s in found}


def test_every_level_holds_the_healthy_clusters_there() -> None:
    sets = _sets({("shop", "web"): {"m1": Endpoints(("1.1.1.1",), True),
                                    "m2": Endpoints(("2.2.2.2",), True),
                                    "m3": Endpoints(("3.3.3.3",), True)}})
    assert sets == {
        (f"{PREFIX}.example.com", "A"): ("1.1.1.1", "2.2.2.2", "3.3.3.3"),
        (f"{PREFIX}.us-east.example.com", "A"): ("1.1.1.1", "2.2.2.2"),
        (f"{PREFIX}.us-east-1a.us-east.example.com", "A"): ("1.1.1.1",),
        (f"{PREFIX}.us-east-1b.us-east.example.com", "A"): ("2.2.2.2",),
        (f"{PREFIX}.eu-west.example.com", "A"): ("3.3.3.3",),
        (f"{PREFIX}.eu-west-1a.eu-west.example.com", "A"): ("3.3.3.3",),
    }


def test_a_level_without_healthy_endpoints_points_one_level_up() -> None:
    sets = _sets({("shop", "web"): {"m1": Endpoints(("1.1.1.1",), False),  # no ready pod
                                    "m2": Endpoints(("2.2.2.2",), True),
                                    "m3": Endpoints(("3.3.3.3",), True)}},
                 {**PLACES, "m3": Place("eu-west", "eu-west-1a", False)})  # not Ready
    assert sets[(f"{PREFIX}.us-east-1a.us-east.example.com", "CNAME")] == (
        f"{PREFIX}.us-east.example.com",)
    assert sets[(f"{PREFIX}.us-east.example.com", "A")] == ("2.2.2.2",)
    assert sets[(f"{PREFIX}.eu-west-1a.eu-west.example.com", "CNAME")] == (
        f"{PREFIX}.eu-west.example.com",)
    assert sets[(f"{PREFIX}.eu-west.example.com", "CNAME")] == (f"{PREFIX}.example.com",)
    assert sets[(f"{PREFIX}.example.com", "A")] == ("2.2.2.2",)
    assert (f"{PREFIX}.us-east-1a.us-east.example.com", "A") not in sets


def test_nothing_healthy_anywhere_leaves_the_global_name_out() -> None:
    sets = _sets({("shop", "web"): {"m3": Endpoints(("3.3.3.3",), False)}})
    assert sets == {
        (f"{PREFIX}.eu-west.example.com", "CNAME"): (f"{PREFIX}.example.com",),
        (f"{PREFIX}.eu-west-1a.eu-west.example.com", "CNAME"): (
            f"{PREFIX}.eu-west.example.com",)}


def test_ipv6_addresses_are_aaaa_records() -> None:
    sets = _sets({("shop", "web"): {"m1": Endpoints(("2001:db8::1", "1.1.1.1",
                                                     "2001:0db8:0::2"), True)}})
    assert sets[(f"{PREFIX}.example.com", "AAAA")] == ("2001:db8::1", "2001:db8::2")
    assert sets[(f"{PREFIX}.example.com", "A")] == ("1.1.1.1",)


def test_clusters_without_region_count_only_globally() -> None:
    sets = _sets({("shop", "web"): {"x": Endpoints(("9.9.9.9",), True)}},
                 {"x": Place(None, None, True)})
    assert sets == {(f"{PREFIX}.example.com", "A"): ("9.9.9.9",)}


def test_names_that_are_not_dns_labels_are_reported_and_left_out() -> None:
    places = {"m1": Place("US_East", "a", True), "m2": Place("eu", "Zone 1", True)}
    found, problems = records("fed", "example.com", {
        ("shop", "web"): {"m1": Endpoints(("1.1.1.1",), True),
                          "m2": Endpoints(("2.2.2.2", "lb.example.net"), True)}}, places)
    names = {s.name for s in found}
    assert names == {f"{PREFIX}.example.com", f"{PREFIX}.eu.example.com"}
    assert any("region of cluster m1 'US_East' is not a valid DNS label" in p for p in problems)
    assert any("zone of cluster m2 'Zone 1'" in p for p in problems)
    assert any("'lb.example.net' is not an IP address" in p for p in problems)
    assert records("Fed!", "example.com", {("a", "b"): {}}, {}) == (
        [], ["federation name 'Fed!' is not a valid DNS label (at most 63 lower-case letters, "
             "digits and '-', starting and ending with a letter or digit)"])


def test_an_empty_federation_has_no_records() -> None:
    assert records("fed", "example.com", {}, {}) == ([], [])
    assert records("fed", "example.com", {("shop", "web"): {}}, PLACES) == ([], [])


@given(st.dictionaries(st.sampled_from(["m1", "m2", "m3"]),
                       st.tuples(st.lists(st.ip_addresses(v=4).map(str), max_size=3),
                                 st.booleans()), max_size=3),
       st.dictionaries(st.sampled_from(["m1", "m2", "m3"]), st.booleans()))
def test_every_cname_points_at_a_name_one_level_up(
        members: dict[str, tuple[list[str], bool]], ready: dict[str, bool]) -> None:
    places = {c: Place(p.region, p.zone, ready.get(c, True)) for c, p in PLACES.items()}
    found, _ = records("fed", "example.com",
                       {("shop", "web"): {c: Endpoints(tuple(a), h)
                                          for c, (a, h) in members.items()}}, places)
    by_name: dict[str, list[RecordSet]] = {}
    for record in found:
        by_name.setdefault(record.name, []).append(record)
    for name, sets in by_name.items():
        types = {s.type for s in sets}
        assert "CNAME" not in types or types == {"CNAME"}  # a CNAME stands alone
        for cname in (s for s in sets if s.type == "CNAME"):
            target = cname.values[0]
            assert name.endswith("." + target.split(".svc.", 1)[1]) or target.endswith(
                ".svc.example.com")
            assert name.count(".") == target.count(".") + 1
    healthy = sorted({a for c, (a_list, h) in members.items() if h and places[c].ready
                      for a in a_list}, key=lambda a: tuple(int(x) for x in a.split(".")))
    top = [s for s in found if s.name == f"{PREFIX}.example.com" and s.type == "A"]
    assert (list(top[0].values) if top else []) == healthy


def test_where_a_service_is_reached() -> None:
    lb = {"spec": {"type": "LoadBalancer"},
          "status": {"loadBalancer": {"ingress": [{"ip": "5.5.5.5"}, {"hostname": "x"}]}}}
    assert service_addresses(lb, ["10.0.0.1"]) == ("5.5.5.5",)
    external = {"spec": {"type": "ClusterIP", "externalIPs": ["6.6.6.6"]}}
    assert service_addresses(external, ["10.0.0.1"]) == ("6.6.6.6",)
    nodeport = {"spec": {"type": "NodePort"}}
    assert service_addresses(nodeport, ["10.0.0.1"]) == ("10.0.0.1",)
    assert service_addresses({"spec": {"type": "ClusterIP"}}, ["10.0.0.1"]) == ()


def test_node_addresses_prefer_external_ones_of_ready_nodes() -> None:
    def node(ready: str, **addresses: str) -> dict[str, object]:
        return {"status": {"conditions": [{"type": "Ready", "status": ready}],
                           "addresses": [{"type": t, "address": a}
                                         for t, a in addresses.items()]}}

    assert node_addresses([node("True", InternalIP="10.0.0.1"),
                           node("False", InternalIP="10.0.0.2")]) == ("10.0.0.1",)
    assert node_addresses([node("True", InternalIP="10.0.0.1", ExternalIP="7.7.7.7")]) == (
        "7.7.7.7",)


def test_ready_endpoints() -> None:
    assert has_ready_endpoint([{"endpoints": [{"conditions": {"ready": False}},
                                              {"conditions": {}}]}])
    assert not has_ready_endpoint([{"endpoints": [{"conditions": {"ready": False}}]}])
    assert not has_ready_endpoint([{"endpoints": None}, {}])


def test_changes_touch_only_names_the_federation_marked() -> None:
    mark = RecordSet("_federator.a.example.com", "TXT", 30, (ownership("fed"),))
    current = [RecordSet("a.example.com", "A", 30, ("1.1.1.1",)), mark,
               RecordSet("theirs.example.com", "A", 300, ("9.9.9.9",)),
               RecordSet("gone.example.com", "A", 30, ("3.3.3.3",)),
               RecordSet("_federator.gone.example.com", "TXT", 30, (ownership("fed"),)),
               RecordSet("other.example.com", "A", 30, ("4.4.4.4",)),
               RecordSet("_federator.other.example.com", "TXT", 30, (ownership("else"),))]
    desired = [RecordSet("a.example.com", "A", 30, ("1.1.1.1",)),  # the same: nothing to do
               RecordSet("a.example.com", "AAAA", 30, ("2001:db8::1",)),
               RecordSet("theirs.example.com", "A", 30, ("5.5.5.5",)),
               RecordSet("new.example.com", "CNAME", 30, ("a.example.com",)),
               RecordSet("other.example.com", "A", 30, ("6.6.6.6",))]
    todo, problems = changes(desired, current, "fed")
    assert todo == [
        NameChange("a.example.com", put=(desired[1],)),
        NameChange("gone.example.com", remove=("A",), release=True),
        NameChange("new.example.com", new=True, put=(desired[3],)),
    ]
    assert problems == ["other.example.com holds records federator did not create: left alone",
                        "theirs.example.com holds records federator did not create: left alone"]
    assert changes(desired[:1], current[:2], "fed") == ([], [])


def test_a_changed_ttl_or_value_set_is_put_again_and_a_dropped_type_removed() -> None:
    mark = RecordSet("_federator.a.example.com", "TXT", 30, (ownership("fed"),))
    current = [RecordSet("a.example.com", "A", 30, ("1.1.1.1", "2.2.2.2")), mark,
               RecordSet("a.example.com", "AAAA", 30, ("2001:db8::1",))]
    wanted = RecordSet("a.example.com", "A", 60, ("2.2.2.2", "1.1.1.1"))
    assert changes([wanted], current, "fed")[0] == [
        NameChange("a.example.com", put=(wanted,), remove=("AAAA",))]
