"""The lab that integration tests run on: a plane and 3 members, up once per test session."""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from federator.lab.process import ProcessLab
from federator.lab.spec import LabSpec, default_members
from tests.bind import KEY_NAME, Bind
from tests.cli import federator
from tests.kube import get_json, kubectl
from tests.serving import Serve


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test that reaches for the lab must be marked integration: `make unit` (-m 'not
    integration') promises to need no lab, and `make integration` runs only marked tests."""
    if item.get_closest_marker("integration") is None:
        pytest.fail(f"{item.nodeid} is a lab test (tests/integration) but is not marked "
                    "integration: add pytestmark = pytest.mark.integration", pytrace=False)


# Away from the default lab's ports, so tests and a user's lab can run side by side; each
# pytest-xdist worker (gw0, gw1, ...) has a lab of its own, 2000 ports further on.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or "0")
TEST_BASE_PORT = int(os.environ.get("FEDERATOR_TEST_BASE_PORT", "27400")) + 2000 * WORKER


@pytest.fixture(scope="session")
def lab_spec() -> LabSpec:
    return LabSpec(base_port=TEST_BASE_PORT, members=default_members(3))


@pytest.fixture(scope="session")
def lab(lab_spec: LabSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessLab]:
    root = tmp_path_factory.mktemp("lab")
    process_lab = ProcessLab(root, progress=lambda line: print(f"[lab] {line}"))
    try:
        process_lab.up(lab_spec)
        yield process_lab
    finally:
        process_lab.down()


@pytest.fixture(scope="session")
def kubeconfig(lab: ProcessLab) -> Path:
    return lab.paths.kubeconfig


MEMBERS = ("member-1", "member-2", "member-3")
EVENT_BACKLOG = 50
NOBODY_TOKEN = "token-of-nobody"  # a user the gateway knows, bound to nothing anywhere
GATEWAY_TOKENS = {"token-of-an-operator": ("operator", ("system:masters",)),
                  NOBODY_TOKEN: ("nobody", ())}


@pytest.fixture(scope="session")
def federation(kubeconfig: Path) -> Iterator[Path]:
    """The lab's plane initialised (`federator init`) and every member joined."""
    done = federator("--kubeconfig", str(kubeconfig), "init", "--dns-zone-name", DNS_ZONE)
    assert done.returncode == 0, done.stderr
    for member in MEMBERS:
        done = federator("--kubeconfig", str(kubeconfig), "join", member)
        assert done.returncode == 0, done.stderr
    yield kubeconfig


DNS_ZONE = "example.com"
THEIR_RECORD = ("mail.example.com", "192.0.2.25")  # someone else's, in BIND's zone


@pytest.fixture(scope="session")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bind]:
    """A real BIND 9 holding the federation's zone, open to federator's signed updates."""
    server = Bind(tmp_path_factory.mktemp("bind"), DNS_ZONE,
                  records=f"{THEIR_RECORD[0].removesuffix('.' + DNS_ZONE)} IN A "
                          f"{THEIR_RECORD[1]}\n")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def serving(federation: Path, bind: Bind,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """One `federator serve` that leads and keeps the registry running for the session."""
    # Members count as full after 5 s of unschedulable pods, and an unreachable member holds
    # a deletion for 10 s (60 s each by default), so that those tests do not wait minutes.
    # The gateway also takes the bearer tokens of GATEWAY_TOKENS. Member events: a backlog of
    # EVENT_BACKLOG per member at most, so that a storm the test makes is past it. DNS: the
    # embedded server (Serve picks its port) and updates to the session's BIND.
    directory = tmp_path_factory.mktemp("serve")
    secret = directory / "tsig.secret"
    secret.write_text(bind.secret)
    tokens = directory / "tokens.csv"
    tokens.write_text("".join(f'{token},{user},uid-{user},"{",".join(groups)}"\n'
                              for token, (user, groups) in GATEWAY_TOKENS.items()))
    serve = Serve(federation, "session", directory / "serve.log",
                  {"FEDERATOR_PROPAGATION__UNSCHEDULABLE_AFTER": "5",
                   "FEDERATOR_PROPAGATION__DELETION_TIMEOUT": "10",
                   "FEDERATOR_GATEWAY__TOKEN_FILE": str(tokens),
                   "FEDERATOR_EVENTS__RATE": "20", "FEDERATOR_EVENTS__BURST": "20",
                   "FEDERATOR_EVENTS__MAX_PENDING": str(EVENT_BACKLOG),
                   "FEDERATOR_DNS__RFC2136__ENABLED": "true",
                   "FEDERATOR_DNS__RFC2136__PORT": str(bind.port),
                   "FEDERATOR_DNS__RFC2136__KEY_NAME": KEY_NAME,
                   "FEDERATOR_DNS__RFC2136__KEY_SECRET_FILE": str(secret)})
    yield serve
    assert serve.stop() == 0


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: app, image: registry.k8s.io/pause:3.10}}]}}
"""


def write_contexts(federation: Path, serving: Serve, output: Path, *extra: str) -> None:
    done = federator("--kubeconfig", str(federation), "kubeconfig", "--server",
                     f"https://127.0.0.1:{serving.gateway_port}", "--output", str(output),
                     *extra)
    assert done.returncode == 0, done.stderr
    assert "federation-member-1" in done.stdout


@pytest.fixture(scope="session")
def gateway(serving: Serve, federation: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig whose `federation` and `federation-<member>` contexts go through the
    gateway as federation-admin (system:masters)."""
    output = tmp_path_factory.mktemp("gateway") / "kubeconfig"
    write_contexts(federation, serving, output)
    return output


