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
