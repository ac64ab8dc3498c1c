"""Replica preferences of a Deployment or ReplicaSet, from the annotations of Kubernetes
federation v1: `{"rebalance": bool, "clusters": {"<cluster>|*": {"weight": n,
"minReplicas": n, "maxReplicas": n}}}`. Without "*", clusters not listed get nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from federator.domain.spreading import MAX_REPLICAS, ClusterPreference

DEPLOYMENT_PREFERENCES = "federation.kubernetes.io/deployment-preferences"
REPLICA_SET_PREFERENCES = "federation.kubernetes.io/replica-set-preferences"
ANNOTATION_OF_KIND = {"Deployment": DEPLOYMENT_PREFERENCES,
                      "ReplicaSet": REPLICA_SET_PREFERENCES}
ANY_CLUSTER = "*"


class PreferencesError(ValueError):
    """Preferences that cannot be used; the message names the field and the fix."""


class ClusterPreferenceModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    weight: int = Field(default=1, ge=0, le=MAX_REPLICAS)
    min_replicas: int = Field(default=0, ge=0, le=MAX_REPLICAS, alias="minReplicas")
    max_replicas: int | None = Field(default=None, ge=0, le=MAX_REPLICAS, alias="maxReplicas")

    @model_validator(mode="after")
    def _ordered(self) -> ClusterPreferenceModel:
        if self.max_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas {self.min_replicas} is more than maxReplicas "
                             f"{self.max_replicas}")
        return self


class PreferencesModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rebalance: bool = False
    clusters: dict[str, ClusterPreferenceModel] = Field(default_factory=dict)


@dataclass(frozen=True)
class Preferences:
    rebalance: bool
    clusters: dict[str, ClusterPreference]

    def named_clusters(self) -> set[str]:
        return set(self.clusters) - {ANY_CLUSTER}

    def for_clusters(self, names: list[str]) -> dict[str, ClusterPreference]:
        """The preference of each of `names`: its own entry, else "*", else none (left out)."""
        result = {}
        for name in names:
            pref = self.clusters.get(name, self.clusters.get(ANY_CLUSTER))
            if pref is not None:
                result[name] = pref
        return result


EQUAL = Preferences(rebalance=True, clusters={ANY_CLUSTER: ClusterPreference()})


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"


def from_data(data: Any, source: str) -> Preferences:
    try:
        model = PreferencesModel.model_validate(data)
    except ValidationError as exc:
        raise PreferencesError(f"{source}: " + "; ".join(_describe(e) for e in exc.errors())
                               ) from exc
    return Preferences(model.rebalance, {
        name: ClusterPreference(c.weight, c.min_replicas, c.max_replicas)
        for name, c in model.clusters.items()})


def parse(text: str, source: str) -> Preferences:
    """Preferences from annotation text; PreferencesError saying what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PreferencesError(f"{source} is not valid JSON: {exc}") from exc
    return from_data(data, source)


def of_object(obj: dict[str, Any]) -> Preferences | None:
    """The preferences an object carries in its kind's annotation, if any."""
    annotation = ANNOTATION_OF_KIND.get(obj.get("kind", ""))
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(annotation or "")
    if annotation is None or text is None:
        return None
    return parse(text, f"annotation {annotation}")
