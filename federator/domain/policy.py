"""FederationPolicy: which objects of its namespace it governs, where they go, how their
replicas are spread, and per-cluster overrides. An object's own annotations win over it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from federator.domain import preferences
from federator.domain.preferences import Preferences
from federator.domain.propagation import PlacementError

Policy = dict[str, Any]


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A structured LabelSelector (matchLabels, matchExpressions); empty matches all."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = set(expression.get("values") or [])
        present = key in labels
        ok = {"In": present and labels.get(key) in values,
              "NotIn": not present or labels.get(key) not in values,
              "Exists": present, "DoesNotExist": not present}.get(operator)
        if ok is None:
            raise PlacementError(f"unknown selector operator {operator!r}")
        if not ok:
            return False
    return True


def _governs(policy: Policy, obj: Mapping[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    for rule in (policy.get("spec") or {}).get("resourceSelectors") or []:
        if rule.get("apiVersion") != obj.get("apiVersion") or rule.get("kind") != obj.get("kind"):
            continue
        if rule.get("name") and rule["name"] != meta.get("name"):
            continue
        if selector_matches(rule.get("labelSelector"), meta.get("labels") or {}):
            return True
    return False


def policy_namespace(obj: Mapping[str, Any]) -> str:
    """Where the policies of an object live: its namespace, or for a Namespace, itself."""
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or meta.get("name", ""))


def governing(policies: Iterable[Policy], obj: Mapping[str, Any]) -> Policy | None:
    """The policy of the object's namespace that governs it; the first by name if several."""
    namespace = policy_namespace(obj)
    mine = sorted((p for p in policies if p["metadata"].get("namespace") == namespace),
                  key=lambda p: p["metadata"]["name"])
    return next((p for p in mine if _governs(p, obj)), None)


def check_names(policy: Policy, joined: Mapping[str, Any]) -> None:
    spec = policy.get("spec") or {}
    named = set((spec.get("placement") or {}).get("clusters") or [])
    named |= set((spec.get("replicaScheduling") or {}).get("clusters") or {}) - {"*"}
    for override in spec.get("overrides") or []:
        named |= set(override.get("clusters") or [])
    unknown = sorted(named - set(joined))
    if unknown:
        raise PlacementError(f"FederationPolicy {policy['metadata']['name']} names clusters "
                             f"that are not joined: {', '.join(unknown)}")


def placement(policy: Policy, joined: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The joined clusters (name -> labels) the policy places its objects in."""
    check_names(policy, joined)
    rule = (policy.get("spec") or {}).get("placement") or {}
    if rule.get("clusters") is not None:
        return sorted(set(rule["clusters"]))
    return sorted(n for n, labels in joined.items()
                  if selector_matches(rule.get("clusterSelector"), labels))


def replica_preferences(policy: Policy) -> Preferences | None:
    scheduling = (policy.get("spec") or {}).get("replicaScheduling")
    if scheduling is None:
        return None
    return preferences.from_data(scheduling, f"FederationPolicy {policy['metadata']['name']}"
                                 " replicaScheduling")


def overrides(policy: Policy, cluster: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """The JSON patch operations for one cluster, in the policy's order."""
    result: list[dict[str, Any]] = []
    for override in (policy.get("spec") or {}).get("overrides") or []:
        names = override.get("clusters")
        if names is not None:
            hit = cluster in names
        else:
            hit = selector_matches(override.get("clusterSelector"), labels)
        if hit:
            result += override.get("patches") or []
    return result
