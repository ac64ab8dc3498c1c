"""Any kind the plane serves is federated: built-in kinds federator has no interpreter for
(copied whole), what a member owns left out of its copy, custom resources following their
definitions; through the gateway with the real kubectl."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from federator.domain.kinds import CLUSTER_LOCAL, federated
from federator.kube.client import KubeClient
from federator.kube.discovery import discover
from federator.kube.kubeconfig import load_credentials
from tests.integration.conftest import in_place_of
from tests.integration.test_propagation import MEMBERS, copy_of, events
from tests.kube import eventually, kubectl
from tests.serving import Serve

pytestmark = pytest.mark.integration
NAMESPACE = "kinds"

APPLICATION = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: shop, namespace: kinds}
secrets: [{name: shop-token-from-the-plane}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: shop-reader, namespace: kinds}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: shop-reader, namespace: kinds}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: shop-reader}
subjects: [{kind: ServiceAccount, name: shop, namespace: kinds}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: kinds}
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: shop, port: {number: 80}}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: shop, namespace: kinds}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: shop}
  minReplicas: 1
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: shop, namespace: kinds}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: shop}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: shop, namespace: kinds}
spec:
  podSelector: {matchLabels: {app: shop}}
  policyTypes: [Ingress]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: shop-data, namespace: kinds}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
  volumeName: a-volume-of-the-plane
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kinds-shop-auditor}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
"""
KINDS = [("serviceaccount", "shop"), ("role", "shop-reader"), ("rolebinding", "shop-reader"),
         ("ingress", "shop"), ("hpa", "shop"), ("pdb", "shop"), ("networkpolicy", "shop"),
         ("pvc", "shop-data")]


def _everywhere(kubeconfig: Path, *what: str, namespace: str | None = NAMESPACE
                ) -> list[Any]:
    where = ["-n", namespace] if namespace else []
    return [copy_of(kubeconfig, member, *where, *what) for member in MEMBERS]


def test_kinds_without_an_interpreter_reach_every_member(serving: Serve, federation: Path,
                                                         gateway: Path) -> None:
    kubectl(gateway, "federation", "create", "namespace", NAMESPACE)
    done = kubectl(gateway, "federation", "apply", "-f", "-", stdin=APPLICATION)
    assert "Warning" not in done.stderr, done.stderr
    for kind, name in KINDS:
        copies = eventually(lambda k=kind, n=name: all(_everywhere(federation, k, n))
                            and _everywhere(federation, k, n),
                            f"{kind} {name} in every member")
        for copy in copies:
            labels = copy["metadata"].get("labels") or {}
            assert labels.get("federator.io/managed-by"), (kind, copy["metadata"])
    auditors = eventually(lambda: all(_everywhere(federation, "clusterrole",
                                                  "kinds-shop-auditor", namespace=None))
                          and _everywhere(federation, "clusterrole", "kinds-shop-auditor",
                                          namespace=None), "a ClusterRole in every member")
    assert all(a["rules"][0]["resources"] == ["pods"] for a in auditors)
    # What each member owns is its own: the plane's token references and volume are not sent.
    for account in _everywhere(federation, "serviceaccount", "shop"):
        assert "shop-token-from-the-plane" not in json.dumps(account.get("secrets") or [])
    for claim in _everywhere(federation, "pvc", "shop-data"):
        assert "volumeName" not in claim["spec"]
    # The RoleBinding works in a member: the ServiceAccount may read ConfigMaps there.
    allowed = kubectl(federation, "member-2", "auth", "can-i", "list", "configmaps", "-n",
                      NAMESPACE, f"--as=system:serviceaccount:{NAMESPACE}:shop", check=False)
    assert allowed.stdout.strip() == "yes"
    # Drift of a kind without an interpreter is undone too.
    kubectl(federation, "member-3", "-n", NAMESPACE, "patch", "pdb", "shop", "--type=merge",
            "-p", '{"spec": {"maxUnavailable": 3}}')
    eventually(lambda: copy_of(federation, "member-3", "-n", NAMESPACE, "pdb", "shop")
               ["spec"]["maxUnavailable"] == 1, "the PDB in member-3 restored")
    assert not events(federation, "shop", "PropagationFailed", NAMESPACE)
    kubectl(gateway, "federation", "-n", NAMESPACE, "delete",
            *[f"{kind}/{name}" for kind, name in KINDS])
    kubectl(gateway, "federation", "delete", "clusterrole", "kinds-shop-auditor")
    for kind, name in [*KINDS]:
        eventually(lambda k=kind, n=name: not any(_everywhere(federation, k, n)),
                   f"{kind} {name} gone from every member")
    eventually(lambda: not any(_everywhere(federation, "clusterrole", "kinds-shop-auditor",
                                           namespace=None)), "the ClusterRole gone")


