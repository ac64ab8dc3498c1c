"""Reads answered by every member, merged into one answer: lists get each item annotated
with its cluster, server-side Tables get a CLUSTER column. Which requests fan out."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CLUSTER_ANNOTATION = "federator.io/cluster"
_COMPOSITE = "fed."  # how a resourceVersion of several clusters starts
# What lives in the members only (the plane runs no kubelets, nodes or workload
# controllers): pods and nodes, and the ReplicaSets each member makes of a Deployment.
_FANOUT = re.compile(r"^(?:/api/v1/(?:namespaces/(?P<ns>[^/]+)/)?(?P<resource>pods|nodes)|"
                     r"/apis/apps/v1/(?:namespaces/(?P<rs_ns>[^/]+)/)?(?P<rs>replicasets))"
                     r"(?:/(?P<name>[^/]+))?$")
# One pod, or a subresource of it (log, exec, attach, portforward, eviction, ...).
_POD = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)"
                  r"(?:/(?P<sub>[^/]+))?$")
_CLUSTER_COLUMN = {"name": "Cluster", "type": "string", "format": "", "priority": 0,
                   "description": "The member cluster this row comes from."}


def fans_out(method: str, path: str) -> bool:
    """Whether a request is answered from the members rather than the plane: GETs of pods
    (namespaced) and nodes (cluster-scoped), collections and single objects, and lists and
    watches of ReplicaSets (what each member made of a Deployment; a ReplicaSet by name is
    the plane's, so that one federated as it is can be read, applied and edited)."""
    found = _FANOUT.match(path)
    if method != "GET" or found is None:
        return False
    if found["resource"] == "nodes":
        return found["ns"] is None
    if found["rs"]:  # one by name is the plane's: a ReplicaSet federated as it is
        return found["name"] is None
    return found["ns"] is not None or found["name"] is None  # /api/v1/pods lists them all


@dataclass(frozen=True)
class PodRequest:
    """One pod, its namespace and name as the path has them (still percent-encoded: they
    go back into paths; Kubernetes names need no encoding)."""

    namespace: str
    name: str
    subresource: str | None


def pod_request(method: str, path: str) -> PodRequest | None:
    """A request about one pod that goes to the one member holding it: a subresource (any
    method: log, exec, attach, portforward, eviction, ...) or a write of the pod itself
    (DELETE, PATCH, PUT). A GET of the pod itself fans out (and names its cluster)."""
    found = _POD.match(path)
    if found is None or (found["sub"] is None and method not in ("DELETE", "PATCH", "PUT")):
        return None
    return PodRequest(found["ns"], found["name"], found["sub"])


def ambiguous(resource: str, name: str, clusters: list[str]) -> str:
    """Why one object cannot be answered for: several members hold one of that name."""
    contexts = ", ".join(f"federation-{c}" for c in clusters)
    return (f'{resource} "{name}" is in more than one cluster ({", ".join(clusters)}): ask '
            f"one of them through its own context ({contexts})")


def is_collection(path: str) -> bool:
    found = _FANOUT.match(path)
    return found is not None and found["name"] is None


def annotate(obj: dict[str, Any], cluster: str) -> dict[str, Any]:
    meta = obj.setdefault("metadata", {})
    annotations = meta.get("annotations") or {}
    meta["annotations"] = {**annotations, CLUSTER_ANNOTATION: cluster}
    return obj


def composite_version(versions: Mapping[str, str]) -> str:
    """One resourceVersion for several clusters' (opaque to clients, as any is): a watch
    from it goes on from each cluster's own."""
    text = json.dumps(dict(sorted(versions.items())), separators=(",", ":"))
    return _COMPOSITE + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def member_versions(version: str, clusters: list[str]) -> dict[str, str] | None:
    """Each cluster's resourceVersion to watch from: "" and "0" mean the same for each; a
    composite gives each its own (a cluster it does not name starts from its newest, "");
    None if `version` is neither (a version of one cluster cannot be placed)."""
    if version in ("", "0"):
        return dict.fromkeys(clusters, version)
    if not version.startswith(_COMPOSITE):
        return None
    encoded = version.removeprefix(_COMPOSITE)
    try:
        parsed = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(parsed, dict):
        return None
    return {c: str(parsed.get(c, "")) for c in clusters}


def _table(table: dict[str, Any], cluster: str) -> dict[str, Any]:
    """A Table with the CLUSTER column in front (its definitions only if it has any: watch
    events after the first may leave them out)."""
    result = dict(table)
    if table.get("columnDefinitions"):
        result["columnDefinitions"] = [_CLUSTER_COLUMN, *table["columnDefinitions"]]
    result["rows"] = [
        {**row, "cells": [cluster, *(row.get("cells") or [])],
         **({"object": annotate(row["object"], cluster)} if row.get("object") else {})}
        for row in table.get("rows") or []]
    return result


def watch_event(event: dict[str, Any], cluster: str, versions: dict[str, str]
                ) -> dict[str, Any]:
    """One cluster's watch event as the merged watch passes it on: its object marked with its
    cluster, and its resourceVersion the composite of every cluster's latest (so that a
    client that watches again from it goes on everywhere). Records the cluster's version in
    `versions`."""
    obj = event.get("object")
    if not isinstance(obj, dict) or event.get("type") == "ERROR":
        return event
    meta = obj.setdefault("metadata", {})
    if meta.get("resourceVersion"):
        versions[cluster] = str(meta["resourceVersion"])
    elif obj.get("kind") == "Table":
        rows = obj.get("rows") or []
        row_meta = ((rows[-1].get("object") or {}).get("metadata") or {}) if rows else {}
        if row_meta.get("resourceVersion"):
            versions[cluster] = str(row_meta["resourceVersion"])
    if obj.get("kind") == "Table":
        obj = _table(obj, cluster)
    elif event.get("type") != "BOOKMARK":
        obj = annotate(obj, cluster)
    obj["metadata"] = {**obj.get("metadata", {}), "resourceVersion": composite_version(versions)}
    return {**event, "object": obj}


def merge(answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One list (or Table) from each cluster's, in cluster order, with a composite
    resourceVersion (see composite_version)."""
    clusters = sorted(answers)
    if not clusters:
        return {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": ""},
                "items": []}
    first = answers[clusters[0]]
    version = composite_version({c: str((answers[c].get("metadata") or {}).get(
        "resourceVersion", "")) for c in clusters})
    merged: dict[str, Any] = {"kind": first.get("kind"), "apiVersion": first.get("apiVersion"),
                              "metadata": {"resourceVersion": version}}
    if first.get("kind") == "Table":
        merged["columnDefinitions"] = [_CLUSTER_COLUMN, *(first.get("columnDefinitions") or [])]
        merged["rows"] = [row for cluster in clusters
                          for row in _table({"rows": answers[cluster].get("rows")},
                                            cluster)["rows"]]
        return merged
    merged["items"] = [annotate(item, cluster) for cluster in clusters
                       for item in answers[cluster].get("items") or []]
    return merged
