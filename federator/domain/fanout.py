"""Reads answered by every member, merged into one answer: lists get each item annotated
with its cluster, server-side Tables get a CLUSTER column. Which requests fan out."""

from __future__ import annotations

import re
from typing import Any

CLUSTER_ANNOTATION = "federator.io/cluster"
# Core resources that live in the members only: the plane runs no kubelets or nodes.
_FANOUT = re.compile(r"^/api/v1/(?:namespaces/(?P<ns>[^/]+)/)?(?P<resource>pods|nodes)"
                     r"(?:/(?P<name>[^/]+))?$")
_CLUSTER_COLUMN = {"name": "Cluster", "type": "string", "format": "", "priority": 0,
                   "description": "The member cluster this row comes from."}


def fans_out(method: str, path: str) -> bool:
    """Whether a request is answered from the members rather than the plane: GETs of pods
    (namespaced) and nodes (cluster-scoped), collections and single objects."""
    found = _FANOUT.match(path)
    if method != "GET" or found is None:
        return False
    if found["resource"] == "nodes":
        return found["ns"] is None
    return found["ns"] is not None or found["name"] is None  # /api/v1/pods lists them all


def is_collection(path: str) -> bool:
    found = _FANOUT.match(path)
    return found is not None and found["name"] is None


def annotate(obj: dict[str, Any], cluster: str) -> dict[str, Any]:
    meta = obj.setdefault("metadata", {})
    annotations = meta.get("annotations") or {}
    meta["annotations"] = {**annotations, CLUSTER_ANNOTATION: cluster}
    return obj


def merge(answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One list (or Table) from each cluster's, in cluster order. Its resourceVersion is
    empty: no single version covers several clusters."""
    clusters = sorted(answers)
    if not clusters:
        return {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": ""},
                "items": []}
    first = answers[clusters[0]]
    merged: dict[str, Any] = {"kind": first.get("kind"), "apiVersion": first.get("apiVersion"),
                              "metadata": {"resourceVersion": ""}}
    if first.get("kind") == "Table":
        merged["columnDefinitions"] = [_CLUSTER_COLUMN, *(first.get("columnDefinitions") or [])]
        merged["rows"] = [
            {**row, "cells": [cluster, *(row.get("cells") or [])],
             **({"object": annotate(row["object"], cluster)} if row.get("object") else {})}
            for cluster in clusters for row in answers[cluster].get("rows") or []]
        return merged
    merged["items"] = [annotate(item, cluster) for cluster in clusters
                       for item in answers[cluster].get("items") or []]
    return merged
