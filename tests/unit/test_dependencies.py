"""What a workload's pods use of the federation's ConfigMaps and Secrets, and where those go."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from federator.domain.decision import Cluster, decide
from federator.domain.dependencies import (
    FOLLOW_ANNOTATION,
    FOLLOWING_KINDS,
    follows,
    references,
)

POD = {
    "initContainers": [{"name": "init", "envFrom": [{"secretRef": {"name": "init-secret"}}]}],
    "containers": [{"name": "app",
                    "envFrom": [{"configMapRef": {"name": "settings"}}],
                    "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "flags",
                                                                            "key": "a"}}},
                            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "password",
                                                                         "key": "b"}}},
                            {"name": "C", "value": "plain"},
                            {"name": "D", "valueFrom": {"fieldRef": {
                                "fieldPath": "metadata.name"}}}]}],
    "volumes": [{"name": "v1", "configMap": {"name": "files"}},
                {"name": "v2", "secret": {"secretName": "tls"}},
                {"name": "v3", "projected": {"sources": [
                    {"configMap": {"name": "projected-config"}},
                    {"secret": {"name": "projected-secret"}},
                    {"serviceAccountToken": {"path": "token"}}]}},
                {"name": "v4", "emptyDir": {}}],
    "imagePullSecrets": [{"name": "registry"}],
}


def workload(pod: Any) -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"template": {"spec": pod}}}


def test_every_place_a_pod_names_a_configmap_or_secret() -> None:
    assert references(workload(POD)) == {
        ("Secret", "init-secret"), ("ConfigMap", "settings"), ("ConfigMap", "flags"),
        ("Secret", "password"), ("ConfigMap", "files"), ("Secret", "tls"),
        ("ConfigMap", "projected-config"), ("Secret", "projected-secret"),
        ("Secret", "registry")}


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(
                        ["containers", "volumes", "env", "envFrom", "configMap", "name",
                         "secret", "secretName", "projected", "sources", "valueFrom",
                         "serviceAccountName", "persistentVolumeClaim", "claimName"]),
                        inner, max_size=4), max_leaves=20))
def test_a_template_of_any_shape_is_read_without_failing(pod: Any) -> None:
    found = references(workload(pod))
    assert all(kind in FOLLOWING_KINDS and isinstance(name, str) and name
               for kind, name in found)


def test_a_service_account_and_claims_are_used_too_also_by_a_cron_job() -> None:
    pod = {"serviceAccountName": "runner", "containers": [{"name": "a"}],
           "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                       {"name": "c", "configMap": {"name": "settings"}}]}
    expected = {("ServiceAccount", "runner"), ("PersistentVolumeClaim", "data"),
                ("ConfigMap", "settings")}
    assert references(workload(pod)) == expected
    cron = {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": pod}}}}}
    assert references(cron) == expected


def test_only_what_pods_use_follows_and_it_may_opt_out() -> None:
    assert follows({"kind": "ConfigMap", "metadata": {}})
    assert follows({"kind": "ServiceAccount", "metadata": {}})
    assert follows({"kind": "PersistentVolumeClaim", "metadata": {}})
    assert not follows({"kind": "ConfigMap",
                        "metadata": {"annotations": {FOLLOW_ANNOTATION: "false"}}})
    assert not follows({"kind": "Service", "metadata": {}})


def test_an_object_goes_where_it_is_needed_as_well() -> None:
    clusters = {name: Cluster({}, True) for name in ("east", "west", "north")}
    config = {"kind": "ConfigMap", "metadata": {
        "name": "settings", "annotations": {"federator.io/clusters": "west"}}}
    found = decide(config, None, clusters, needed_by={"east": "Deployment web"})
    assert found.targets == ["east", "west"]
    assert found.reasons["east"] == "needed by Deployment web, placed there"
    assert found.reasons["north"] == "not selected by the object's placement annotations"
