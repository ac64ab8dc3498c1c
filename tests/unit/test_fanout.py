"""Which reads fan out to the members, and how their answers are merged."""

from __future__ import annotations

from typing import Any

import pytest

from federator.domain.fanout import CLUSTER_ANNOTATION, fans_out, is_collection, merge


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/api/v1/pods", True),
    ("GET", "/api/v1/namespaces/default/pods", True),
    ("GET", "/api/v1/namespaces/default/pods/web-1", True),
    ("GET", "/api/v1/nodes", True),
    ("GET", "/api/v1/nodes/node-1", True),
    ("GET", "/api/v1/pods/web-1", False),
    ("GET", "/api/v1/namespaces/default/nodes", False),
    ("GET", "/api/v1/namespaces/default/configmaps", False),
    ("GET", "/api/v1/namespaces/default/pods/web-1/log", False),
    ("DELETE", "/api/v1/namespaces/default/pods/web-1", False),
    ("GET", "/apis/apps/v1/deployments", False),
])
def test_what_fans_out(method: str, path: str, expected: bool) -> None:
    assert fans_out(method, path) is expected


def test_collections() -> None:
    assert is_collection("/api/v1/namespaces/default/pods")
    assert not is_collection("/api/v1/namespaces/default/pods/web-1")


def pod_list(*names: str) -> dict[str, Any]:
    return {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"},
            "items": [{"metadata": {"name": n}} for n in names]}


def test_lists_are_merged_with_each_item_annotated() -> None:
    merged = merge({"b": pod_list("b1"), "a": pod_list("a1", "a2")})
    assert merged["kind"] == "PodList"
    assert merged["metadata"]["resourceVersion"] == ""
    assert [(i["metadata"]["name"], i["metadata"]["annotations"][CLUSTER_ANNOTATION])
            for i in merged["items"]] == [("a1", "a"), ("a2", "a"), ("b1", "b")]


def test_tables_get_a_cluster_column() -> None:
    def table(*names: str) -> dict[str, Any]:
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                "columnDefinitions": [{"name": "Name", "type": "string"}],
                "rows": [{"cells": [n], "object": {"metadata": {"name": n}}} for n in names]}

    merged = merge({"m2": table("x"), "m1": table("y", "z")})
    assert [c["name"] for c in merged["columnDefinitions"]] == ["Cluster", "Name"]
    assert [r["cells"] for r in merged["rows"]] == [["m1", "y"], ["m1", "z"], ["m2", "x"]]
    assert merged["rows"][2]["object"]["metadata"]["annotations"] == {CLUSTER_ANNOTATION: "m2"}


def test_no_member_no_items() -> None:
    assert merge({})["items"] == []