def ca_of(kubeconfig: Path) -> str:
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = next(c for c in config["clusters"] if c["name"] == "federation")["cluster"]
    return base64.b64decode(cluster["certificate-authority-data"]).decode()


def remove_forced_leftovers(kubeconfig: Path, member: str) -> None:
    """What `unjoin --force` leaves in a member (federator's identity there), removed by
    hand as its message says, so that the member can be joined again."""
    kubectl(kubeconfig, member, "delete", "clusterrolebinding,clusterrole", "federator-member",
            "--ignore-not-found")
    kubectl(kubeconfig, member, "delete", "namespace", "federation-system", "--wait=true",
            "--timeout=120s", "--ignore-not-found")


def members_work(kubeconfig: Path) -> None:
    """Each member runs a Deployment of its own again (its controllers, scheduler and kwok
    answer): a test that stopped part of the lab waits for this before it ends, so that the
    next test does not wait for the members' controllers to come back (a Deployment made
    after the etcd outage took 100 s to get its pods)."""
    for member in MEMBERS:
        kubectl(kubeconfig, member, "-n", "kube-public", "apply", "-f", "-",
                stdin=DEPLOYMENT.format(name="members-work", replicas=1))
    for member in MEMBERS:
        kubectl(kubeconfig, member, "-n", "kube-public", "rollout", "status",
                "deployment/members-work", "--timeout=300s")
        kubectl(kubeconfig, member, "-n", "kube-public", "delete", "deployment",
                "members-work", "--wait=false")


def rejoin_missing(kubeconfig: Path) -> list[str]:
    """Every member of MEMBERS joined again if a test took it away (whatever it left in the
    member removed first) and Ready; the members that had to be joined."""
    joined = {c["metadata"]["name"]
              for c in get_json(kubeconfig, "plane", "clusters.federator.io")["items"]}
    missing = [m for m in MEMBERS if m not in joined]
    for member in missing:
        remove_forced_leftovers(kubeconfig, member)
        done = federator("--kubeconfig", str(kubeconfig), "join", member)
        assert done.returncode == 0, done.stderr
    for member in MEMBERS:
        kubectl(kubeconfig, "plane", "wait", f"cluster/{member}", "--for=condition=Ready",
                "--timeout=120s")
    return missing


@contextlib.contextmanager
def readyz_forbidden(kubeconfig: Path, member: str) -> Iterator[None]:
    """Every user may read /readyz through a member's `system:discovery` and
    `system:public-info-viewer` bindings: while this runs their subjects are gone, so
    federator's probe of the member is refused (Forbidden) while the member still answers
    everything else federator does. Put back at the end."""
    bindings = [f"clusterrolebinding/system:{name}" for name in ("discovery",
                                                                  "public-info-viewer")]
    subjects = {binding: json.loads(kubectl(kubeconfig, member, "get", binding,
                                            "-o", "jsonpath={.subjects}").stdout)
                for binding in bindings}
    assert all(subjects.values()), "the member's bindings have subjects to take away"
    try:
        for binding in bindings:
            kubectl(kubeconfig, member, "patch", binding, "--type=json",
                    "-p", '[{"op": "remove", "path": "/subjects"}]')
        yield
    finally:
        for binding, were in subjects.items():
            kubectl(kubeconfig, member, "patch", binding, "--type=json", "-p",
                    json.dumps([{"op": "add", "path": "/subjects", "value": were}]))


@contextlib.contextmanager
def in_place_of(serving: Serve, federation: Path, identity: str, log: Path,
                env: dict[str, str], config: Path | None = None) -> Iterator[Serve]:
    """A serve with settings of its own instead of the session's, which stops so that this
    one leads; the session's is back at the end, whatever happened."""
    assert serving.stop() == 0
    try:
        replica = Serve(federation, identity, log, env, config)
        try:
            yield replica
        finally:
            assert replica.stop() == 0
    finally:
        serving.restart()
