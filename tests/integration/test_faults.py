"""Faults on the lab: federator killed with deletions pending, objects deleted before their
finalizer landed, a hung member (SIGSTOP), the plane and its etcd away. What must hold: a
restart converges with nothing left behind, and what is slow or dead delays only what
depends on it."""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import requests

from federator.domain.sharding import shard_of
from tests.integration.conftest import (
    DEPLOYMENT,
    GATEWAY_TOKENS,
    MEMBERS,
    ca_of,
    in_place_of,
    members_work,
    write_contexts,
)
from tests.kube import eventually, get_json, kubectl
from tests.serving import Serve

pytestmark = pytest.mark.integration
MANAGED = "federator.io/managed-by=federation"


def managed(kubeconfig: Path, context: str, resource: str, namespace: str) -> list[str]:
    """Names of federator's copies of `resource` in one member's namespace."""
    found = get_json(kubeconfig, context, resource, "-n", namespace, "-l", MANAGED)
    return sorted(item["metadata"]["name"] for item in found["items"])


def plane_names(kubeconfig: Path, resource: str, namespace: str) -> list[str]:
    found = get_json(kubeconfig, "federation", resource, "-n", namespace)
    return sorted(item["metadata"]["name"] for item in found["items"])


def configmaps(names: list[str], namespace: str) -> str:
    """A List of ConfigMaps, as `kubectl apply -f -` takes it."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "namespace": namespace},
         "data": {"a": "1"}} for n in names]})


def copies_everywhere(kubeconfig: Path, resource: str, namespace: str,
                      names: list[str]) -> bool:
    return all(set(names) <= set(managed(kubeconfig, m, resource, namespace))
               for m in MEMBERS)


def test_deletions_while_federator_is_down_leave_nothing(serving: Serve,
                                                         federation: Path) -> None:
    """Deleted while serve is down (their finalizer holds them), or deleted after their
    finalizer was taken off (as when serve dies before it lands): after a restart no member
    keeps a copy, and the Deployment's pods go with it."""
    namespace = "faults-delete"
    kubectl(federation, "federation", "create", "namespace", namespace)
    held = [f"held-{i}" for i in range(8)]
    early = [f"early-{i}" for i in range(4)]
    for name in held + early:
        kubectl(federation, "federation", "-n", namespace, "create", "configmap", name,
                "--from-literal=a=1")
    kubectl(federation, "federation", "-n", namespace, "apply", "-f", "-",
            stdin=DEPLOYMENT.format(name="held-web", replicas=3))
    eventually(lambda: copies_everywhere(federation, "configmaps", namespace, held + early),
               "every ConfigMap copied to every member", attempts=600)
    eventually(lambda: copies_everywhere(federation, "deployments", namespace, ["held-web"]),
               "the Deployment copied to every member", attempts=600)
    serving.kill()
    try:
        kubectl(federation, "federation", "-n", namespace, "delete",
                *(f"configmap/{n}" for n in held), "deployment/held-web", "--wait=false")
        for name in early:
            kubectl(federation, "federation", "-n", namespace, "patch", "configmap", name,
                    "--type=merge", "-p", '{"metadata": {"finalizers": null}}')
            kubectl(federation, "federation", "-n", namespace, "delete", "configmap", name)
        # Held by the finalizer while nobody serves it; the early ones are gone already.
        assert plane_names(federation, "configmaps", namespace) == sorted(held)
    finally:
        serving.restart()
    eventually(lambda: plane_names(federation, "configmaps", namespace) == [],
               "the held ConfigMaps deleted in the plane", attempts=600)
    for member in MEMBERS:
        eventually(lambda m=member: managed(federation, m, "configmaps", namespace) == []
                   and managed(federation, m, "deployments", namespace) == [],
                   f"no copy left in {member}", attempts=600)
        eventually(lambda m=member: get_json(federation, m, "pods", "-n", namespace,
                                             "-l", "app=held-web")["items"] == [],
                   f"no pod of the deleted Deployment in {member}", attempts=600)
    log = serving.log.read_text()
    assert "copy of a deleted plane object removed" in log
    kubectl(federation, "federation", "delete", "namespace", namespace, "--wait=false")