DEFINITION = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs.stable.example.com}
spec:
  group: stable.example.com
  names: {kind: CronTab, plural: crontabs, singular: crontab, listKind: CronTabList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string}
              image: {type: string}
"""
CRONTAB = """
apiVersion: stable.example.com/v1
kind: CronTab
metadata: {{name: {name}, namespace: kinds}}
spec: {{cronSpec: "* * * * */{index}", image: nightly}}
"""


def test_custom_resources_follow_their_definition(serving: Serve, federation: Path,
                                                  gateway: Path) -> None:
    """A CRD created in the plane reaches every member, and its custom resources follow as
    soon as each member serves them: they wait, they do not fail."""
    kubectl(gateway, "federation", "create", "namespace", f"{NAMESPACE}-crd")
    try:
        kubectl(gateway, "federation", "apply", "-f", "-", stdin=DEFINITION)
        kubectl(gateway, "federation", "wait", "--for=condition=Established",
                "crd/crontabs.stable.example.com", "--timeout=60s")
        # At once, before any member has the definition.
        kubectl(gateway, "federation", "apply", "-f", "-", stdin="---".join(
            CRONTAB.format(name=f"tab-{i}", index=i).replace("kinds}", "kinds-crd}")
            for i in range(1, 4)))
        for i in range(1, 4):
            copies = eventually(
                lambda n=f"tab-{i}": all(_everywhere(federation, "crontabs", n,
                                                     namespace=f"{NAMESPACE}-crd"))
                and _everywhere(federation, "crontabs", n, namespace=f"{NAMESPACE}-crd"),
                f"CronTab tab-{i} in every member", attempts=600)
            assert all(c["spec"]["cronSpec"] == f"* * * * */{i}" for c in copies)
        assert all(_everywhere(federation, "crd", "crontabs.stable.example.com",
                               namespace=None))
        for i in range(1, 4):
            assert not events(federation, f"tab-{i}", "PropagationFailed",
                              f"{NAMESPACE}-crd")
        kubectl(gateway, "federation", "-n", f"{NAMESPACE}-crd", "delete", "crontab", "tab-1")
        eventually(lambda: not any(_everywhere(federation, "crontab", "tab-1",
                                               namespace=f"{NAMESPACE}-crd")),
                   "tab-1 gone from every member")
    finally:
        # The definition goes with two of its resources still there: they go first (their
        # finalizers lifted), then the definition, in the plane and in every member.
        kubectl(gateway, "federation", "delete", "crd", "crontabs.stable.example.com",
                "--timeout=120s", check=False)
    assert kubectl(gateway, "federation", "get", "crd", "crontabs.stable.example.com",
                   check=False).returncode != 0
    eventually(lambda: not any(_everywhere(federation, "crd", "crontabs.stable.example.com",
                                           namespace=None)),
               "the CRD gone from every member", attempts=600)


# Kinds other than Deployments and ReplicaSets take their weights from their policy.
WEIGHTS = """
apiVersion: federator.io/v1alpha1
kind: FederationPolicy
metadata: {{name: weights, namespace: {namespace}}}
spec:
  resourceSelectors: [{{apiVersion: {api_version}, kind: {kind}}}]
  replicaScheduling:
    rebalance: true
    clusters: {{member-1: {{weight: {weights[0]}}}, member-2: {{weight: {weights[1]}}},
               member-3: {{weight: {weights[2]}}}}}
