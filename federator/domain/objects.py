"""Comparisons of Kubernetes objects as plain JSON values."""

from __future__ import annotations

from typing import Any


def contains(actual: Any, desired: Any) -> bool:
    """Whether `actual` already holds every field of `desired` with the same value: mappings
    may have more keys, lists and scalars must be equal (as they would be after an apply)."""
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(
            key in actual and contains(actual[key], value) for key, value in desired.items())
    if isinstance(desired, list):
        return (isinstance(actual, list) and len(actual) == len(desired)
                and all(contains(a, d) for a, d in zip(actual, desired, strict=True)))
    return bool(actual == desired)


def difference(actual: Any, desired: Any, where: str = "") -> str | None:
    """The path of the first field of `desired` that `actual` does not hold, e.g.
    `spec.replicas` ("." for the whole value); None when `contains(actual, desired)`."""
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            return where or "."
        for key, value in desired.items():
            inner = f"{where}.{key}" if where else str(key)
            if key not in actual:
                return inner or "."
            found = difference(actual[key], value, inner)
            if found is not None:
                return found
        return None
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(actual) != len(desired):
            return where or "."
        for index, (a, d) in enumerate(zip(actual, desired, strict=True)):
            found = difference(a, d, f"{where}[{index}]")
            if found is not None:
                return found
        return None
    return None if actual == desired else (where or ".")
