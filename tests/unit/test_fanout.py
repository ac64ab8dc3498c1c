"""Which reads fan out to the members, and how their answers are merged."""

from __future__ import annotations

from typing import Any

import pytest

from federator.domain.fanout import (
    CLUSTER_ANNOTATION,
    PodRequest,
    ambiguous,
    composite_version,
    fans_out,
    is_collection,
    member_versions,
    merge,
    pod_request,
    watch_event,
)


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
    ("GET", "/apis/apps/v1/namespaces/default/replicasets", True),
    ("GET", "/apis/apps/v1/replicasets", True),
    ("GET", "/apis/apps/v1/namespaces/default/replicasets/web-5d8f", False),
    ("POST", "/apis/apps/v1/namespaces/default/replicasets", False),
    ("GET", "/apis/apps/v1beta2/namespaces/default/replicasets", False),
    ("GET", "/api/v1/namespaces/default/replicasets", False),
])
def test_what_fans_out(method: str, path: str, expected: bool) -> None:
    assert fans_out(method, path) is expected


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/api/v1/namespaces/default/pods/web-1/log", PodRequest("default", "web-1", "log")),
    ("POST", "/api/v1/namespaces/default/pods/web-1/exec",
     PodRequest("default", "web-1", "exec")),
    ("GET", "/api/v1/namespaces/team-a/pods/web-1/portforward",
     PodRequest("team-a", "web-1", "portforward")),
    ("POST", "/api/v1/namespaces/default/pods/web-1/eviction",
     PodRequest("default", "web-1", "eviction")),
    ("DELETE", "/api/v1/namespaces/default/pods/web-1", PodRequest("default", "web-1", None)),
    ("PATCH", "/api/v1/namespaces/default/pods/web-1", PodRequest("default", "web-1", None)),
    ("GET", "/api/v1/namespaces/default/pods/web-1", None),  # fans out
    ("POST", "/api/v1/namespaces/default/pods", None),  # a new pod: made in the plane
    ("DELETE", "/api/v1/namespaces/default/pods", None),
    ("GET", "/api/v1/namespaces/default/pods/web-1/log/more", None),
])
def test_what_goes_to_the_member_holding_a_pod(method: str, path: str,
                                               expected: PodRequest | None) -> None:
    assert pod_request(method, path) == expected


def test_an_ambiguous_name_names_each_cluster_and_its_context() -> None:
    message = ambiguous("pods", "web-1", ["member-1", "member-3"])
    assert "(member-1, member-3)" in message
    assert "federation-member-1, federation-member-3" in message


def test_collections() -> None:
    assert is_collection("/api/v1/namespaces/default/pods")
    assert not is_collection("/api/v1/namespaces/default/pods/web-1")


def pod_list(*names: str) -> dict[str, Any]:
    return {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"},
            "items": [{"metadata": {"name": n}} for n in names]}


def test_lists_are_merged_with_each_item_annotated() -> None:
    merged = merge({"b": pod_list("b1"), "a": pod_list("a1", "a2")})
    assert merged["kind"] == "PodList"
    assert member_versions(merged["metadata"]["resourceVersion"], ["a", "b"]) == {
        "a": "7", "b": "7"}
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


def test_a_composite_version_gives_each_cluster_its_own() -> None:
    version = composite_version({"m1": "10", "m2": "250"})
    assert member_versions(version, ["m1", "m2", "m3"]) == {"m1": "10", "m2": "250", "m3": ""}
    assert member_versions("", ["m1"]) == {"m1": ""}
    assert member_versions("0", ["m1", "m2"]) == {"m1": "0", "m2": "0"}
    assert member_versions("12345", ["m1"]) is None  # one cluster's: cannot be placed
    assert member_versions("fed.!!!", ["m1"]) is None
    assert member_versions(composite_version({}) + "x", ["m1"]) is None


def test_watch_events_carry_their_cluster_and_every_clusters_version() -> None:
    versions = {"m1": "10", "m2": "20"}
    event = watch_event({"type": "MODIFIED", "object": {
        "kind": "Pod", "metadata": {"name": "p", "resourceVersion": "11"}}}, "m1", versions)
    assert versions == {"m1": "11", "m2": "20"}
    meta = event["object"]["metadata"]
    assert meta["annotations"] == {CLUSTER_ANNOTATION: "m1"}
    assert member_versions(meta["resourceVersion"], ["m1", "m2"]) == versions
    bookmark = watch_event({"type": "BOOKMARK", "object": {
        "kind": "Pod", "metadata": {"resourceVersion": "25"}}}, "m2", versions)
    assert "annotations" not in bookmark["object"]["metadata"]
    assert member_versions(bookmark["object"]["metadata"]["resourceVersion"],
                           ["m1", "m2"]) == {"m1": "11", "m2": "25"}
    error = {"type": "ERROR", "object": {"kind": "Status", "code": 410}}
    assert watch_event(error, "m1", versions) == error


def test_table_watch_events_get_the_cluster_column_when_they_define_columns() -> None:
    first = {"type": "ADDED", "object": {
        "kind": "Table", "columnDefinitions": [{"name": "Name"}], "metadata": {},
        "rows": [{"cells": ["p"], "object": {"metadata": {"name": "p",
                                                            "resourceVersion": "5"}}}]}}
    versions: dict[str, str] = {}
    table = watch_event(first, "m2", versions)["object"]
    assert [c["name"] for c in table["columnDefinitions"]] == ["Cluster", "Name"]
    assert table["rows"][0]["cells"] == ["m2", "p"]
    assert versions == {"m2": "5"}
    later = {"type": "MODIFIED", "object": {
        "kind": "Table", "columnDefinitions": [], "metadata": {},
        "rows": [{"cells": ["q"], "object": {"metadata": {"name": "q"}}}]}}
    table = watch_event(later, "m1", versions)["object"]
    assert table["columnDefinitions"] == [] and table["rows"][0]["cells"] == ["m1", "q"]