"""
JOB = """
apiVersion: batch/v1
kind: Job
metadata: {{name: batch-{name}, namespace: kinds-job}}
spec:
  parallelism: 6
  completions: {completions}
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: work, image: registry.k8s.io/pause:3.10}}]
"""


def test_a_job_is_split_by_weights_and_complete_when_done_everywhere(
        serving: Serve, federation: Path, gateway: Path) -> None:
    kubectl(gateway, "federation", "create", "namespace", "kinds-job")
    kubectl(gateway, "federation", "apply", "-f", "-", stdin=WEIGHTS.format(
        namespace="kinds-job", api_version="batch/v1", kind="Job", weights=(3, 2, 1)))
    kubectl(gateway, "federation", "apply", "-f", "-",
            stdin=JOB.format(name="split", completions=12))
    copies = eventually(lambda: all(_everywhere(federation, "job", "batch-split",
                                                namespace="kinds-job"))
                        and _everywhere(federation, "job", "batch-split",
                                        namespace="kinds-job"),
                        "the Job in every member")
    assert [(c["spec"]["parallelism"], c["spec"]["completions"]) for c in copies] == [
        (3, 6), (2, 4), (1, 2)]
    for copy in copies:  # each member made its own selector, from its own uid
        assert copy["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"] \
            == copy["metadata"]["uid"]
    kubectl(gateway, "federation", "-n", "kinds-job", "wait", "--for=condition=Complete",
            "job/batch-split", "--timeout=180s")
    job = json.loads(kubectl(gateway, "federation", "-n", "kinds-job", "get", "job",
                             "batch-split", "-o", "json").stdout)
    assert job["status"]["succeeded"] == 12 and job["status"].get("completionTime")
    listed = kubectl(gateway, "federation", "-n", "kinds-job", "get", "job",
                     "batch-split").stdout
    assert "12/12" in listed, listed
    kubectl(gateway, "federation", "delete", "namespace", "kinds-job")
    eventually(lambda: not any(_everywhere(federation, "job", "batch-split",
                                           namespace="kinds-job")),
               "the Job gone from every member")


SCALED_DEFINITION = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: caches.scaling.example.com}
spec:
  group: scaling.example.com
  names: {kind: Cache, plural: caches, singular: cache, listKind: CacheList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.size, statusReplicasPath: .status.running}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
          status: {type: object, properties: {running: {type: integer}}}
"""
CACHE = """
apiVersion: scaling.example.com/v1
kind: Cache
metadata: {name: sessions, namespace: kinds-scale}
spec: {size: 4}
"""


def _sizes(federation: Path) -> list[Any]:
    """The Cache's size in each member (None where it has no copy)."""
    return [((copy_of(federation, m, "-n", "kinds-scale", "caches", "sessions") or {})
             .get("spec") or {}).get("size") for m in MEMBERS]


def test_a_custom_kind_with_a_scale_subresource_is_spread(serving: Serve, federation: Path,
                                                          gateway: Path) -> None:
    kubectl(gateway, "federation", "apply", "-f", "-", stdin=SCALED_DEFINITION)
    kubectl(gateway, "federation", "create", "namespace", "kinds-scale")
    kubectl(gateway, "federation", "apply", "-f", "-", stdin=WEIGHTS.format(
        namespace="kinds-scale", api_version="scaling.example.com/v1", kind="Cache",
        weights=(2, 1, 1)))
    scaled = ("-n", "kinds-scale")
    try:
        kubectl(gateway, "federation", "wait", "--for=condition=Established",
                "crd/caches.scaling.example.com", "--timeout=60s")
        kubectl(gateway, "federation", "apply", "-f", "-", stdin=CACHE)
        eventually(lambda: _sizes(federation) == [2, 1, 1], "the Cache spread 2:1:1",
                   attempts=600)
        # Each member reports what it runs; the plane's status is the sum.
        for member, running in zip(MEMBERS, (2, 1, 1), strict=True):
            kubectl(federation, member, *scaled, "patch", "caches", "sessions",
                    "--subresource=status", "--type=merge", "-p",
                    json.dumps({"status": {"running": running}}))
        eventually(lambda: (json.loads(kubectl(gateway, "federation", *scaled, "get", "cache",
                                               "sessions", "-o", "json").stdout)
                            .get("status") or {}).get("running") == 4,
                   "the plane's Cache running 4")
        # Scaled through its scale subresource in the federation: spread again.
        kubectl(gateway, "federation", *scaled, "scale", "cache/sessions", "--replicas=8")
        eventually(lambda: _sizes(federation) == [4, 2, 2], "the Cache spread 4:2:2")
        kubectl(gateway, "federation", *scaled, "delete", "cache", "sessions")
        eventually(lambda: _sizes(federation) == [None, None, None],
                   "the Cache gone from every member")
    finally:
        kubectl(gateway, "federation", "delete", "crd", "caches.scaling.example.com",
                "--wait=false", check=False)
        kubectl(gateway, "federation", "delete", "namespace", "kinds-scale", "--wait=false",
                check=False)


