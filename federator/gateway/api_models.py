"""What the REST API under /federator/v1 takes and gives: pydantic models, from which its
OpenAPI document is made."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from federator.domain.preferences import PreferencesModel
from federator.domain.spreading import MAX_REPLICAS

DnsLabel = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
                                description="a DNS-1123 label")]
Name = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
                            description="a DNS-1123 subdomain")]
LabelValue = Annotated[str, Field(pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$",
                                  max_length=63)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# errors ------------------------------------------------------------------------------------
class StatusCause(_Model):
    field: str
    message: str
    reason: str = "FieldValueInvalid"


class StatusDetails(_Model):
    causes: list[StatusCause] = []


class Status(_Model):
    """A failure, as Kubernetes reports one."""

    kind: Literal["Status"] = "Status"
    api_version: Literal["v1"] = Field(default="v1", alias="apiVersion")
    status: Literal["Failure"] = "Failure"
    code: int
    reason: str
    message: str
    details: StatusDetails | None = None


# clusters ----------------------------------------------------------------------------------
class Capacity(_Model):
    nodes: int = 0
    ready_nodes: int = Field(default=0, alias="readyNodes")
    allocatable_pods: int = Field(default=0, alias="allocatablePods")


class ClusterInfo(_Model):
    name: str
    server: str
    ready: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    region: str | None = None
    zone: str | None = None
    labels: dict[str, str] = {}
    kubernetes_version: str | None = Field(default=None, alias="kubernetesVersion")
    capacity: Capacity | None = None


class ClusterList(_Model):
    items: list[ClusterInfo]


class JoinRequest(_Model):
    """Join the cluster of a kubeconfig context whose user may create federator's identity
    there (cluster-admin); the kubeconfig is used for the join and not kept."""

    name: DnsLabel
    kubeconfig: str = Field(min_length=1, max_length=1024 * 1024,
                            description="kubeconfig YAML text")
    context: str | None = Field(default=None, max_length=253,
                                description="default: the kubeconfig's current context")
    region: LabelValue | None = None
    zone: LabelValue | None = None
    labels: dict[str, LabelValue] = Field(default={}, max_length=64)


class UnjoinRequest(_Model):
    """Either an admin kubeconfig of the member (federator's objects and identity there are
    released or deleted), or force (the member is left as it is)."""

    kubeconfig: str | None = Field(default=None, min_length=1, max_length=1024 * 1024)
    context: str | None = Field(default=None, max_length=253)
    delete_resources: bool = Field(default=False, alias="deleteResources")
    force: bool = False

    @model_validator(mode="after")
    def _one_way(self) -> UnjoinRequest:
        if (self.kubeconfig is None) == (not self.force):
            raise ValueError("give either kubeconfig (an admin of the member) or force: true")
        return self


class Outcome(_Model):
    lines: list[str]


# workloads ---------------------------------------------------------------------------------
class ClusterReplicas(_Model):
    cluster: str
    desired: int
    replicas: int
    ready: int
    error: str | None = None


class Condition(_Model):
    type: str
    status: str
    reason: str | None = None
    message: str | None = None


WORKLOAD_KINDS = {"deployments": "Deployment", "replicasets": "ReplicaSet",
                  "statefulsets": "StatefulSet", "daemonsets": "DaemonSet"}  # path -> kind


class Workload(_Model):
    kind: Literal["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"]
    namespace: str
    name: str
    replicas: int
    ready_replicas: int = Field(alias="readyReplicas")
    clusters: list[ClusterReplicas]
    conditions: list[Condition]


class WorkloadList(_Model):
    items: list[Workload]


# plan --------------------------------------------------------------------------------------
class PlanRequest(_Model):
    """A total and preferences (federation v1's replica-set preferences), or a Deployment or
    ReplicaSet whose spec.replicas and preferences annotation are used."""

    replicas: int | None = Field(default=None, ge=0, le=MAX_REPLICAS)
    preferences: PreferencesModel | None = None
    object: dict[str, Any] | None = Field(
        default=None,
        description="a Deployment, ReplicaSet or StatefulSet, as kubectl would send it")
    current: dict[str, Annotated[int, Field(ge=0, le=MAX_REPLICAS)]] | None = Field(
        default=None, description="replicas running now per cluster (kept if rebalance is off)")

    @model_validator(mode="after")
    def _one_source(self) -> PlanRequest:
        if (self.replicas is None) == (self.object is None):
            raise ValueError("give either replicas (with preferences) or object")
        if self.object is not None and self.preferences is not None:
            raise ValueError("an object carries its preferences in its annotation: "
                             "leave preferences out")
        return self


class Share(_Model):
    cluster: str
    replicas: int
    reason: str


class PlanResult(_Model):
    replicas: int
    unplaced: int = Field(description="replicas no cluster has room for")
    clusters: list[Share]


# events ------------------------------------------------------------------------------------
class EventQuery(_Model):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    cluster: DnsLabel | None = None
    namespace: DnsLabel | None = None
    kind: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]{0,62}$")] | None = None
    name: Name | None = None
    type: Literal["Normal", "Warning"] | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class FederatedEvent(_Model):
    cluster: str
    namespace: str
    kind: str
    name: str
    type: str
    reason: str
    message: str
    count: int
    first_timestamp: str | None = Field(default=None, alias="firstTimestamp")
    last_timestamp: str | None = Field(default=None, alias="lastTimestamp")


class EventList(_Model):
    items: list[FederatedEvent]


# dns ---------------------------------------------------------------------------------------
class DnsRecord(_Model):
    name: str
    type: Literal["A", "AAAA", "CNAME", "TXT"]
    ttl: int
    values: list[str]


class DnsRecords(_Model):
    zone: str | None
    records: list[DnsRecord]
