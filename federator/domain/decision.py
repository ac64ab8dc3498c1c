"""Where an object goes and how many replicas each cluster runs: the one decision that the
propagation controller acts on and `POST /federator/v1/plan` shows, with a reason for every
joined cluster. Pure: the caller says which clusters are joined and Ready, what overflow has
shown of their capacity, and what runs where now.

Placement: the object's own annotations (`federator.io/clusters`, then
`federator.io/cluster-selector`), else its governing FederationPolicy's placement, else every
joined cluster; a ConfigMap or Secret also where the workloads that use it are placed.
Replicas (Deployments, ReplicaSets, StatefulSets, a Job's parallelism, a custom resource's
scale subresource: `domain.replicas`): the object's preferences annotation, else the policy's
`replicaScheduling`, else equal weights with rebalancing, spread over the Ready targets by
`spreading.spread`; a Job's completions follow its parallelism."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from federator.domain import policy as policy_rules
from federator.domain import preferences, replicas
from federator.domain.propagation import (
    CLUSTER_SELECTOR_ANNOTATION,
    CLUSTERS_ANNOTATION,
    group_kind_of,
    placement,
)
from federator.domain.spreading import explain, spread

Object = dict[str, Any]


@dataclass(frozen=True)
class Cluster:
    """A joined cluster as a decision sees it: its labels, and whether it can take a share
    (Ready, and federator can write to it)."""

    labels: Mapping[str, str]
    ready: bool


@dataclass(frozen=True)
class Decision:
    targets: list[str]  # where the object goes, Ready or not
    replicas: dict[str, int] | None  # per Ready target; None for kinds without replicas
    unplaced: int  # replicas no cluster could take
    reasons: dict[str, str]  # for every joined cluster: why it gets what it gets
    completions: dict[str, int] | None = None  # a Job's, per Ready target, when it sets any


def _by_policy(obj: Object, policy: Object | None) -> bool:
    """Whether the policy places the object: there is one, and the object has no placement
    annotation of its own."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    own = {CLUSTERS_ANNOTATION, CLUSTER_SELECTOR_ANNOTATION} & set(annotations)
    return policy is not None and not own


def _placed_by(obj: Object, policy: Object | None) -> str:
    if policy is not None and _by_policy(obj, policy):
        return f"FederationPolicy {policy['metadata']['name']}"
    return "the object's placement annotations"


def targets_of(obj: Object, policy: Object | None,
               joined: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Where an object goes by its own placement (annotations, else its policy, else every
    joined cluster). PlacementError when that cannot be read."""
    if policy is not None:
        policy_rules.check(policy, joined)
        if _by_policy(obj, policy):
            return policy_rules.placement(policy, joined)
    return placement(obj, joined)


def decide(obj: Object, policy: Object | None, clusters: Mapping[str, Cluster], *,
           capacity: Mapping[str, int] | None = None,
           current: Mapping[str, int] | None = None,
           needed_by: Mapping[str, str] | None = None,
           scale: Mapping[str, Any] | None = None) -> Decision:
    """The decision for `obj` (governed by `policy`, if any) over the joined `clusters`.
    `capacity`: replicas a cluster has shown it can run at most; `current`: replicas each
    cluster runs now (kept when rebalance is off); `needed_by`: clusters a workload that
    uses the object is placed in (cluster -> that workload), where it goes as well; `scale`:
    the scale subresource of a custom resource's definition.
    PlacementError or PreferencesError when the object's or the policy's settings cannot be
    used (the message says why)."""
    joined = {name: cluster.labels for name, cluster in clusters.items()}
    placed_by = _placed_by(obj, policy)
    own = targets_of(obj, policy, joined)
    needed = {c: w for c, w in (needed_by or {}).items() if c in clusters and c not in own}
    targets = sorted({*own, *needed})
    ready = [name for name in targets if clusters[name].ready]
    reasons = {name: f"not selected by {placed_by}" for name in sorted(clusters)
               if name not in targets}
    reasons.update({name: "not Ready: its share goes to the others" for name in targets
                    if name not in ready})
    field = replicas.field_of(group_kind_of(obj), scale)
    if field is None:
        reasons.update({name: f"selected by {placed_by}" for name in ready})
        reasons.update({name: f"needed by {workload}, placed there"
                        for name, workload in needed.items() if name in ready})
        return Decision(targets, None, 0, reasons)
    prefs = (preferences.of_object(obj)
             or (policy_rules.replica_preferences(policy) if policy is not None else None)
             or preferences.EQUAL)
    unknown = sorted(prefs.named_clusters() - set(clusters))
    if unknown:
        raise preferences.PreferencesError(
            f"preferences name clusters that are not joined: {', '.join(unknown)}")
    total = replicas.count(obj, field)
    chosen = prefs.for_clusters(ready)
    kept = None if prefs.rebalance else {name: (current or {}).get(name, 0) for name in ready}
    plan = spread(total, chosen, capacity=capacity, current=kept)
    reasons.update({name: 'not named in the preferences, which have no "*" entry'
                    for name in ready if name not in chosen})
    reasons.update(explain(total, chosen, plan, capacity=capacity, current=kept))
    split = {name: plan.replicas.get(name, 0) for name in ready}
    wanted = (obj.get("spec") or {}).get("completions")
    completions = (replicas.completions(wanted, split) if field is replicas.JOB_PARALLELISM
                   and isinstance(wanted, int) else None)
    return Decision(targets, split, plan.unplaced, reasons, completions)
