"""Where a kind keeps its replicas, and a Job's completions split like its parallelism."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federator.domain import replicas
from federator.domain.decision import Cluster, decide
from federator.domain.propagation import member_copy

SCALE = {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.running"}


def test_fields_of_built_in_kinds() -> None:
    assert replicas.field_of("Deployment.apps") == replicas.SPEC_REPLICAS
    assert replicas.field_of("StatefulSet.apps") == replicas.SPEC_REPLICAS
    assert replicas.field_of("Job.batch") == replicas.JOB_PARALLELISM
    assert replicas.field_of("DaemonSet.apps") is None
    assert replicas.field_of("ConfigMap") is None
    assert replicas.field_of("Deployment.example.com") is None  # not apps' Deployment


def test_a_custom_kind_s_scale_subresource() -> None:
    field = replicas.field_of("Cache.example.com", SCALE)
    assert field == replicas.ReplicaField(("spec", "size"), ("status", "running"), default=0)
    assert replicas.field_of("Cache.example.com", {"specReplicasPath": ".status.x"}) is None
    assert replicas.field_of("Cache.example.com", {"specReplicasPath": "spec.x"}) is None
    assert replicas.field_of("Cache.example.com", {}) is None


@pytest.mark.parametrize(("text", "path"), [
    (".spec.replicas", ("spec", "replicas")), (".spec.a.b", ("spec", "a", "b")),
    ("spec.replicas", None), (".spec.containers[0]", None), ("", None), (3, None),
    (".", None), (".spec..x", None)])
def test_paths(text: Any, path: tuple[str, ...] | None) -> None:
    assert replicas.parse(text) == path


def test_scale_of_a_definition_version() -> None:
    definition = {"spec": {"versions": [
        {"name": "v1", "subresources": {"scale": SCALE, "status": {}}},
        {"name": "v2"}]}}
    assert replicas.scale_of(definition, "v1") == SCALE
    assert replicas.scale_of(definition, "v2") is None
    assert replicas.has_status(definition, "v1") and not replicas.has_status(definition, "v2")


def test_a_custom_resource_is_spread_at_its_own_path() -> None:
    cache = {"apiVersion": "example.com/v1", "kind": "Cache",
             "metadata": {"name": "c", "annotations": {
                 "federation.kubernetes.io/deployment-preferences":
                     '{"rebalance": true, "clusters": {"a": {"weight": 2}, "b": {"weight": 1},'
                     ' "c": {"weight": 1}}}'}},
             "spec": {"size": 4}}
    clusters = {name: Cluster({}, True) for name in "abc"}
    decision = decide(cache, None, clusters, scale=SCALE)
    assert decision.replicas == {"a": 2, "b": 1, "c": 1}
    field = replicas.field_of("Cache.example.com", SCALE)
    copy = member_copy(cache, federation="f", replicas=2, field=field)
    assert copy["spec"] == {"size": 2}
    assert cache["spec"] == {"size": 4}  # the plane object is not changed
    # Without a scale subresource it is copied whole, everywhere.
    assert decide(cache, None, clusters).replicas is None


def test_a_job_s_parallelism_and_completions_split_together() -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"parallelism": 6, "completions": 12}}
    clusters = {name: Cluster({}, True) for name in "abc"}
    decision = decide(job, None, clusters)
    assert decision.replicas == {"a": 2, "b": 2, "c": 2}
    assert decision.completions == {"a": 4, "b": 4, "c": 4}
    copy = member_copy(job, federation="f", replicas=2, completions=4)
    assert (copy["spec"]["parallelism"], copy["spec"]["completions"]) == (2, 4)
    open_ended = decide({**job, "spec": {"parallelism": 6}}, None, clusters)
    assert open_ended.completions is None


@given(st.integers(0, 10_000), st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 50),
                                               min_size=1))
def test_completions_all_go_to_clusters_that_run_pods(total: int,
                                                      parallelism: dict[str, int]) -> None:
    split = replicas.completions(total, parallelism)
    assert split is not None and set(split) == set(parallelism)
    if any(parallelism.values()):
        assert sum(split.values()) == total
    assert all(split[c] == 0 for c, n in parallelism.items() if n == 0)
    assert replicas.completions(None, parallelism) is None


@given(st.dictionaries(st.sampled_from(["spec", "size", "status"]),
                       st.none() | st.integers() | st.text(max_size=3)
                       | st.dictionaries(st.sampled_from(["size", "x"]), st.integers()),
                       max_size=3), st.integers(0, 100))
def test_a_count_is_written_into_any_shape(obj: dict[str, Any], value: int) -> None:
    path = ("spec", "size")
    result = replicas.written(obj, path, value)
    assert replicas.read(result, path) == value
    field = replicas.ReplicaField(path, None, default=0)
    assert replicas.count(result, field) == value
