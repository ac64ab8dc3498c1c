"""What a lab is made of: pure data, validated by pydantic, no I/O."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_K8S_VERSION = "1.33.13"
DEFAULT_BASE_PORT = 17400
PLANE = "plane"
Provider = Literal["process", "kind"]

# Region and zone of the first members when the user names none.
DEFAULT_LOCATIONS: tuple[tuple[str, str], ...] = (
    ("us-east-1", "us-east-1a"),
    ("us-west-2", "us-west-2b"),
    ("eu-west-1", "eu-west-1a"),
    ("ap-southeast-1", "ap-southeast-1a"),
    ("eu-central-1", "eu-central-1b"),
    ("ap-northeast-1", "ap-northeast-1c"),
)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
# Ports each cluster needs, counted from its block's first port (see LabSpec.ports).
PORTS_PER_CLUSTER = 10


class MemberSpec(BaseModel):
    """One member cluster of the lab."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    region: str
    zone: str
    nodes: int = Field(default=2, ge=1, le=50)
    pod_capacity: int = Field(
        default=220, ge=1, le=10000, description="pods that the member's nodes can hold in all"
    )
    workloads: bool = Field(
        default=True,
        description="run pods (scheduler, kwok nodes, every controller); false for a light "
                    "member of only an apiserver and the controllers that join needs",
    )

    @field_validator("name", "region", "zone")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError(
                f"{value!r} is not a DNS label: use lower-case letters, digits and '-', "
                "at most 63 characters, starting and ending with a letter or digit"
            )
        return value

    def node_pods(self) -> list[int]:
        """Pod capacity of each kwok node: the member's capacity split as evenly as it goes."""
        count = min(self.nodes, self.pod_capacity)
        base, extra = divmod(self.pod_capacity, count)
        return [base + (1 if i < extra else 0) for i in range(count)]


class ClusterPorts(BaseModel):
    """The loopback ports of one cluster's components."""

    model_config = ConfigDict(frozen=True)

    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int


class LabSpec(BaseModel):
    """A lab: one federation plane and its members, all on this machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Provider = "process"
    k8s_version: str = DEFAULT_K8S_VERSION
    # Below Linux's ephemeral range (32768+), where outgoing connections take their ports.
    base_port: int = Field(default=DEFAULT_BASE_PORT, ge=1024, le=32767 - 100)
    # Each member's nodes have loopback addresses 127.10.<i>.<n>: at most 250 members.
    members: tuple[MemberSpec, ...] = Field(max_length=250)

    @field_validator("k8s_version")
    @classmethod
    def _version(cls, value: str) -> str:
        match = _VERSION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a Kubernetes release: write it as 1.33.13")
        major, minor, _ = (int(g) for g in match.groups())
        if (major, minor) != (1, 33):
            raise ValueError(
                f"Kubernetes {value} is not supported by the lab: it is pinned to 1.33.x "
                "so that the machine's kubectl matches; use for example 1.33.13"
            )
        return value.removeprefix("v")

    @model_validator(mode="after")
    def _unique_names(self) -> LabSpec:
        names = [m.name for m in self.members]
        if PLANE in names:
            raise ValueError(f"a member may not be called {PLANE!r}: that is the plane's name")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"member names must be unique; repeated: {', '.join(duplicates)}")
        if not self.members:
            raise ValueError("a lab needs at least one member cluster")
        last = self.base_port + PORTS_PER_CLUSTER * (len(self.members) + 1)
        if last > 65535:
            raise ValueError(f"base_port {self.base_port} leaves too few ports; use a lower one")
        return self

    @property
    def etcd_client_port(self) -> int:
        return self.base_port

    @property
    def etcd_peer_port(self) -> int:
        return self.base_port + 1

    @property
    def cluster_names(self) -> list[str]:
        return [PLANE, *(m.name for m in self.members)]

    def ports(self, cluster: str) -> ClusterPorts:
        """Ports of a cluster: the plane gets the block after etcd's, member i the i-th after."""
        index = self.cluster_names.index(cluster) + 1
        first = self.base_port + PORTS_PER_CLUSTER * index
        return ClusterPorts(
            apiserver=first, controller_manager=first + 1, scheduler=first + 2, kwok=first + 3
        )

    def all_ports(self) -> list[int]:
        ports = [self.etcd_client_port, self.etcd_peer_port]
        for name in self.cluster_names:
            p = self.ports(name)
            ports += [p.apiserver, p.controller_manager]
            if name != PLANE and self.member(name).workloads:
                ports += [p.scheduler, p.kwok]
        return ports

    def member(self, name: str) -> MemberSpec:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)


def default_members(
    count: int, *, nodes: int = 2, pod_capacity: int = 220,
    capacities: dict[str, int] | None = None, workloads: bool = True,
) -> tuple[MemberSpec, ...]:
    """Members `member-1` … `member-N` in the default regions and zones."""
    if count < 1:
        raise ValueError("--clusters must be at least 1")
    capacities = capacities or {}
    members = []
    for i in range(count):
        name = f"member-{i + 1}"
        region, zone = DEFAULT_LOCATIONS[i % len(DEFAULT_LOCATIONS)]
        if i >= len(DEFAULT_LOCATIONS):
            zone = f"{zone}{i // len(DEFAULT_LOCATIONS)}"
        members.append(
            MemberSpec(
                name=name,
                region=region,
                zone=zone,
                nodes=nodes,
                pod_capacity=capacities.get(name, pod_capacity),
                workloads=workloads,
            )
        )
    unknown = sorted(set(capacities) - {m.name for m in members})
    if unknown:
        raise ValueError(f"--capacity names clusters the lab does not have: {', '.join(unknown)}")
    return tuple(members)