LEASE = """
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: kinds-local, namespace: default}
spec: {holderIdentity: someone}
"""


def test_what_is_local_by_nature_stays_in_the_plane(serving: Serve, federation: Path,
                                                    kubeconfig: Path) -> None:
    """On the plane's real discovery, every kind of the exclusion list that it serves is left
    out; a Lease written
    through the federation stays in the plane: once a ConfigMap written after it has reached
    every member, no member holds it."""
    async def discovered() -> list[str]:
        plane = KubeClient(await load_credentials(kubeconfig, "plane"))
        try:
            found = await discover(plane)
        finally:
            await plane.close()
        served = {(r.group, r.plural) for r in found.resources}
        chosen = {(r.group, r.plural) for r in federated(found.resources)}
        assert not chosen & set(CLUSTER_LOCAL)
        assert served & set(CLUSTER_LOCAL) >= {("", "pods"), ("", "events"),
                                              ("coordination.k8s.io", "leases")}
        return sorted(f"{g}/{p}" for g, p in served & set(CLUSTER_LOCAL))

    assert asyncio.run(discovered())
    kubectl(federation, "federation", "apply", "-f", "-", stdin=LEASE)
    kubectl(federation, "federation", "create", "configmap", "kinds-after-lease",
            "--from-literal=a=1")
    try:
        eventually(lambda: all(_everywhere(federation, "configmap", "kinds-after-lease",
                                           namespace="default")),
                   "the later ConfigMap in every member")
        assert not any(_everywhere(federation, "lease", "kinds-local", namespace="default"))
    finally:
        kubectl(federation, "federation", "-n", "default", "delete", "lease,configmap",
                "kinds-local", "kinds-after-lease", "--ignore-not-found")


NETWORK_POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: kinds-excluded, namespace: default}
spec: {podSelector: {}, policyTypes: [Ingress]}
"""


def test_propagation_exclude_keeps_a_kind_in_the_plane(serving: Serve, federation: Path,
                                                      tmp_path: Path) -> None:
    """With `propagation.exclude: [networkpolicies.networking.k8s.io]` a NetworkPolicy
    written through the federation stays in the plane (checked once a later ConfigMap has
    reached every member); served again without the setting, it is propagated."""
    settings = tmp_path / "federator.yaml"
    settings.write_text("propagation:\n  exclude: [networkpolicies.networking.k8s.io]\n")
    try:
        with in_place_of(serving, federation, "excluding", tmp_path / "serve.log",
                         {"FEDERATOR_DNS__ENABLED": "false"}, settings) as alone:
            eventually(lambda: alone.metric("federator_leader") == 1, "the test's serve leads",
                       attempts=300)
            kubectl(federation, "federation", "apply", "-f", "-", stdin=NETWORK_POLICY)
            kubectl(federation, "federation", "create", "configmap", "kinds-after-policy",
                    "--from-literal=a=1")
            eventually(lambda: all(_everywhere(federation, "configmap", "kinds-after-policy",
                                               namespace="default")),
                       "the later ConfigMap in every member")
            assert not any(_everywhere(federation, "networkpolicy", "kinds-excluded",
                                       namespace="default"))
        eventually(lambda: all(_everywhere(federation, "networkpolicy", "kinds-excluded",
                                           namespace="default")),
                   "the NetworkPolicy in every member once nothing excludes it")
    finally:
        kubectl(federation, "federation", "-n", "default", "delete",
                "networkpolicy/kinds-excluded", "configmap/kinds-after-policy",
                "--ignore-not-found")