def test_a_finalizer_never_lifts_before_the_copies_are_listed(serving: Serve,
                                                              federation: Path) -> None:
    """Deleted while serve is down: the restarted serve decides each deletion only after it
    has listed every member's copies (it logged the deletion before the listing once, saw
    no copy and left them all)."""
    namespace = "faults-order"
    kubectl(federation, "federation", "create", "namespace", namespace)
    names = [f"order-{i}" for i in range(20)]
    kubectl(federation, "federation", "apply", "-f", "-", stdin=configmaps(names, namespace))
    eventually(lambda: copies_everywhere(federation, "configmaps", namespace, names),
               "every ConfigMap copied", attempts=600)
    serving.kill()
    start = len(serving.log.read_text())
    try:
        kubectl(federation, "federation", "-n", namespace, "delete", "configmap", *names,
                "--wait=false")
    finally:
        serving.restart()
    for member in MEMBERS:
        eventually(lambda m=member: managed(federation, m, "configmaps", namespace) == [],
                   f"every copy deleted in {member}", attempts=600)
    lines = [json.loads(line) for line in serving.log.read_text()[start:].splitlines()
             if line.startswith("{")]
    listed = {line["cluster"]: i for i, line in enumerate(lines)
              if line.get("event") == "member copies listed" and line.get("kind") == "ConfigMap"}
    deleted = [i for i, line in enumerate(lines) if line.get("event") == "member copies deleted"]
    assert set(listed) == set(MEMBERS) and deleted
    assert min(deleted) > max(listed.values())
    kubectl(federation, "federation", "delete", "namespace", namespace, "--wait=false")


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def test_a_hung_member_delays_only_its_own_copies(serving: Serve, federation: Path, lab: Any,
                                                  tmp_path: Path) -> None:
    """member-1's apiserver frozen (SIGSTOP): it accepts connections and answers nothing. A
    serve of its own with one worker, and probes that never give up on member-1 (so that it
    stays Ready and is written to): each object's other members are done with at once, while
    member-1's write goes on alone. With a write waiting for every member, the 12 objects
    below would take 12 client timeouts (120 s)."""
    namespace = "faults-hung"
    kubectl(federation, "federation", "create", "namespace", namespace)
    kubectl(federation, "federation", "-n", namespace, "apply", "-f", "-",
            stdin=DEPLOYMENT.format(name="hung-web", replicas=3))
    eventually(lambda: copies_everywhere(federation, "deployments", namespace, ["hung-web"]),
               "the Deployment in every member", attempts=600)
    with in_place_of(serving, federation, "hung-test", tmp_path / "serve.log",
                     {"FEDERATOR_PROPAGATION__WORKERS": "1",
                      "FEDERATOR_PROBE__FAILURE_THRESHOLD": "100000",
                      "FEDERATOR_DNS__ENABLED": "false",
                      "FEDERATOR_GATEWAY__TOKEN_FILE":
                          serving.env["FEDERATOR_GATEWAY__TOKEN_FILE"]}) as alone:
        contexts = tmp_path / "kubeconfig"
        write_contexts(federation, alone, contexts)
        names = [f"hung-{i}" for i in range(12)]
        eventually(lambda: alone.metric("federator_leader") == 1, "the test's serve leads",
                   attempts=300)
        lab.pause_component("member-1/kube-apiserver")
        try:
            for name in names:
                kubectl(federation, "federation", "-n", namespace, "create", "configmap", name,
                        "--from-literal=a=1")
            for member in ("member-2", "member-3"):
                eventually(lambda m=member: set(names) <= set(managed(
                    federation, m, "configmaps", namespace)),
                    f"every ConfigMap in {member} while member-1 hangs", attempts=600)
            # Not after member-1's writes gave up: each waits for its 10 s client timeout,
            # and with one worker waiting for them, each object would come only after the
            # previous object's write to member-1 had ended (11 of them by the 12th).
            ended = [e for e in events_of(alone.log.read_text(), 0)
                     if e["event"] == "slow write ended" and e.get("cluster") == "member-1"]
            assert len(ended) < len(names) - 1, ended
            # A list across members answers without the hung one after member_timeout, and
            # says so; so does a watch.
            across = kubectl(contexts, "federation", "get", "pods", "-n", namespace)
            assert "cluster member-1 left out: no answer within 5s" in across.stderr
            assert "member-2" in across.stdout and "member-1" not in across.stdout
            # A watch across members starts without the hung one, and says so.
            watcher = subprocess.Popen(
                ["kubectl", f"--kubeconfig={contexts}", "--context=federation", "get", "pods",
                 "-n", namespace, "-w"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
            assert watcher.stdout is not None and watcher.stderr is not None
            rows: queue.Queue[str] = queue.Queue()
            warnings: queue.Queue[str] = queue.Queue()
            threading.Thread(target=_lines, args=(watcher.stdout, rows), daemon=True).start()
            threading.Thread(target=_lines, args=(watcher.stderr, warnings),
                             daemon=True).start()
            try:
                said: list[str] = []

                def warned() -> bool:
                    while not warnings.empty():
                        said.append(warnings.get())
                    return any("member-1 left out of the watch" in line for line in said)

                eventually(warned, "a Warning that member-1 is left out of the watch")
                assert watcher.poll() is None, said  # still watching the others
                listed: list[str] = []
                while not rows.empty():
                    listed.append(rows.get())
                assert any("member-2" in row for row in listed), listed
                assert not any("member-1" in row for row in listed[1:]), listed
            finally:
                watcher.kill()
                watcher.wait()
                watcher.stdout.close()
                watcher.stderr.close()
            # A request for the hung member itself is a Status, not a hang. (One request:
            # kubectl's discovery would ask the hung member several times, each waiting out
            # the timeout; and its --raw drops the context's /clusters/member-1 path.)
            ca = tmp_path / "ca.pem"
            ca.write_text(ca_of(contexts))
            direct = requests.get(
                f"https://127.0.0.1:{alone.gateway_port}/clusters/member-1"
                "/api/v1/namespaces/default/configmaps",
                headers={"Authorization": f"Bearer {next(iter(GATEWAY_TOKENS))}"},
                verify=str(ca), timeout=60)
            status = direct.json()
            assert (direct.status_code, status["kind"], status["reason"]) == (
                503, "Status", "ServiceUnavailable"), status
            # Given up after the gateway's request timeout (10 s), which it names.
            assert "did not answer within 10s" in status["message"], status
        finally:
            lab.pause_component("member-1/kube-apiserver", resume=True)
        eventually(lambda: set(names) <= set(managed(federation, "member-1", "configmaps",
                                                     namespace)),
                   "every ConfigMap in member-1 once it answers again", attempts=600)
    kubectl(federation, "federation", "delete", "namespace", namespace, "--wait=false")
    # Its pods gone from the members: later tests count the room left on their nodes.
    eventually(lambda: not any(get_json(federation, m, "pods", "-n", namespace)["items"]
                               for m in MEMBERS), "hung-web's pods gone", attempts=600)


def events_of(log: str, start: int) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log[start:].splitlines() if line.startswith("{")]


def test_a_replica_outlives_a_plane_and_an_etcd_outage(serving: Serve, federation: Path,
                                                       gateway: Path, lab: Any,
                                                       lab_spec: Any, tmp_path: Path) -> None:
    """The plane's apiserver away for 20 s, then etcd (everything) away: serve stays up,
    says in /readyz that the plane is away, answers fan-out reads from the members
    meanwhile, and leads and propagates again once the plane is back."""
    start = len(serving.log.read_text())
    plane_watches = (f'federator_watches_open{{server="https://127.0.0.1:'
                     f'{lab_spec.ports("plane").apiserver}"}}')
    for component in ("plane/kube-apiserver", "etcd"):
        watching = serving.metric(plane_watches)
        assert watching, "serve watches the plane"
        patient = None
        if component == "etcd":  # a standby replica whose probes wait 6 s
            patient = Serve(federation, "patient", tmp_path / "patient.log",
                            {"FEDERATOR_PROBE__TIMEOUT": "6", "FEDERATOR_DNS__ENABLED": "false"})
            eventually(lambda p=patient: all(
                p.metric(f'federator_cluster_probes_total{{cluster="{member}",result="ok"}}')
                for member in MEMBERS), "the patient replica probes every member")
        lab.stop_component(component)
        try:
            eventually(lambda: serving.get("/readyz")[0] == 503, "/readyz says the plane is away")
            _, text = serving.get("/readyz")
            assert "plane not ready" in text and "answer from what they hold" in text
            assert serving.get("/healthz")[0] == 200
            if component == "plane/kube-apiserver":
                # Fan-out reads need no plane: every member's nodes, through the gateway.
                nodes = json.loads(kubectl(gateway, "federation", "get", "--raw",
                                           "/api/v1/nodes").stdout)
                assert {n["metadata"]["annotations"]["federator.io/cluster"]
                        for n in nodes["items"]} == set(MEMBERS)
                # What needs the plane says so, as a Status.
                refused = kubectl(gateway, "federation", "get", "--raw",
                                  "/federator/v1/clusters", check=False)
                assert refused.returncode != 0 and "ServiceUnavailable" in refused.stderr
            # The outage lasts until serve has given up its lease and shards (their renew
            # deadline passed) and, without etcd, until the members' probes have failed.
            outage = len(serving.log.read_text())

            def gave_up(s: Serve = serving, since: int = outage) -> bool:
                said = {e["event"] for e in events_of(s.log.read_text(), since)}
                return {"lost leadership: the leader's work stopped; campaigning again",
                        "shards lost: not renewed in time; their work stopped"} <= said

            eventually(gave_up, "serve gives up its lease and shards", attempts=600)
            if patient is not None:
                # The members' /readyz answer 500 once their etcd checks time out (2 s + 1 s):
                # NotReady to a probe that waits longer, Unreachable to serve's 2 s.
                def probes(replica: Serve, result: str, member: str) -> float:
                    return replica.metric(f'federator_cluster_probes_total{{cluster='
                                          f'"{member}",result="{result}"}}') or 0

                for member in MEMBERS:
                    eventually(lambda m=member, p=patient: probes(p, "NotReady", m) >= 3,
                               f"3 NotReady probes of {member} by the patient replica",
                               attempts=600)
                    eventually(lambda m=member: probes(serving, "Unreachable", m) >= 3,
                               f"3 Unreachable probes of {member} by serve", attempts=600)
                assert patient.stop() == 0
            assert serving.process.poll() is None, "serve gave up"
        finally:
            if patient is not None and patient.process.poll() is None:
                patient.stop()
            lab.up(lab_spec)
        eventually(lambda: serving.get("/readyz")[0] == 200, "ready again", attempts=600)
        # Ready means watching the plane again (not only that the plane answers): what is
        # written now is heard at once.
        assert (serving.metric(plane_watches) or 0) >= watching
        name = f"after-{component.replace('/', '-')}"
        kubectl(federation, "federation", "create", "configmap", name, "--from-literal=a=1")
        for member in MEMBERS:
            eventually(lambda m=member, n=name: n in managed(federation, m, "configmaps",
                                                             "default"),
                       f"{name} reaches {member}", attempts=600)
        kubectl(federation, "federation", "delete", "configmap", name)
    members_work(federation)
    said = [e["event"] for e in events_of(serving.log.read_text(), start)]
    lost = said.index("lost leadership: the leader's work stopped; campaigning again")
    assert "became leader" in said[lost:]
    dropped = said.index("shards lost: not renewed in time; their work stopped")
    assert "shards taken" in said[dropped:]


def test_sigterm_ends_serve_while_a_member_is_down(serving: Serve, federation: Path, lab: Any,
                                                   lab_spec: Any) -> None:
    lab.stop_component("member-3/kube-apiserver")
    try:
        kubectl(federation, "federation", "wait", "cluster/member-3", "--timeout=60s",
                "--for=jsonpath={.status.conditions[0].status}=False")
        assert serving.stop() == 0  # ended by itself, not killed after the 30 s grace
        said = [e["event"] for e in events_of(serving.log.read_text(), 0)]
        assert "stopped" in said and "lease not released" not in said
        assert "shards not given back" not in said
        # Handed over at once, not left to run out: the leader's lease and every shard's
        # are given up (a successor takes them without waiting).
        leader = get_json(federation, "federation", "lease", "-n", "federation-system",
                          "federator")
        assert not leader["spec"].get("holderIdentity"), leader["spec"]
        assert set(_holders(federation).values()) == {""}, _holders(federation)
    finally:
        lab.up(lab_spec)
        serving.restart()
    kubectl(federation, "federation", "wait", "cluster/member-3", "--timeout=120s",
            "--for=jsonpath={.status.conditions[0].status}=True")


def test_killed_in_a_burst_of_creates_and_deletes(serving: Serve, federation: Path) -> None:
    """SIGKILL while 60 ConfigMaps are being created, half of them deleted while serve is
    down (some before their finalizer landed): after a restart every member holds exactly
    the other half."""
    namespace = "faults-burst"
    kubectl(federation, "federation", "create", "namespace", namespace)
    names = [f"burst-{i:02d}" for i in range(60)]
    writer = subprocess.Popen(["kubectl", f"--kubeconfig={federation}", "--context=federation",
                               "apply", "-f", "-"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL)
    assert writer.stdin is not None
    writer.stdin.write(configmaps(names, namespace).encode())
    writer.stdin.close()
    eventually(lambda: managed(federation, "member-1", "configmaps", namespace),
               "the first copies", attempts=600)
    serving.kill()
    try:
        assert writer.wait(timeout=300) == 0
        gone = names[::2]
        kubectl(federation, "federation", "-n", namespace, "delete",
                *(f"configmap/{n}" for n in gone), "--wait=false")
    finally:
        serving.restart()
    kept = sorted(set(names) - set(gone))
    for member in MEMBERS:
        eventually(lambda m=member: managed(federation, m, "configmaps", namespace) == kept,
                   f"exactly the 30 kept ConfigMaps in {member}", attempts=900)
    # Each kept copy's creation announced once, whether the killed serve wrote it (and died
    # before its event was posted) or the restarted one did.
    uids = {item["metadata"]["uid"]: item["metadata"]["name"] for item in get_json(
        federation, "federation", "configmaps", "-n", namespace)["items"]
        if item["metadata"]["name"] in kept}

    def announced() -> dict[tuple[str, str], int]:
        counted: dict[tuple[str, str], int] = {}
        for event in get_json(federation, "federation", "events", "-n", namespace)["items"]:
            uid = event["involvedObject"].get("uid")
            if (event["reason"] != "CreatedInCluster" or uid not in uids
                    or event["source"].get("component") != "federator"):
                continue
            named = event["metadata"]["annotations"]["federator.io/clusters"]
            for cluster in named.split(","):
                key = (uids[uid], cluster)
                counted[key] = counted.get(key, 0) + (event.get("count") or 1)
        return counted

    every = {(name, member) for name in kept for member in MEMBERS}
    counted = eventually(lambda: set(announced()) == every and announced(),
                         "a CreatedInCluster event for every kept copy", attempts=600)
    assert {key: n for key, n in counted.items() if n != 1} == {}
    kubectl(federation, "federation", "delete", "namespace", namespace, "--wait=false")


def _watch_events(kubeconfig: Path, resource: str, namespace: str) -> subprocess.Popen[str]:
    """`kubectl get --watch` of a resource, each change a line of JSON."""
    return subprocess.Popen(
        ["kubectl", f"--kubeconfig={kubeconfig}", "--context=federation", "-n", namespace,
         "get", resource, "--watch-only", "--output-watch-events", "-o",
         "jsonpath={.type} {.object.metadata.name} {.object.metadata.resourceVersion} "
         "{.object.metadata.annotations.federator\\.io/cluster-status}{\"\\n\"}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


MARKER = "watch-marker"


def _poke(kubeconfig: Path, namespace: str, *others: str) -> None:
    """A change every watcher of the tests below shows: the ConfigMap MARKER (made on first
    use) and `others` (TYPE/name in the plane) get a new annotation."""
    kubectl(kubeconfig, "federation", "-n", namespace, "apply", "-f", "-",
            stdin=configmaps([MARKER], namespace))
    kubectl(kubeconfig, "federation", "-n", namespace, "annotate", "--overwrite",
            f"configmap/{MARKER}", *others, f"federator.test/poke={time.monotonic_ns()}")


@contextlib.contextmanager
def _collected(watchers: dict[str, subprocess.Popen[str]],
               poke: Callable[[], None]) -> Iterator[dict[str, list[str]]]:
    """The lines each watcher prints, gathered by a thread each, once every watch is open
    (`poke` makes a change each one shows; a watch that is not open yet misses it, so it is
    made again at every poll until each has shown a line); the watchers are stopped when
    the block ends."""
    lines: dict[str, list[str]] = {name: [] for name in watchers}
    readers = []
    for name, watcher in watchers.items():
        assert watcher.stdout is not None
        readers.append(threading.Thread(
            target=lambda out=watcher.stdout, into=lines[name]: into.extend(
                iter(out.readline, "")), daemon=True))
        readers[-1].start()
    try:
        def opened() -> bool:
            poke()
            return all(lines.values())

        eventually(opened, "every watch open: each shows a change made after it started",
                   attempts=600)
        yield lines
    finally:
        for watcher in watchers.values():
            watcher.terminate()
            watcher.wait(timeout=30)
        for reader in readers:
            reader.join(timeout=30)
        for watcher in watchers.values():
            if watcher.stdout is not None:
                watcher.stdout.close()


def _flushed(lines: list[str], poke: Callable[[], None]) -> None:
    """Every change made before now is in `lines`: a watch shows changes in order, so once
    it shows the MARKER changed after now, it has shown everything before."""
    seen = sum(MARKER in line for line in lines)
    poke()
    eventually(lambda: sum(MARKER in line for line in lines) > seen,
               "the watch shows the marker's newest change", attempts=600)


def _changes(lines: list[str]) -> list[tuple[str, int, str]]:
    """(name, resourceVersion, cluster-status) of each change a watch printed."""
    found = []
    for line in lines:
        parts = line.rstrip("\n").split(" ", 3)
        if len(parts) >= 3 and parts[2].isdigit():
            found.append((parts[1], int(parts[2]), parts[3] if len(parts) > 3 else ""))
    return found


def test_a_failover_is_decided_before_the_backlog(serving: Serve, federation: Path,
                                                  lab: Any, lab_spec: Any) -> None:
    """member-1 stops: its Deployment's replicas move and no ConfigMap is touched (nothing
    about them depends on readiness). 100 ConfigMaps created meanwhile wait for member-1;
    when it is back the Deployment (urgent: its replicas move back) is decided and written
    before any of them is looked at, as the plane's resourceVersions show. serve logs what
    each change of readiness moved and how long it took."""
    namespace = "faults-urgent"
    kubectl(federation, "federation", "create", "namespace", namespace)
    before = [f"before-{i:03d}" for i in range(50)]
    during = [f"during-{i:03d}" for i in range(100)]
    kubectl(federation, "federation", "apply", "-f", "-", stdin=configmaps(before, namespace))
    kubectl(federation, "federation", "-n", namespace, "apply", "-f", "-",
            stdin=DEPLOYMENT.format(name="urgent", replicas=6))
    eventually(lambda: copies_everywhere(federation, "configmaps", namespace, before),
               "the ConfigMaps in every member", attempts=600)
    kubectl(federation, "federation", "-n", namespace, "rollout", "status",
            "deployment/urgent", "--timeout=180s")
    start = len(serving.log.read_text())
    with _collected({r: _watch_events(federation, r, namespace)
                     for r in ("deployments", "configmaps")},
                    lambda: _poke(federation, namespace, "deployment/urgent")) as lines:
        lab.stop_component("member-1/kube-apiserver")
        try:
            kubectl(federation, "federation", "wait", "cluster/member-1", "--timeout=60s",
                    "--for=jsonpath={.status.conditions[0].status}=False")
            eventually(lambda: any("cluster not ready" in status for name, _, status
                                   in _changes(lines["deployments"])),
                       "the Deployment's replicas moved off member-1")
            kubectl(federation, "federation", "apply", "-f", "-",
                    stdin=configmaps(during, namespace))
            eventually(lambda: {n for n, _, status in _changes(lines["configmaps"])
                                if "cluster not ready" in status} >= set(during),
                       "the new ConfigMaps wait for member-1", attempts=600)
            _flushed(lines["configmaps"], lambda: _poke(federation, namespace))
        finally:
            returned = len(lines["configmaps"])  # what comes after is member-1's return
            lab.up(lab_spec)
        eventually(lambda: copies_everywhere(federation, "configmaps", namespace,
                                             before + during),
                   "every ConfigMap in every member", attempts=900)
    # Not Ready: not one ConfigMap that was there already changed.
    assert not [n for n, _, _ in _changes(lines["configmaps"]) if n in before]
    # Ready again: the Deployment's new split (its cluster-status without member-1's error)
    # was written before any ConfigMap's wait was cleared.
    back = min(version for _, version, status in _changes(lines["deployments"])
               if status and "cluster not ready" not in status
               and version > max(v for _, v, s in _changes(lines["deployments"])
                                 if "cluster not ready" in s))
    cleared = [version for name, version, status in _changes(lines["configmaps"][returned:])
               if "cluster not ready" not in status and name in during]
    assert cleared and back < min(cleared), (back, sorted(cleared)[:3])
    moved = [e for e in events_of(serving.log.read_text(), start)
             if e["event"] == "workloads decided again after clusters changed"]
    assert [e["cause"] for e in moved][:2] == ["cluster member-1 not Ready",
                                               "cluster member-1 Ready"], moved
    assert all(e["workloads"] >= 1 and e["seconds"] >= 0 for e in moved), moved
    # Deleted with 150 objects in it: gone everywhere, and not made again in a member by a
    # write for one of its objects.
    kubectl(federation, "federation", "delete", "namespace", namespace, "--timeout=180s")
    def holding() -> list[str]:
        return [m for m in MEMBERS if kubectl(federation, m, "get", "namespace", namespace,
                                              check=False).returncode == 0]

    eventually(lambda: not holding(), f"{namespace} gone from every member", attempts=600)
    # Past the point where a late write would make it again: a ConfigMap written after the
    # namespace went has reached every member (and the namespace is still gone).
    kubectl(federation, "federation", "create", "configmap", "urgent-after",
            "--from-literal=a=1")
    eventually(lambda: copies_everywhere(federation, "configmaps", "default",
                                         ["urgent-after"]), "a later ConfigMap everywhere")
    assert not holding()
    kubectl(federation, "federation", "delete", "configmap", "urgent-after")


def _member_watch(kubeconfig: Path, member: str) -> subprocess.Popen[str]:
    """Every change of federator's ConfigMap copies in a member, a line `TYPE ns/name`."""
    return subprocess.Popen(
        ["kubectl", f"--kubeconfig={kubeconfig}", f"--context={member}", "get", "configmaps",
         "-A", "-l", MANAGED, "--watch-only", "--output-watch-events", "-o",
         "jsonpath={.type} {.object.metadata.namespace}/{.object.metadata.name}{\"\\n\"}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _holders(kubeconfig: Path) -> dict[int, str]:
    """Shard -> the replica holding it, from the Leases of the session's group."""
    leases = get_json(kubeconfig, "federation", "leases", "-n", "federation-system", "-l",
                      "federator.io/lease-group=federator")
    prefix = "federator-shard-"
    return {int(lease["metadata"]["name"].removeprefix(prefix)):
            lease["spec"].get("holderIdentity") or ""
            for lease in leases["items"] if lease["metadata"]["name"].startswith(prefix)}


def test_two_replicas_share_the_shards_and_one_takes_over_a_killed_ones(
        serving: Serve, federation: Path, tmp_path: Path) -> None:
    """A second replica takes half the shards (one Lease each); it is SIGKILLed in the middle
    of a burst of 240 ConfigMaps over 8 namespaces (one per shard, so that both replicas
    work): the session's replica takes its shards over once their Leases run out, every
    ConfigMap reaches every member, and none is created twice or deleted on the way (each
    member's watch of the copies says ADDED once per ConfigMap, DELETED never)."""
    shards = 8
    namespaces: dict[int, str] = {}
    for n in range(1000):
        namespaces.setdefault(shard_of(f"shards-{n}", shards), f"shards-{n}")
        if len(namespaces) == shards:
            break
    other = Serve(federation, "other", tmp_path / "other.log",
                  {"FEDERATOR_DNS__ENABLED": "false"})
    killed = False
    try:
        eventually(lambda: (serving.metric("federator_shards_held"),
                            other.metric("federator_shards_held")) == (4, 4),
                   "each replica holds half the shards", attempts=300)
        holders = _holders(federation)
        assert sorted(holders.values()) == ["other"] * 4 + ["session"] * 4, holders
        assert other.get("/readyz") == (200, "ok (standby, 4/8 shards)")
        for namespace in namespaces.values():
            kubectl(federation, "federation", "create", "namespace", namespace)
        poke = functools.partial(_poke, federation, "default")
        with _collected({m: _member_watch(federation, m) for m in MEMBERS}, poke) as lines:
            names = {ns: [f"burst-{i:02d}" for i in range(30)] for ns in namespaces.values()}
            writer = subprocess.Popen(["kubectl", f"--kubeconfig={federation}",
                                       "--context=federation", "apply", "-f", "-"],
                                      stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
            assert writer.stdin is not None
            each = {ns: json.loads(configmaps(listed, ns))["items"] for ns, listed in names.items()}
            writer.stdin.write(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
                each[ns][i] for i in range(30) for ns in each]}).encode())  # namespaces in turn
            writer.stdin.close()
            theirs = {namespaces[s] for s, holder in holders.items() if holder == "other"}
            eventually(lambda: any(line.split(" ")[1].split("/")[0] in theirs
                                   for line in lines["member-1"] if " " in line),
                       "the other replica's first copies", attempts=600)
            reconciled = other.metric("federator_reconciles_total")
            other.kill()
            killed = True
            took = time.monotonic()
            assert writer.wait(timeout=300) == 0
            eventually(lambda: serving.metric("federator_shards_held") == shards,
                       "the survivor holds every shard", attempts=600)
            print(f"shards taken over {time.monotonic() - took:.1f} s after the SIGKILL; the "
                  f"killed replica had reconciled {reconciled:.0f} objects")
            assert reconciled is not None and reconciled > 0
            assert set(_holders(federation).values()) == {"session"}
            for namespace, listed in names.items():
                eventually(lambda ns=namespace, want=listed: copies_everywhere(
                    federation, "configmaps", ns, want),
                    f"every ConfigMap of {namespace} in every member", attempts=600)
            for member in MEMBERS:  # whatever would still delete or create shows by then
                _flushed(lines[member], poke)
    finally:
        if not killed:
            other.stop()
        kubectl(federation, "federation", "delete", "configmap", MARKER, "--ignore-not-found")
    for member, said in lines.items():
        changes = [line.split() for line in said if line.strip() and MARKER not in line]
        added = collections.Counter(name for kind, name in changes if kind == "ADDED")
        assert set(added) == {f"{ns}/{n}" for ns, listed in names.items() for n in listed}, \
            member
        assert set(added.values()) == {1}, (member, [n for n, c in added.items() if c > 1])
        assert not [name for kind, name in changes if kind == "DELETED"], member
    for namespace in namespaces.values():
        kubectl(federation, "federation", "delete", "namespace", namespace, "--wait=false")
