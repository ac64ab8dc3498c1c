"""What a member owns is left out of the copy it receives."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from federator.domain.owned import strip
from federator.domain.propagation import member_copy


def test_a_job_copy_lets_the_member_generate_its_selector() -> None:
    job: dict[str, Any] = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "j", "labels": {"controller-uid": "u", "team": "a",
                                             "batch.kubernetes.io/controller-uid": "u"}},
        "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
                 "template": {"metadata": {"labels": {
                     "batch.kubernetes.io/controller-uid": "u", "controller-uid": "u",
                     "job-name": "j", "batch.kubernetes.io/job-name": "j", "app": "j"}},
                     "spec": {"containers": [{"name": "a"}]}}}}
    copied = member_copy(job, federation="f")
    assert "selector" not in copied["spec"]
    assert copied["spec"]["template"]["metadata"]["labels"] == {"app": "j"}
    assert copied["metadata"]["labels"] == {"team": "a", "federator.io/managed-by": "f"}
    manual = copy.deepcopy(job)
    manual["spec"]["manualSelector"] = True
    kept = member_copy(manual, federation="f")["spec"]
    assert kept["selector"] == job["spec"]["selector"]  # chosen by the user: sent


def test_a_claim_copy_is_not_bound_to_the_plane_s_volume() -> None:
    claim: dict[str, Any] = {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "c", "annotations": {"pv.kubernetes.io/bind-completed": "yes",
                                                  "note": "kept"}},
        "spec": {"volumeName": "pv-1", "resources": {"requests": {"storage": "1Gi"}}}}
    copied = member_copy(claim, federation="f")
    assert copied["spec"] == {"resources": {"requests": {"storage": "1Gi"}}}
    assert copied["metadata"]["annotations"]["note"] == "kept"
    assert "pv.kubernetes.io/bind-completed" not in copied["metadata"]["annotations"]


def test_a_service_account_copy_has_no_token_references() -> None:
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "a"},
               "secrets": [{"name": "a-token"}], "imagePullSecrets": [{"name": "r"}]}
    copied = member_copy(account, federation="f")
    assert "secrets" not in copied and copied["imagePullSecrets"] == [{"name": "r"}]


def test_the_same_kind_of_another_group_is_left_whole() -> None:
    custom = {"apiVersion": "example.com/v1", "kind": "Job", "metadata": {"name": "j"},
              "spec": {"selector": {"a": "b"}}}
    assert member_copy(custom, federation="f")["spec"] == {"selector": {"a": "b"}}


_VALUES = st.recursive(st.none() | st.integers() | st.text(max_size=4),
                       lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.sampled_from(
                           ["spec", "metadata", "labels", "annotations", "template", "ports",
                            "selector", "manualSelector", "volumeName", "secrets", "status",
                            "clusterIP", "nodePort"]), inner, max_size=4), max_leaves=15)


@given(st.sampled_from(["Service", "Job.batch", "PersistentVolumeClaim", "ServiceAccount",
                        "Namespace", "ConfigMap"]),
       st.dictionaries(st.sampled_from(["spec", "metadata", "secrets", "status", "data"]),
                       _VALUES, max_size=5))
def test_any_shape_is_stripped_without_failing(kind: str, obj: dict[str, Any]) -> None:
    strip(kind, obj)
    assert "status" not in obj
