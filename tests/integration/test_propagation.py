"""Propagation on the lab with the real kubectl: spreading, config objects, drift, clashes,
deletion and bad input."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import in_place_of, readyz_forbidden
from tests.kube import eventually, get_json, kubectl
from tests.serving import Serve

pytestmark = pytest.mark.integration
MEMBERS = ("member-1", "member-2", "member-3")

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
  annotations:
    federation.kubernetes.io/deployment-preferences: '{preferences}'
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: app, image: registry.k8s.io/pause:3.10}}]
"""


def apply(kubeconfig: Path, text: str) -> None:
    kubectl(kubeconfig, "federation", "apply", "-f", "-", stdin=text)


def copy_of(kubeconfig: Path, member: str, *args: str) -> Any:
    done = kubectl(kubeconfig, member, "get", *args, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None


def events(kubeconfig: Path, name: str, reason: str, namespace: str = "default") -> list[Any]:
    """federator's own events about an object (member events copied into the plane keep
    their member component as source)."""
    found = get_json(kubeconfig, "federation", "events", "-n", namespace, "--field-selector",
                     f"involvedObject.name={name},reason={reason},source=federator")
    return sorted(found["items"], key=lambda e: (e["lastTimestamp"], e["metadata"]["name"]))


def running_pods(kubeconfig: Path, member: str, app: str, namespace: str = "default") -> int:
    pods = get_json(kubeconfig, member, "pods", "-n", namespace, "-l", f"app={app}")["items"]
    return sum(1 for p in pods if p["status"].get("phase") == "Running"
               and not p["metadata"].get("deletionTimestamp"))


def test_weighted_deployment_runs_two_and_one(serving: Serve, federation: Path) -> None:
    prefs = ('{"rebalance": true, "clusters": {"member-1": {"weight": 2}, '
             '"member-2": {"weight": 1}}}')
    apply(federation, WEB.format(name="weighted", namespace="default", preferences=prefs,
                                 replicas=3))
    kubectl(federation, "federation", "rollout", "status", "deployment/weighted",
            "--timeout=180s")
    eventually(lambda: [running_pods(federation, m, "weighted") for m in MEMBERS] == [2, 1, 0],
               "2 and 1 Running pods in member-1 and member-2")
    table = kubectl(federation, "federation", "get", "deployment", "weighted").stdout
    assert table.splitlines()[1].split()[1] == "3/3"
    breakdown = json.loads(get_json(federation, "federation", "deployment", "weighted")
                           ["metadata"]["annotations"]["federator.io/cluster-status"])
    assert {c: b["desired"] for c, b in breakdown.items()} == {
        "member-1": 2, "member-2": 1, "member-3": 0}
    scheduled = events(federation, "weighted", "Scheduled")
    assert any("member-1=2, member-2=1, member-3=0" in e["message"] for e in scheduled)


def test_config_objects_reach_every_member(serving: Serve, federation: Path) -> None:
    kubectl(federation, "federation", "create", "configmap", "settings",
            "--from-literal=color=blue")
    kubectl(federation, "federation", "create", "secret", "generic", "creds",
            "--from-literal=password=hunter2")
    for member in MEMBERS:
        cm = eventually(lambda m=member: copy_of(federation, m, "configmap", "settings"),
                        f"ConfigMap in {member}")
        assert cm["data"] == {"color": "blue"}
        assert cm["metadata"]["labels"]["federator.io/managed-by"] == "federation"
        secret = eventually(lambda m=member: copy_of(federation, m, "secret", "creds"),
                            f"Secret in {member}")
        assert secret["data"]["password"] == "aHVudGVyMg=="


def test_replicaset_mounting_a_configmap_runs_where_spread(serving: Serve,
                                                           federation: Path) -> None:
    kubectl(federation, "federation", "create", "namespace", "shop")
    kubectl(federation, "federation", "-n", "shop", "create", "configmap", "shop-config",
            "--from-literal=k=v")
    apply(federation, """
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: cart
  namespace: shop
spec:
  replicas: 4
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec:
      containers:
        - name: app
          image: registry.k8s.io/pause:3.10
          volumeMounts: [{name: config, mountPath: /config}]
      volumes: [{name: config, configMap: {name: shop-config}}]
""")
    counts = eventually(lambda: (c := [running_pods(federation, m, "cart", "shop")
                                       for m in MEMBERS]) and sum(c) == 4 and c,
                        "4 Running cart pods")
    assert sorted(counts) == [1, 1, 2]  # equal weights: 4 over 3 clusters
    for member in MEMBERS:
        assert copy_of(federation, member, "namespace", "shop") is not None
        assert copy_of(federation, member, "-n", "shop", "configmap", "shop-config")
    eventually(lambda: get_json(federation, "federation", "-n", "shop", "replicaset", "cart")
               .get("status", {}).get("readyReplicas") == 4, "plane ReplicaSet ready 4")


def test_service_copies_get_their_own_cluster_ip(serving: Serve, federation: Path) -> None:
    kubectl(federation, "federation", "create", "service", "clusterip", "front",
            "--tcp=80:8080")
    plane_ip = get_json(federation, "federation", "service", "front")["spec"]["clusterIP"]
    for member in MEMBERS:
        svc = eventually(lambda m=member: copy_of(federation, m, "service", "front"),
                         f"Service in {member}")
        assert svc["spec"]["clusterIP"] != plane_ip
        assert svc["spec"]["ports"][0]["targetPort"] == 8080


def test_drift_is_undone(serving: Serve, federation: Path) -> None:
    kubectl(federation, "federation", "create", "configmap", "drifty", "--from-literal=a=1")
    eventually(lambda: copy_of(federation, "member-2", "configmap", "drifty"), "copy")
    kubectl(federation, "member-2", "patch", "configmap", "drifty", "--type=merge",
            "-p", '{"data": {"a": "2", "extra": "kept"}}')
    restored = eventually(lambda: (c := copy_of(federation, "member-2", "configmap", "drifty"))
                          and c["data"].get("a") == "1" and c, "data.a restored")
    assert restored["data"]["extra"] == "kept"  # a field federator does not manage
    kubectl(federation, "member-3", "delete", "configmap", "drifty")
    eventually(lambda: copy_of(federation, "member-3", "configmap", "drifty"), "recreated")
    reasons = [e["message"] for e in events(federation, "drifty", "DriftCorrected")]
    assert any("restored data.a" in m and "member-2" in m for m in reasons)
    assert any("recreated" in m and "member-3" in m for m in reasons)


def test_an_unmanaged_object_is_reported_and_left_alone(serving: Serve,
                                                        federation: Path) -> None:
    kubectl(federation, "member-2", "create", "configmap", "theirs", "--from-literal=owner=me")
    kubectl(federation, "federation", "create", "configmap", "theirs",
            "--from-literal=owner=federation")
    eventually(lambda: copy_of(federation, "member-1", "configmap", "theirs"), "member-1 copy")
    warning = eventually(lambda: events(federation, "theirs", "PropagationFailed"),
                         "a PropagationFailed event")
    assert "member-2" in warning[-1]["message"] and "does not manage" in warning[-1]["message"]
    status = eventually(lambda: get_json(federation, "federation", "configmap", "theirs")
                        ["metadata"].get("annotations", {}).get("federator.io/cluster-status"),
                        "cluster-status annotation")
    assert "does not manage" in json.loads(status)["member-2"]["error"]
    theirs = copy_of(federation, "member-2", "configmap", "theirs")
    assert theirs["data"] == {"owner": "me"}
    assert "federator.io/managed-by" not in theirs["metadata"].get("labels", {})
    # Adopted on request: the copy becomes federator's, and the error leaves the annotation.
    kubectl(federation, "federation", "annotate", "configmap", "theirs",
            "federator.io/adopt=true")
    adopted = eventually(lambda: (c := copy_of(federation, "member-2", "configmap", "theirs"))
                         and c["data"].get("owner") == "federation" and c, "adopted")
    assert adopted["metadata"]["labels"]["federator.io/managed-by"] == "federation"
    eventually(lambda: "federator.io/cluster-status" not in get_json(
        federation, "federation", "configmap", "theirs")["metadata"].get("annotations", {}),
        "cluster-status gone once the error cleared")


def test_delete_and_orphan_delete(serving: Serve, federation: Path) -> None:
    for name in ("doomed", "orphan"):
        kubectl(federation, "federation", "create", "configmap", name, "--from-literal=a=1")
        for member in MEMBERS:
            eventually(lambda m=member, n=name: copy_of(federation, m, "configmap", n),
                       f"{name} in {member}")
    kubectl(federation, "federation", "delete", "configmap", "doomed", "--timeout=60s")
    for member in MEMBERS:
        assert copy_of(federation, member, "configmap", "doomed") is None
    kubectl(federation, "federation", "delete", "configmap", "orphan", "--cascade=orphan",
            "--timeout=60s")
    eventually(lambda: kubectl(federation, "federation", "get", "configmap", "orphan",
                               check=False).returncode != 0, "plane object gone")
    for member in MEMBERS:
        kept = copy_of(federation, member, "configmap", "orphan")
        assert kept is not None
        assert "federator.io/managed-by" not in kept["metadata"].get("labels", {})


@pytest.mark.parametrize(("name", "preferences", "problem"), [
    ("malformed", "{not json", "is not valid JSON"),
    ("negative", '{"clusters": {"*": {"weight": -1}}}', "weight: Input should be greater"),
    ("inverted", '{"clusters": {"*": {"minReplicas": 3, "maxReplicas": 1}}}',
     "minReplicas 3 is more than maxReplicas 1"),
    ("stranger", '{"clusters": {"member-9": {"weight": 1}}}', "not joined: member-9"),
])
def test_bad_preferences_propagate_nothing(serving: Serve, federation: Path, name: str,
                                           preferences: str, problem: str) -> None:
    apply(federation, WEB.format(name=name, namespace="default", preferences=preferences,
                                 replicas=2))
    warning = eventually(lambda: events(federation, name, "InvalidPlacement"),
                         "an InvalidPlacement event")
    assert problem in warning[-1]["message"]
    status = get_json(federation, "federation", "deployment", name)["metadata"]["annotations"]
    assert problem in json.loads(status["federator.io/cluster-status"])["error"]
    # The rest of the federation keeps working: a later object still propagates.
    kubectl(federation, "federation", "create", "configmap", f"after-{name}",
            "--from-literal=a=1")
    eventually(lambda: copy_of(federation, "member-1", "configmap", f"after-{name}"),
               "a later object propagated")
    for member in MEMBERS:
        assert copy_of(federation, member, "deployment", name) is None
    kubectl(federation, "federation", "delete", "deployment,configmap", name, f"after-{name}",
            "--ignore-not-found")


def test_failover_moves_replicas_and_brings_them_back(serving: Serve, federation: Path,
                                                      lab: Any, lab_spec: Any) -> None:
    apply(federation, WEB.format(name="failover", namespace="default",
                                 preferences='{"rebalance": true, "clusters": {"*": {}}}',
                                 replicas=6))
    eventually(lambda: [running_pods(federation, m, "failover") for m in MEMBERS] == [2, 2, 2],
               "2 Running pods in each member")
    lab.stop_component("member-1/kube-apiserver")
    try:
        eventually(lambda: [running_pods(federation, m, "failover") for m in MEMBERS[1:]]
                   == [3, 3], "3 Running pods in member-2 and member-3")
        try:
            eventually(lambda: get_json(federation, "federation", "deployment", "failover")
                       .get("status", {}).get("availableReplicas") == 6,
                       "full availability in the plane", attempts=600)
        except AssertionError:
            plane = get_json(federation, "federation", "deployment", "failover")
            print("plane:", plane["metadata"].get("annotations"), plane.get("status"))
            for member in MEMBERS[1:]:
                copy = copy_of(federation, member, "deployment", "failover")
                print(member, copy["metadata"].get("annotations"), copy.get("status"))
                print(kubectl(federation, member, "get", "pods", "-l", "app=failover",
                              "-o", "wide").stdout)
            raise
        scheduled = events(federation, "failover", "Scheduled")
        assert any("member-2=3, member-3=3" in e["message"] for e in scheduled)
    finally:
        lab.up(lab_spec)
    eventually(lambda: [running_pods(federation, m, "failover") for m in MEMBERS] == [2, 2, 2],
               "back to 2 Running pods in each member", attempts=600)
    kubectl(federation, "federation", "rollout", "status", "deployment/failover",
            "--timeout=120s")


def managed_configmaps(kubeconfig: Path, member: str, namespace: str) -> dict[str, Any]:
    items = get_json(kubeconfig, member, "-n", namespace, "configmaps", "-l",
                     "federator.io/managed-by=federation")["items"]
    return {i["metadata"]["name"]: i["data"] for i in items}


def test_a_killed_federator_converges_after_restart(serving: Serve, federation: Path) -> None:
    kubectl(federation, "federation", "create", "namespace", "bulk")
    wanted = {f"item-{i:03d}": {"index": str(i)} for i in range(200)}
    items = [{"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": name, "namespace": "bulk"}, "data": data}
             for name, data in wanted.items()]
    # Kill federator as soon as the first copies land, while the plane is still filling.
    writer = subprocess.Popen(["kubectl", f"--kubeconfig={federation}", "--context=federation",
                               "apply", "-f", "-"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL)
    assert writer.stdin is not None
    writer.stdin.write(json.dumps({"apiVersion": "v1", "kind": "List",
                                   "items": items}).encode())
    writer.stdin.close()
    eventually(lambda: copy_of(federation, "member-1", "namespace", "bulk")
               and managed_configmaps(federation, "member-1", "bulk"), "the first copies")
    serving.kill()
    assert writer.wait(timeout=300) == 0
    present = [len(managed_configmaps(federation, m, "bulk")) if
               copy_of(federation, m, "namespace", "bulk") else 0 for m in MEMBERS]
    print(f"copies present when federator was killed: {present} of 200 each")
    serving.restart()
    for member in MEMBERS:
        eventually(lambda m=member: managed_configmaps(federation, m, "bulk") == wanted,
                   f"exactly the 200 ConfigMaps in {member}", attempts=900)


POLICY = """
apiVersion: federator.io/v1alpha1
kind: FederationPolicy
metadata:
  name: {name}
  namespace: {namespace}
spec:
  resourceSelectors:
    - {{apiVersion: apps/v1, kind: Deployment, labelSelector: {{matchLabels: {{team: {team}}}}}}}
  placement:
    clusters: {clusters}
  replicaScheduling:
    rebalance: true
    clusters: {{member-1: {{weight: 3}}, member-2: {{weight: 1}}}}
  overrides:
    - clusters: [member-2]
      patches:
        - {{op: replace, path: /spec/template/spec/containers/0/image,
           value: "registry.k8s.io/pause:3.9"}}
        - {{op: add, path: /metadata/labels/region, value: west}}
"""


def planned(gateway: Path, namespace: str, name: str) -> dict[str, tuple[int, str]]:
    """What POST /federator/v1/plan says of a plane Deployment as it stands: replicas and
    reason per cluster."""
    obj = get_json(gateway, "federation", "-n", namespace, "deployment", name)
    plan = json.loads(kubectl(gateway, "federation", "create", "--raw", "/federator/v1/plan",
                              "-f", "-", stdin=json.dumps({"object": obj})).stdout)
    return {s["cluster"]: (s["replicas"], s["reason"]) for s in plan["clusters"]}


def test_a_policy_places_spreads_and_overrides(serving: Serve, federation: Path,
                                               gateway: Path) -> None:
    kubectl(federation, "federation", "create", "namespace", "team-a")
    apply(federation, POLICY.format(name="team-a", namespace="team-a", team="a",
                                    clusters="[member-1, member-2]"))
    deployment = WEB.format(name="api", namespace="team-a", preferences="",
                            replicas=4).replace("  annotations:\n    federation.kubernetes"
                                                ".io/deployment-preferences: ''\n", "")
    deployment = deployment.replace("  namespace: team-a\n",
                                    "  namespace: team-a\n  labels: {team: a}\n")
    apply(federation, deployment)
    kubectl(federation, "federation", "-n", "team-a", "rollout", "status", "deployment/api",
            "--timeout=180s")
    copies = {m: copy_of(federation, m, "-n", "team-a", "deployment", "api") for m in MEMBERS}
    assert copies["member-3"] is None
    assert copies["member-1"]["spec"]["replicas"] == 3
    assert copies["member-2"]["spec"]["replicas"] == 1
    image = copies["member-2"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.k8s.io/pause:3.9"
    assert copies["member-2"]["metadata"]["labels"]["region"] == "west"
    assert copies["member-1"]["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "registry.k8s.io/pause:3.10"
    # /plan decides as the controller did: the policy's placement and scheduling.
    plan = planned(gateway, "team-a", "api")
    assert {m: plan[m][0] for m in MEMBERS} == {"member-1": 3, "member-2": 1, "member-3": 0}
    assert plan["member-3"][1] == "not selected by FederationPolicy team-a"


def test_a_policy_naming_an_unknown_cluster(serving: Serve, federation: Path) -> None:
    kubectl(federation, "federation", "create", "namespace", "team-b")
    apply(federation, POLICY.format(name="team-b", namespace="team-b", team="b",
                                    clusters="[member-1, member-7]"))
    deployment = WEB.format(name="lost", namespace="team-b", preferences="{}", replicas=1)
    deployment = deployment.replace("  namespace: team-b\n",
                                    "  namespace: team-b\n  labels: {team: b}\n")
    apply(federation, deployment)
    warning = eventually(lambda: events(federation, "lost", "InvalidPlacement", "team-b"),
                         "an InvalidPlacement event")
    assert "FederationPolicy team-b names clusters that are not joined: member-7" in \
        warning[-1]["message"]
    for member in MEMBERS:
        assert copy_of(federation, member, "-n", "team-b", "deployment", "lost") is None


def set_pod_room(kubeconfig: Path, member: str, extra: int | None) -> None:
    """Give each node of a member room for `extra` more pods (None: back to 110), once no
    pod there is on its way out (one that goes would leave more room than meant)."""
    if extra is not None:
        eventually(lambda: not any(p["metadata"].get("deletionTimestamp") for p in get_json(
            kubeconfig, member, "pods", "-A")["items"]), f"no pod leaving {member}")
    pods = get_json(kubeconfig, member, "pods", "-A")["items"]
    for node in get_json(kubeconfig, member, "nodes")["items"]:
        name = node["metadata"]["name"]
        on_node = sum(1 for p in pods if p["spec"].get("nodeName") == name
                      and p["status"].get("phase") in ("Pending", "Running")
                      and not p["metadata"].get("deletionTimestamp"))  # going: no room
        room = "110" if extra is None else str(on_node + extra)
        kubectl(kubeconfig, member, "patch", "node", name, "--subresource=status",
                "--type=merge", "-p", json.dumps({"status": {
                    "allocatable": {"pods": room}, "capacity": {"pods": room}}}))
        eventually(lambda n=name, r=room: get_json(kubeconfig, member, "node", n)
                   ["status"]["allocatable"]["pods"] == r, f"{name} holds room for {room}")
    # The member's scheduler places pods by what its own cache says of the nodes (pods
    # made at once were placed, once, as if every node still had room for 110): wait until
    # that cache holds the new room.
    scheduler_has_seen_the_nodes(kubeconfig, member)


CANARY = """
apiVersion: v1
kind: Pod
metadata: {{name: room-canary-{token}, namespace: kube-system}}
spec:
  nodeSelector: {{federator.test/seen: "{token}"}}
  containers:
  - name: app
    image: registry.k8s.io/pause:3.10
    resources: {{requests: {{cpu: "100000"}}}}
"""


def scheduler_has_seen_the_nodes(kubeconfig: Path, member: str) -> None:
    """Returns once the member's scheduler holds every change written to its nodes so far.
    Each node gets a label after them; a pod that asks for that label and for more CPU than
    any node has is judged by the scheduler against its cache: once it says every node
    lacks CPU (rather than the label), the cache has the label, and so what came before it
    (its node informer sees each node's changes in order). The pod never runs: it takes no
    room, and is deleted."""
    token = str(time.monotonic_ns())
    nodes = [n["metadata"]["name"] for n in get_json(kubeconfig, member, "nodes")["items"]]
    kubectl(kubeconfig, member, "label", "node", *nodes, "--overwrite",
            f"federator.test/seen={token}")
    kubectl(kubeconfig, member, "apply", "-f", "-", stdin=CANARY.format(token=token))
    try:
        def judged() -> bool:
            pod = get_json(kubeconfig, member, "-n", "kube-system", "pod",
                           f"room-canary-{token}")
            return any(c["type"] == "PodScheduled" and c["status"] == "False"
                       and f"{len(nodes)} Insufficient cpu" in c.get("message", "")
                       for c in pod["status"].get("conditions", []))

        eventually(judged, f"{member}'s scheduler judges a pod against every node's room",
                   attempts=600)
    finally:
        kubectl(kubeconfig, member, "-n", "kube-system", "delete", "pod",
                f"room-canary-{token}", "--wait=false")


def test_overflow_lands_elsewhere(serving: Serve, federation: Path, gateway: Path) -> None:
    set_pod_room(federation, "member-3", 1)  # two nodes: room for 2 more pods
    try:
        prefs = '{"rebalance": true, "clusters": {"member-3": {"weight": 2}, "*": {"weight": 1}}}'
        apply(federation, WEB.format(name="overflow", namespace="default", preferences=prefs,
                                     replicas=8))
        # Asked for 4, member-3 can run 2: after its pods stay unschedulable, the other 2 move.
        eventually(lambda: [running_pods(federation, m, "overflow") for m in MEMBERS]
                   == [3, 3, 2], "3, 3 and 2 Running pods", attempts=600)
        eventually(lambda: get_json(federation, "federation", "deployment", "overflow")
                   .get("status", {}).get("availableReplicas") == 8, "8 available")
        # Pods pass the threshold one by one: "full at 3" may come first, "at 2" must come.
        overflowed = [e["message"] for e in events(federation, "overflow", "Overflow")]
        assert any("cluster member-3 is full at 2 replicas" in m for m in overflowed)
        scheduled = [e["message"] for e in events(federation, "overflow", "Scheduled")]
        assert any("member-3=4" in m for m in scheduled)
        assert "member-1=3, member-2=3, member-3=2" in scheduled[-1]
        # /plan knows what the leader learned: member-3 is full at 2.
        plan = planned(gateway, "default", "overflow")
        assert plan["member-3"] == (2, "full: it has room for 2")
        assert {m: plan[m][0] for m in MEMBERS} == dict(zip(MEMBERS, copy_replicas(
            federation, "deployment", "overflow"), strict=True))
    finally:
        set_pod_room(federation, "member-3", None)
        # Another replica would not know member-3 is full for it, and offer it 4 again.
        kubectl(federation, "federation", "delete", "deployment", "overflow")


def test_an_unreachable_member_does_not_hold_a_deletion(serving: Serve, federation: Path,
                                                        lab: Any, lab_spec: Any) -> None:
    kubectl(federation, "federation", "create", "configmap", "stranded", "--from-literal=a=1")
    for member in MEMBERS:
        eventually(lambda m=member: copy_of(federation, m, "configmap", "stranded"),
                   f"copy in {member}")
    lab.stop_component("member-3/kube-apiserver")
    try:
        kubectl(federation, "federation", "wait", "cluster/member-3", "--timeout=60s",
                "--for=jsonpath={.status.conditions[0].status}=False")
        kubectl(federation, "federation", "delete", "configmap", "stranded", "--wait=false")
        eventually(lambda: kubectl(federation, "federation", "get", "configmap", "stranded",
                                   check=False).returncode != 0,
                   "the plane object gone after the deletion timeout")
        left = events(federation, "stranded", "LeftBehind")
        assert "left in unreachable cluster(s) member-3 until they return" in left[-1]["message"]
        for member in ("member-1", "member-2"):
            assert copy_of(federation, member, "configmap", "stranded") is None
    finally:
        lab.up(lab_spec)
    # Back, member-3 is swept: the copy whose plane object is gone goes too.
    eventually(lambda: copy_of(federation, "member-3", "configmap", "stranded") is None,
               "the left-behind copy removed when member-3 returns", attempts=600)


SELECTOR_POLICY = """
apiVersion: federator.io/v1alpha1
kind: FederationPolicy
metadata:
  name: {name}
  namespace: {name}
spec:
{spec}
"""
CONFIGMAPS = "  resourceSelectors:\n    - {apiVersion: v1, kind: ConfigMap}\n"


@pytest.mark.parametrize(("name", "spec", "problem"), [
    ("team-c", CONFIGMAPS + '  placement: {clusterSelector: {matchExpressions: '
     '[{key: "bad key!", operator: In, values: [gold]}]}}',
     "spec.placement.clusterSelector.matchExpressions[0].key: 'bad key!' is not a label key"),
    ("team-d", CONFIGMAPS + "  placement: {clusterSelector: {matchExpressions: "
     "[{key: tier, operator: Exists, values: [gold]}]}}",
     "spec.placement.clusterSelector.matchExpressions[0].values: Exists takes no values"),
    ("team-x", "  resourceSelectors:\n    - {apiVersion: v1, kind: ConfigMap, labelSelector: "
     "{matchExpressions: [{key: a, operator: Exists, values: ['1']}]}}",
     "spec.resourceSelectors[0].labelSelector.matchExpressions[0].values: Exists takes no "
     "values"),
    ("team-y", CONFIGMAPS + "  overrides:\n    - {clusters: [member-1], patches: "
     "[{op: replace, path: /metadata/name, value: renamed}]}",
     "spec.overrides[0].patches[0].path: /metadata/name cannot be overridden"),
])
def test_a_policy_that_cannot_be_used(serving: Serve, federation: Path, name: str,
                                      spec: str, problem: str) -> None:
    """A selector that cannot be read, an override of the copy's name: not silence, each
    object it governs says why it goes nowhere."""
    kubectl(federation, "federation", "create", "namespace", name)
    apply(federation, SELECTOR_POLICY.format(name=name, spec=spec))
    kubectl(federation, "federation", "-n", name, "create", "configmap", "settings",
            "--from-literal=a=1")
    warning = eventually(lambda: events(federation, "settings", "InvalidPlacement", name),
                         "an InvalidPlacement event")
    assert f"FederationPolicy {name}: {problem}" in warning[-1]["message"]
    annotations = get_json(federation, "federation", "-n", name, "configmap",
                           "settings")["metadata"]["annotations"]
    assert problem in json.loads(annotations["federator.io/cluster-status"])["error"]
    for member in MEMBERS:
        assert copy_of(federation, member, "-n", name, "configmap", "settings") is None


PLACED = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  annotations: {{"{annotation}": "{value}"}}
data: {{a: "{data}"}}
"""


def test_placement_annotations_and_what_copies_carry(serving: Serve, federation: Path) -> None:
    """By name (federator.io/clusters) and by selector (federator.io/cluster-selector) on
    the Clusters' labels; what a copy carries (label, plane uid, field manager); an update is
    an UpdatedInCluster event; system namespaces are not copied."""
    kubectl(federation, "federation", "label", "cluster", "member-3", "tier=gold")
    try:
        apply(federation, PLACED.format(name="by-name", annotation="federator.io/clusters",
                                        value="member-2", data="1"))
        apply(federation, PLACED.format(name="by-selector", data="1",
                                        annotation="federator.io/cluster-selector",
                                        value="tier=gold"))
        for name, where in (("by-name", "member-2"), ("by-selector", "member-3")):
            copy = eventually(lambda n=name, w=where: copy_of(federation, w, "configmap", n),
                              f"{name} in {where}")
            others = [m for m in MEMBERS if m != where]
            assert [copy_of(federation, m, "configmap", name) for m in others] == [None, None]
            plane = get_json(federation, "federation", "configmap", name)
            assert copy["metadata"]["labels"]["federator.io/managed-by"] == "federation"
            assert copy["metadata"]["annotations"]["federator.io/plane-uid"] == \
                plane["metadata"]["uid"]
            fields = copy_of(federation, where, "configmap", name, "--show-managed-fields")
            managers = {f["manager"]: f["operation"]
                        for f in fields["metadata"]["managedFields"]}
            assert managers == {"federator": "Apply"}
    finally:
        kubectl(federation, "federation", "label", "cluster", "member-3", "tier-")
    apply(federation, PLACED.format(name="by-name", annotation="federator.io/clusters",
                                    value="member-2", data="2"))
    eventually(lambda: copy_of(federation, "member-2", "configmap", "by-name")["data"]
               == {"a": "2"}, "the update in member-2")
    updated = eventually(lambda: events(federation, "by-name", "UpdatedInCluster"),
                         "an UpdatedInCluster event")
    assert "updated data.a" in updated[-1]["message"] and "member-2" in updated[-1]["message"]
    # kube-* and federation-system stay in the plane.
    kubectl(federation, "federation", "-n", "kube-public", "create", "configmap", "local",
            "--from-literal=a=1")
    kubectl(federation, "federation", "-n", "federation-system", "create", "configmap",
            "local", "--from-literal=a=1")
    kubectl(federation, "federation", "create", "configmap", "after-local",
            "--from-literal=a=1")
    eventually(lambda: copy_of(federation, "member-1", "configmap", "after-local"),
               "a later object propagated")
    for member in MEMBERS:
        for namespace in ("kube-public", "federation-system"):
            assert copy_of(federation, member, "-n", namespace, "configmap", "local") is None
    for name in ("by-name", "by-selector", "after-local"):
        kubectl(federation, "federation", "delete", "configmap", name)
    for namespace in ("kube-public", "federation-system"):
        kubectl(federation, "federation", "-n", namespace, "delete", "configmap", "local")


def copy_replicas(kubeconfig: Path, kind: str, name: str) -> list[int]:
    return [(copy_of(kubeconfig, m, kind, name) or {}).get("spec", {}).get("replicas", 0)
            for m in MEMBERS]


def test_rebalance_off_only_adds_and_replica_set_preferences(serving: Serve,
                                                             federation: Path) -> None:
    """With rebalance off a scale-up adds to what runs (the new weights place only the new
    replica); the ReplicaSet annotation of federation v1 is read like the Deployment's."""
    even = '{"rebalance": false, "clusters": {"*": {"weight": 1}}}'
    apply(federation, WEB.format(name="steady", namespace="default", preferences=even,
                                 replicas=3))
    eventually(lambda: copy_replicas(federation, "deployment", "steady") == [1, 1, 1],
               "1, 1 and 1")
    skewed = '{"rebalance": false, "clusters": {"member-1": {"weight": 5}, "*": {"weight": 1}}}'
    apply(federation, WEB.format(name="steady", namespace="default", preferences=skewed,
                                 replicas=4))
    # From scratch 5:1:1 would give 3, 1, 0; kept where they run, the new one goes by weight.
    eventually(lambda: copy_replicas(federation, "deployment", "steady") == [2, 1, 1],
               "2, 1 and 1")
    apply(federation, """
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: only-three
  annotations:
    federation.kubernetes.io/replica-set-preferences: '{"clusters": {"member-3": {}}}'
spec:
  replicas: 2
  selector: {matchLabels: {app: only-three}}
  template:
    metadata: {labels: {app: only-three}}
    spec: {containers: [{name: app, image: registry.k8s.io/pause:3.10}]}
""")
    eventually(lambda: copy_replicas(federation, "replicaset", "only-three") == [0, 0, 2],
               "both replicas in member-3")
    kubectl(federation, "federation", "delete", "deployment", "steady")
    kubectl(federation, "federation", "delete", "replicaset", "only-three")


OVERRIDE_POLICY = """
apiVersion: federator.io/v1alpha1
kind: FederationPolicy
metadata: {name: team-e, namespace: team-e}
spec:
  resourceSelectors:
    - {apiVersion: v1, kind: ConfigMap}
  overrides:
    - clusterSelector: {matchLabels: {tier: silver}}
      patches:
        - {op: add, path: /data/tier, value: silver}
"""


def test_overrides_by_cluster_selector(serving: Serve, federation: Path) -> None:
    kubectl(federation, "federation", "label", "cluster", "member-2", "tier=silver")
    try:
        kubectl(federation, "federation", "create", "namespace", "team-e")
        apply(federation, OVERRIDE_POLICY)
        kubectl(federation, "federation", "-n", "team-e", "create", "configmap", "tiered",
                "--from-literal=a=1")
        copies = {m: eventually(lambda m=m: copy_of(federation, m, "-n", "team-e",
                                                    "configmap", "tiered"), f"copy in {m}")
                  for m in MEMBERS}
        assert copies["member-2"]["data"] == {"a": "1", "tier": "silver"}
        assert copies["member-1"]["data"] == copies["member-3"]["data"] == {"a": "1"}
    finally:
        kubectl(federation, "federation", "label", "cluster", "member-2", "tier-")
    kubectl(federation, "federation", "delete", "namespace", "team-e", "--wait=false")


def _federators_write(copy: dict[str, Any]) -> Any:
    """What federator's last apply of a copy left: its generation, replicas, annotations
    and the time of federator's field manager entry."""
    meta = copy["metadata"]
    return (meta["generation"], copy["spec"]["replicas"], meta.get("annotations"),
            [f["time"] for f in meta["managedFields"] if f["manager"] == "federator"])


def test_a_not_ready_member_keeps_its_copy(serving: Serve, federation: Path) -> None:
    """A member that is NotReady while its apiserver still answers (it refuses federator its
    /readyz): its share moves to the others, its copy is not written at all (not scaled,
    not deleted), and once Ready it gets its share back."""
    apply(federation, WEB.format(name="kept", namespace="default",
                                 preferences='{"rebalance": true, "clusters": {"*": {}}}',
                                 replicas=6))
    eventually(lambda: [running_pods(federation, m, "kept") for m in MEMBERS] == [2, 2, 2],
               "2 Running pods in each member")
    before = _federators_write(copy_of(federation, "member-3", "deployment", "kept",
                                              "--show-managed-fields"))
    try:
        with readyz_forbidden(federation, "member-3"):
            kubectl(federation, "federation", "wait", "cluster/member-3", "--timeout=60s",
                    "--for=jsonpath={.status.conditions[0].status}=False")
            eventually(lambda: copy_replicas(federation, "deployment", "kept")[:2] == [3, 3],
                       "member-3's share moved to member-1 and member-2")
            assert any("member-1=3, member-2=3" in e["message"]
                       for e in events(federation, "kept", "Scheduled"))
            assert _federators_write(copy_of(federation, "member-3", "deployment", "kept",
                                             "--show-managed-fields")) == before
            assert running_pods(federation, "member-3", "kept") == 2
        eventually(lambda: copy_replicas(federation, "deployment", "kept") == [2, 2, 2],
                   "member-3's share back", attempts=600)
    finally:
        kubectl(federation, "federation", "delete", "deployment", "kept")
    # Its pods gone from the members: later tests count the room left on their nodes.
    eventually(lambda: not any(get_json(federation, m, "pods", "-l", "app=kept")["items"]
                               for m in MEMBERS), "kept's pods gone", attempts=600)


def test_a_full_member_is_offered_its_share_again_after_capacity_ttl(
        serving: Serve, federation: Path, tmp_path: Path) -> None:
    """Capped as full (its pods Unschedulable for `unschedulable_after`), member-3 gets its
    whole share back once `capacity_ttl` has passed and it has room again. (A replica of its
    own, with a TTL of 12 s.)"""
    with in_place_of(serving, federation, "capacity-ttl", tmp_path / "serve.log",
                     {"FEDERATOR_PROPAGATION__UNSCHEDULABLE_AFTER": "5",
                      "FEDERATOR_PROPAGATION__CAPACITY_TTL": "12",
                      "FEDERATOR_DNS__ENABLED": "false"}):
        set_pod_room(federation, "member-3", 1)  # two nodes: room for 2 more pods
        try:
            prefs = ('{"rebalance": true, "clusters": {"member-3": {"weight": 2}, '
                     '"*": {"weight": 1}}}')
            apply(federation, WEB.format(name="refilled", namespace="default",
                                         preferences=prefs, replicas=8))
            try:
                eventually(lambda: any("cluster member-3 is full at 2 replicas" in e["message"]
                                       for e in events(federation, "refilled", "Overflow")),
                           "member-3 capped at 2", attempts=600)
            except AssertionError:  # what the next reader needs to know why
                print(kubectl(federation, "federation", "get", "events", "--field-selector",
                              "involvedObject.name=refilled").stdout)
                print(kubectl(federation, "member-3", "get", "pods", "-A", "-o",
                              "wide").stdout)
                print(kubectl(federation, "member-3", "get", "nodes", "-o",
                              "custom-columns=NAME:.metadata.name,"
                              "PODS:.status.allocatable.pods").stdout)
                raise
            set_pod_room(federation, "member-3", None)
            eventually(lambda: [running_pods(federation, m, "refilled") for m in MEMBERS]
                       == [2, 2, 4], "member-3 runs its whole share again", attempts=900)
            assert "member-1=2, member-2=2, member-3=4" in events(
                federation, "refilled", "Scheduled")[-1]["message"]
        finally:
            set_pod_room(federation, "member-3", None)
            kubectl(federation, "federation", "delete", "deployment", "refilled", check=False)


STATEFULSET = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ledger}
spec:
  replicas: 6
  serviceName: ledger
  selector: {matchLabels: {app: ledger}}
  template:
    metadata: {labels: {app: ledger}}
    spec: {containers: [{name: app, image: registry.k8s.io/pause:3.10}]}
"""


def test_a_statefulset_is_spread_and_rolls_out(serving: Serve, federation: Path,
                                               gateway: Path) -> None:
    """A StatefulSet of 6 over three members runs 2, 2 and 2; its plane status sums theirs,
    so `kubectl rollout status` in the federation context ends once every member is done,
    and `get` shows 6/6."""
    kubectl(gateway, "federation", "apply", "-f", "-", stdin=STATEFULSET)
    try:
        done = kubectl(gateway, "federation", "rollout", "status", "statefulset/ledger",
                       "--timeout=180s")
        # The apiserver defaults partition 0, so kubectl counts updated pods of the plane's
        # status against spec.replicas, as for a StatefulSet of one cluster.
        assert "roll out complete: 6 new pods have been updated" in done.stdout, done.stdout
        assert copy_replicas(federation, "statefulset", "ledger") == [2, 2, 2]
        assert [running_pods(federation, m, "ledger") for m in MEMBERS] == [2, 2, 2]
        ready = kubectl(gateway, "federation", "get", "statefulset", "ledger",
                        "-o", "jsonpath={.status.readyReplicas}/{.spec.replicas}").stdout
        assert ready == "6/6"
        listed = json.loads(kubectl(gateway, "federation", "get", "--raw",
                                    "/federator/v1/workloads/default/statefulsets/ledger").stdout)
        assert (listed["kind"], listed["replicas"], listed["readyReplicas"]) == (
            "StatefulSet", 6, 6)
        assert sorted(c["desired"] for c in listed["clusters"]) == [2, 2, 2]
    finally:
        kubectl(gateway, "federation", "delete", "statefulset", "ledger")
    for member in MEMBERS:
        eventually(lambda m=member: copy_of(federation, m, "statefulset", "ledger") is None,
                   f"ledger gone from {member}")


def test_a_daemonset_runs_on_every_node_of_every_member(serving: Serve, federation: Path,
                                                        gateway: Path) -> None:
    """A DaemonSet is copied whole (nothing to spread: one pod per node); its plane status
    sums the members' counters, so the federation's `rollout status` and READY count every
    node of every member."""
    daemonset = STATEFULSET.replace("kind: StatefulSet", "kind: DaemonSet").replace(
        "  replicas: 6\n  serviceName: ledger\n", "").replace("ledger", "agent")
    kubectl(gateway, "federation", "apply", "-f", "-", stdin=daemonset)
    try:
        nodes = [len(get_json(federation, m, "nodes")["items"]) for m in MEMBERS]
        done = kubectl(gateway, "federation", "rollout", "status", "daemonset/agent",
                       "--timeout=180s")
        assert "successfully rolled out" in done.stdout, done.stdout
        status = get_json(gateway, "federation", "daemonset", "agent")["status"]
        assert status["desiredNumberScheduled"] == status["numberReady"] == sum(nodes)
        assert [running_pods(federation, m, "agent") for m in MEMBERS] == nodes
        listed = json.loads(kubectl(gateway, "federation", "get", "--raw",
                                    "/federator/v1/workloads/default/daemonsets/agent").stdout)
        assert (listed["kind"], listed["replicas"], listed["readyReplicas"]) == (
            "DaemonSet", sum(nodes), sum(nodes))
    finally:
        kubectl(gateway, "federation", "delete", "daemonset", "agent")


def test_a_member_joined_without_rights_for_a_kind(serving: Serve, federation: Path) -> None:
    """A member joined by an older federator, whose rights lack a kind propagated since:
    that kind fails there and says so; everything else still reaches the member."""
    role = get_json(federation, "member-3", "clusterrole", "federator-member")
    # Its rights as an older join gave them: every core kind, apps kinds but StatefulSets.
    verbs = ["get", "list", "watch", "create", "update", "patch", "delete"]
    rules = [rule for rule in role["rules"] if rule["resources"] != ["*"]] + [
        {"apiGroups": [""], "resources": ["*"], "verbs": verbs},
        {"apiGroups": ["apps"], "resources": ["deployments", "replicasets", "daemonsets"],
         "verbs": verbs}]
    kubectl(federation, "member-3", "patch", "clusterrole", "federator-member",
            "--type=merge", "-p", json.dumps({"rules": rules}))
    assert serving.stop() == 0
    serving.restart()
    try:
        kubectl(federation, "federation", "apply", "-f", "-",
                stdin=STATEFULSET.replace("ledger", "older"))
        kubectl(federation, "federation", "create", "configmap", "older-config",
                "--from-literal=a=1")
        eventually(lambda: copy_of(federation, "member-3", "configmap", "older-config"),
                   "the ConfigMap reaches member-3 all the same")
        failed = eventually(lambda: [e for e in events(federation, "older",
                                                       "PropagationFailed")
                                     if "member-3" in e["message"]],
                            "the StatefulSet's failure in member-3 reported")
        assert "forbidden" in failed[0]["message"]
        assert copy_of(federation, "member-1", "statefulset", "older") is not None
    finally:
        kubectl(federation, "member-3", "patch", "clusterrole", "federator-member",
                "--type=merge", "-p", json.dumps({"rules": role["rules"]}))
    eventually(lambda: copy_of(federation, "member-3", "statefulset", "older"),
               "the StatefulSet in member-3 once it may be written", attempts=600)
    kubectl(federation, "federation", "delete", "statefulset", "older")
    kubectl(federation, "federation", "delete", "configmap", "older-config")


CARRIER = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: carried
  annotations: {"federator.io/clusters": member-2}
data: {a: "1"}
---
apiVersion: v1
kind: Secret
metadata:
  name: carried-secret
  annotations: {"federator.io/clusters": member-2}
stringData: {b: "2"}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: carrier
  annotations: {"federator.io/clusters": member-1}
spec:
  replicas: 1
  selector: {matchLabels: {app: carrier}}
  template:
    metadata: {labels: {app: carrier}}
    spec:
      containers:
      - name: app
        image: registry.k8s.io/pause:3.10
        envFrom: [{configMapRef: {name: carried}}]
      volumes: [{name: s, secret: {secretName: carried-secret}}]
"""


def test_what_a_workload_uses_follows_it(serving: Serve, federation: Path) -> None:
    """A Deployment placed on member-1 takes the ConfigMap and Secret its pods use there,
    although their own placement says member-2; an object that opts out stays where it is
    placed, and when the Deployment goes, so do the copies it needed."""
    def where(kind: str, name: str) -> list[str]:
        return [m for m in MEMBERS if copy_of(federation, m, kind, name) is not None]

    apply(federation, CARRIER)
    try:
        for kind, name in (("configmap", "carried"), ("secret", "carried-secret")):
            eventually(lambda k=kind, n=name: where(k, n) == ["member-1", "member-2"],
                       f"{name} in member-1 (needed) and member-2 (placed)")
        kubectl(federation, "federation", "rollout", "status", "deployment/carrier",
                "--timeout=120s")
        kubectl(federation, "federation", "annotate", "configmap", "carried",
                "federator.io/follow-workloads=false")
        eventually(lambda: where("configmap", "carried") == ["member-2"],
                   "the opted-out ConfigMap only where it is placed")
        kubectl(federation, "federation", "delete", "deployment", "carrier")
        eventually(lambda: where("secret", "carried-secret") == ["member-2"],
                   "the Secret leaves member-1 with the Deployment")
    finally:
        kubectl(federation, "federation", "delete", "deployment,configmap,secret",
                "carrier", "carried", "carried-secret", "--ignore-not-found")


SCHEDULED = """
apiVersion: v1
kind: ServiceAccount
metadata:
  name: nightly-account
  annotations: {"federator.io/clusters": member-2}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: nightly-claim
  annotations: {"federator.io/clusters": member-2}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Mi}}
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
  annotations: {"federator.io/clusters": member-3}
spec:
  schedule: "0 3 * * *"
  suspend: true
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          serviceAccountName: nightly-account
          containers: [{name: app, image: registry.k8s.io/pause:3.10}]
          volumes: [{name: data, persistentVolumeClaim: {claimName: nightly-claim}}]
"""


def test_a_cronjob_is_propagated_and_takes_its_account_and_claim(serving: Serve,
                                                                  federation: Path) -> None:
    """A CronJob (suspended: it never runs here) placed on member-3 reaches it, with the
    ServiceAccount and the PersistentVolumeClaim its job's pods name, although their own
    placement says member-2; when the CronJob goes, they leave member-3."""
    def where(kind: str, name: str) -> list[str]:
        return [m for m in MEMBERS if copy_of(federation, m, kind, name) is not None]

    apply(federation, SCHEDULED)
    try:
        copy = eventually(lambda: copy_of(federation, "member-3", "cronjob", "nightly"),
                          "the CronJob in member-3")
        assert copy["spec"]["schedule"] == "0 3 * * *" and copy["spec"]["suspend"] is True
        assert where("cronjob", "nightly") == ["member-3"]
        for kind, name in (("serviceaccount", "nightly-account"), ("pvc", "nightly-claim")):
            eventually(lambda k=kind, n=name: where(k, n) == ["member-2", "member-3"],
                       f"{name} in member-3 (needed) and member-2 (placed)")
        kubectl(federation, "federation", "delete", "cronjob", "nightly")
        for kind, name in (("serviceaccount", "nightly-account"), ("pvc", "nightly-claim")):
            eventually(lambda k=kind, n=name: where(k, n) == ["member-2"],
                       f"{name} leaves member-3 with the CronJob")
    finally:
        kubectl(federation, "federation", "delete", "cronjob,serviceaccount,pvc", "nightly",
                "nightly-account", "nightly-claim", "--ignore-not-found")


def test_helm_release_records_stay_in_the_plane(serving: Serve, federation: Path) -> None:
    """A Helm release installed through the federation is the federation's: its release
    Secret (type helm.sh/release.v1) is not copied, while the release's objects are."""
    name = "sh.helm.release.v1.demo.v1"
    release = {"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
               "metadata": {"name": name, "labels": {"owner": "helm", "name": "demo"}},
               "data": {"release": "e30="}}
    kubectl(federation, "federation", "apply", "-f", "-", stdin=json.dumps(release))
    kubectl(federation, "federation", "create", "configmap", "demo-config",
            "--from-literal=a=1")
    try:
        for member in MEMBERS:
            eventually(lambda m=member: copy_of(federation, m, "configmap", "demo-config"),
                       f"the release's ConfigMap in {member}")
        stored = get_json(federation, "federation", "secret", name)
        assert "federator.io/propagation" not in (stored["metadata"].get("finalizers") or [])
        assert [m for m in MEMBERS if copy_of(federation, m, "secret", name)] == []
    finally:
        kubectl(federation, "federation", "delete", "secret", name)
        kubectl(federation, "federation", "delete", "configmap", "demo-config")
