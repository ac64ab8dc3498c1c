from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from federator.lab.spec import PLANE, LabSpec, MemberSpec, default_members


def test_default_members_have_the_documented_locations() -> None:
    members = default_members(3)
    assert [(m.name, m.region, m.zone) for m in members] == [
        ("member-1", "us-east-1", "us-east-1a"),
        ("member-2", "us-west-2", "us-west-2b"),
        ("member-3", "eu-west-1", "eu-west-1a"),
    ]


def test_many_members_get_distinct_zones() -> None:
    members = default_members(14)
    assert len({m.zone for m in members}) == 14


def test_capacity_of_one_member() -> None:
    members = default_members(3, capacities={"member-2": 2})
    assert [m.pod_capacity for m in members] == [220, 2, 220]
    assert members[1].node_pods() == [1, 1]


def test_capacity_for_unknown_member_is_rejected() -> None:
    with pytest.raises(ValueError, match="member-9"):
        default_members(3, capacities={"member-9": 2})


@given(nodes=st.integers(1, 50), capacity=st.integers(1, 10000))
def test_node_pods_split_capacity_exactly(nodes: int, capacity: int) -> None:
    member = MemberSpec(name="m", region="r", zone="z", nodes=nodes, pod_capacity=capacity)
    split = member.node_pods()
    assert sum(split) == capacity
    assert all(p >= 1 for p in split)
    assert max(split) - min(split) <= 1


def test_ports_are_distinct_and_above_base() -> None:
    spec = LabSpec(members=default_members(5), base_port=20000)
    ports = spec.all_ports()
    assert len(ports) == len(set(ports))
    assert min(ports) == 20000


@pytest.mark.parametrize(
    ("version", "message"),
    [("1.34.0", "pinned to 1.33"), ("latest", "not a Kubernetes release"), ("1.33", "1.33.13")],
)
def test_bad_versions_name_the_fix(version: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LabSpec(members=default_members(1), k8s_version=version)


def test_v_prefix_is_accepted() -> None:
    assert LabSpec(members=default_members(1), k8s_version="v1.33.2").k8s_version == "1.33.2"


def test_member_named_plane_is_rejected() -> None:
    with pytest.raises(ValidationError, match="plane"):
        LabSpec(members=(MemberSpec(name=PLANE, region="r", zone="z"),))


def test_duplicate_member_names_are_rejected() -> None:
    member = MemberSpec(name="a", region="r", zone="z")
    with pytest.raises(ValidationError, match="repeated: a"):
        LabSpec(members=(member, member))


def test_names_must_be_dns_labels() -> None:
    with pytest.raises(ValidationError, match="DNS label"):
        MemberSpec(name="Member_1", region="r", zone="z")
