"""FederationPolicy: which objects of its namespace it governs, where they go, how their
replicas are spread, and per-cluster overrides. An object's own annotations win over it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from federator.domain import preferences
from federator.domain.preferences import Preferences
from federator.domain.propagation import PlacementError

Policy = dict[str, Any]


_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def _label_key_problem(key: Any) -> str | None:
    if not isinstance(key, str):
        return "is not a string"
    prefix, slash, name = key.rpartition("/")
    if (slash and (not prefix or len(prefix) > 253 or not _PREFIX.match(prefix))) \
            or not _NAME.match(name):
        return (f"{key!r} is not a label key (a name of up to 63 letters, digits, '-', '_' "
                "or '.', starting and ending with a letter or digit, with an optional DNS "
                "prefix and '/')")
    return None


def _label_value_problem(value: Any) -> str | None:
    if not isinstance(value, str) or (value and not _NAME.match(value)):
        return (f"{value!r} is not a label value (up to 63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit, or empty)")
    return None


def check_selector(selector: Any, where: str) -> None:
    """A structured LabelSelector as the apiserver would validate it; PlacementError naming
    the field (`where` is the selector's own path) and what to write instead."""
    if selector is None:
        return
    if not isinstance(selector, Mapping):
        raise PlacementError(f"{where}: not a label selector (matchLabels, matchExpressions)")
    labels = selector.get("matchLabels") or {}
    if not isinstance(labels, Mapping):
        raise PlacementError(f"{where}.matchLabels: not a map of label keys to values")
    for key, value in labels.items():
        problem = _label_key_problem(key) or _label_value_problem(value)
        if problem:
            raise PlacementError(f"{where}.matchLabels: {problem}")
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise PlacementError(f"{where}.matchExpressions: not a list")
    for index, expression in enumerate(expressions):
        at = f"{where}.matchExpressions[{index}]"
        if not isinstance(expression, Mapping):
            raise PlacementError(f"{at}: not a {{key, operator, values}} requirement")
        problem = _label_key_problem(expression.get("key"))
        if problem:
            raise PlacementError(f"{at}.key: {problem}")
        operator, values = expression.get("operator"), expression.get("values") or []
        if operator not in _OPERATORS:
            raise PlacementError(f"{at}.operator: {operator!r} is not one of "
                                 f"{', '.join(_OPERATORS)}")
        if not isinstance(values, list):
            raise PlacementError(f"{at}.values: not a list")
        if operator in ("In", "NotIn") and not values:
            raise PlacementError(f"{at}.values: {operator} needs at least one value")
        if operator in ("Exists", "DoesNotExist") and values:
            raise PlacementError(f"{at}.values: {operator} takes no values; leave them out")
        for value in values:
            problem = _label_value_problem(value)
            if problem:
                raise PlacementError(f"{at}.values: {problem}")


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
        try:
            check_selector(rule.get("labelSelector"), "labelSelector")
        except PlacementError:
            return True  # unreadable: it claims the objects of its kind, check() says why
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


def check(policy: Policy, joined: Mapping[str, Any]) -> None:
    """What makes a policy unusable: a selector that cannot be read, or a cluster name that
    is not joined. PlacementError naming the policy and the field."""
    spec = policy.get("spec") or {}
    name = policy["metadata"]["name"]
    for index, rule in enumerate(spec.get("resourceSelectors") or []):
        check_selector(rule.get("labelSelector"),
                       f"FederationPolicy {name}: spec.resourceSelectors[{index}].labelSelector")
    check_selector((spec.get("placement") or {}).get("clusterSelector"),
                   f"FederationPolicy {name}: spec.placement.clusterSelector")
    for index, override in enumerate(spec.get("overrides") or []):
        at = f"FederationPolicy {name}: spec.overrides[{index}]"
        check_selector(override.get("clusterSelector"), f"{at}.clusterSelector")
        for number, patch in enumerate(override.get("patches") or []):
            _check_patch(patch, f"{at}.patches[{number}]")
    named = set((spec.get("placement") or {}).get("clusters") or [])
    named |= set((spec.get("replicaScheduling") or {}).get("clusters") or {}) - {"*"}
    for override in spec.get("overrides") or []:
        named |= set(override.get("clusters") or [])
    unknown = sorted(named - set(joined))
    if unknown:
        raise PlacementError(f"FederationPolicy {policy['metadata']['name']} names clusters "
                             f"that are not joined: {', '.join(unknown)}")


# What makes a member's copy the copy of its plane object: an override may not touch them.
_IDENTITY = ("/apiVersion", "/kind", "/metadata/name", "/metadata/namespace")


def _check_patch(patch: Any, where: str) -> None:
    """PlacementError for an override operation that would change what the copy is (its
    kind, name or namespace), or take the whole document or its metadata away."""
    if not isinstance(patch, Mapping):
        raise PlacementError(f"{where}: not a JSON patch operation {{op, path, value}}")
    touched = [("path", patch.get("path"))]
    if patch.get("op") == "move":
        touched.append(("from", patch.get("from")))
    for field, path in touched:
        if not isinstance(path, str):
            raise PlacementError(f"{where}.{field}: not a JSON pointer such as /spec/replicas")
        if patch.get("op") != "test" and any(
                path == fixed or fixed.startswith(path + "/") or path.startswith(fixed + "/")
                for fixed in _IDENTITY):
            raise PlacementError(
                f"{where}.{field}: {path or '(the whole object)'} cannot be overridden: a "
                "member's copy keeps its plane object's apiVersion, kind, name and namespace; "
                "override fields under /spec, /data or /metadata/labels instead")


def placement(policy: Policy, joined: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The joined clusters (name -> labels) the policy places its objects in."""
    check(policy, joined)
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
