"""The `process` provider: a lab of real Kubernetes components run as local processes.

One etcd serves every cluster through its own `--etcd-prefix`; each member runs
kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake nodes whose pods become
Running and Ready); the plane runs kube-apiserver and a controller-manager with only the
namespace and garbage-collector controllers. Every PID is recorded in the lab's state file
so that `down` stops exactly what `up` started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import yaml
from pydantic import ValidationError

from federator.lab import layout, podlogs
from federator.lab.errors import LabError
from federator.lab.layout import Component, Health, LabPaths
from federator.lab.spec import PLANE, LabSpec
from federator.lab.toolchain import Binaries, Progress, Toolchain, echo
from federator.pki import PKI

START_TIMEOUT = 180.0
STOP_TIMEOUT = 5.0  # then SIGKILL: an apiserver may linger over its watches
POLL = 0.25


@dataclass(frozen=True)
class ProcessRecord:
    """A started process, identified by PID and kernel start time (PIDs are reused)."""

    pid: int
    start_ticks: int

    def alive(self) -> bool:
        ticks = _start_ticks(self.pid)
        return ticks is not None and ticks == self.start_ticks

    def exiting(self) -> bool:
        """Its main thread has exited but other threads have not yet: the process still holds
        its files and sockets (a Go program's main thread is a zombie first; its listening port
        is free only once every thread is gone)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
            threads = sum(1 for _ in Path(f"/proc/{self.pid}/task").iterdir())
        except OSError:
            return False
        fields = stat.rsplit(")", 1)[1].split()
        return fields[0] == "Z" and int(fields[19]) == self.start_ticks and threads > 1


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    running: bool
    healthy: bool
    detail: str
    log: Path
    rss_bytes: int  # resident memory; 0 when stopped


def _start_ticks(pid: int) -> int | None:
    """The start time of a live (not zombie) process, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def resident_bytes(pid: int) -> int:
    """Resident memory of a process (VmRSS), or 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _spawn(argv: tuple[str, ...], log: Path, env: dict[str, str] | None = None) -> int:
    """Start a component in a session of its own, its output appended to `log`. It outlives
    this process; no Popen object is kept, since nothing here waits for it but `_reap`."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(argv[0], list(argv), {**os.environ, **(env or {})},
                          file_actions=actions, setsid=True)


def _reap(pid: int) -> None:
    """Collect the exit status of a child of this process, so that it leaves no zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


class ProcessLab:
    """A lab in one directory. Methods are safe to repeat: `up` starts only what is missing."""

    def __init__(self, root: Path, *, progress: Progress = echo) -> None:
        self.paths = LabPaths(root)
        self.progress = progress
        self.pki = PKI(self.paths.pki)

    # state -------------------------------------------------------------------------------
    def load(self) -> tuple[LabSpec | None, dict[str, ProcessRecord]]:
        try:
            data = json.loads(self.paths.state.read_text())
        except FileNotFoundError:
            return None, {}
        except ValueError as exc:
            raise LabError("state", f"{self.paths.state} is damaged ({exc}); "
                           "stop the lab's processes by hand and remove the directory") from exc
        records = {name: ProcessRecord(**rec) for name, rec in data["processes"].items()}
        try:
            return LabSpec.model_validate(data["spec"]), records
        except ValidationError:
            # Recorded by another version of federator: its processes can still be stopped.
            return None, records

    def _save(self, spec: LabSpec, records: dict[str, ProcessRecord]) -> None:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        tmp = self.paths.state.with_suffix(".tmp")
        tmp.write_text(json.dumps({
            "spec": spec.model_dump(mode="json"),
            "processes": {n: {"pid": r.pid, "start_ticks": r.start_ticks}
                          for n, r in records.items()},
        }, indent=1))
        tmp.replace(self.paths.state)

    # up ----------------------------------------------------------------------------------
    def up(self, spec: LabSpec, *, binaries: Binaries | None = None) -> None:
        old_spec, records = self.load()
        live = {n: r for n, r in records.items() if r.alive()}
        if live and old_spec is not None and old_spec != spec:
            raise LabError("up", f"a different lab is running in {self.paths.root} "
                           f"({len(old_spec.members)} members, base port {old_spec.base_port}); "
                           "run `federator lab down` first")
        records = live
        if binaries is None:
            binaries = Toolchain(spec.k8s_version, progress=self.progress).ensure()
        self._prepare(spec)
        plan = layout.components(spec, self.paths, binaries)
        stale = layout.stale_clients(plan, set(records))
        if stale:
            self.progress(f"starting again what talks to a returning apiserver: "
                          f"{', '.join(stale)}")
            self._stop(stale, records)
            self._save(spec, records)
        started: list[str] = []
        try:
            for stage in sorted({c.stage for c in plan}):
                batch = [c for c in plan if c.stage == stage]
                self._start(spec, [c for c in batch if c.name not in records], records, started)
                self._wait_healthy(batch, records)
                if stage == 1:  # the apiservers answer: what kwok reads when it starts
                    self._define_pod_logs(spec)
                    self._free_node_leases(spec, records)
            self._add_nodes(spec)
        except BaseException:
            self._stop([n for n in reversed(started)], records)
            self._save(spec, records)
            raise
        self.progress(f"lab is up: {len(spec.members)} members and the plane; "
                      f"export KUBECONFIG={self.paths.kubeconfig}")

    def _prepare(self, spec: LabSpec) -> None:
        """Certificates, the etcd data directory and every kubeconfig."""
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        self.pki.ensure_ca()
        admin = self.pki.admin()
        pems = {"ca": self.pki.ca.cert.read_bytes(), "cert": admin.cert.read_bytes(),
                "key": admin.key.read_bytes()}
        servers = {}
        for index, cluster in enumerate(spec.cluster_names):
            self.pki.apiserver(cluster, layout.service_range(index)[1])
            self.pki.service_account_key(cluster)
            self.paths.work(cluster).mkdir(parents=True, exist_ok=True)
            if cluster != PLANE and spec.member(cluster).workloads:
                self._prepare_kubelets(spec, cluster)
            servers[cluster] = f"https://127.0.0.1:{spec.ports(cluster).apiserver}"
            own = layout.kubeconfig({cluster: servers[cluster]}, cluster, **pems)
            _write_private(layout.component_kubeconfig(self.paths, cluster), yaml.safe_dump(own))
        lab = layout.kubeconfig(servers, spec.members[0].name, **pems)
        existing = None
        if self.paths.kubeconfig.exists():
            existing = yaml.safe_load(self.paths.kubeconfig.read_text())
        merged = layout.merge_kubeconfig(existing, lab)
        _write_private(self.paths.kubeconfig, yaml.safe_dump(merged, sort_keys=False))

    def _prepare_kubelets(self, spec: LabSpec, cluster: str) -> None:
        """What a member's kwok serves: a serving pair for its nodes' addresses, its
        configuration, the log every container shows, the scratch directory exec runs in and
        the few tools it may run there."""
        self.pki.kubelet(cluster, layout.node_addresses(spec, cluster))
        config = "".join("---\n" + yaml.safe_dump(obj, sort_keys=False)
                         for obj in layout.kwok_objects(spec, self.paths, cluster))
        layout.kwok_config(self.paths, cluster).write_text(config)
        log = layout.container_log(self.paths, cluster)
        if not log.exists():
            log.write_text(layout.container_log_lines(cluster, time.time()))
        layout.exec_directory(self.paths, cluster).mkdir(exist_ok=True)
        tools = layout.exec_tools(self.paths)
        tools.mkdir(exist_ok=True)
        for name in layout.EXEC_TOOLS:
            found, link = shutil.which(name), tools / name
            if found is not None and not link.is_symlink():
                link.symlink_to(found)

    def _start(self, spec: LabSpec, batch: list[Component], records: dict[str, ProcessRecord],
               started: list[str]) -> None:
        for component in batch:
            for host in component.hosts:
                for port in component.ports:
                    if port_in_use(port, host):
                        raise LabError(
                            f"start {component.name}",
                            f"port {port} is already in use on {host} by another program; stop "
                            "it or choose other ports with `federator lab up --base-port N`",
                        )
        for component in batch:
            self.progress(f"starting {component.name}")
            pid = _spawn(component.argv, self.paths.log(component.name), dict(component.env))
            records[component.name] = ProcessRecord(pid, _start_ticks(pid) or 0)
            started.append(component.name)
            self._save(spec, records)

    def _wait_healthy(self, batch: list[Component], records: dict[str, ProcessRecord]) -> None:
        pending = {c.name: c for c in batch}
        errors: dict[str, str] = {}
        began = time.monotonic()
        while pending:
            for name, component in list(pending.items()):
                if not records[name].alive():
                    _reap(records[name].pid)
                    log = self.paths.log(name)
                    raise LabError(f"start {name}", f"exited: {_last_line(log)}", log)
                ok, detail = self.probe(component.health)
                if ok:
                    self.progress(f"{name} is healthy ({time.monotonic() - began:.1f} s)")
                    del pending[name]
                else:
                    errors[name] = detail
            if pending and time.monotonic() - began > START_TIMEOUT:
                name = next(iter(pending))
                raise LabError(f"start {name}", f"not healthy after {START_TIMEOUT:.0f} s "
                               f"({errors.get(name, 'no answer')})", self.paths.log(name))
            if pending:
                time.sleep(POLL)

    def probe(self, health: Health) -> tuple[bool, str]:
        context = None
        if health.tls:
            context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
            admin = self.pki.admin()
            context.load_cert_chain(str(admin.cert), str(admin.key))
        try:
            with urllib.request.urlopen(health.url, timeout=2, context=context) as response:  # noqa: S310
                return response.status == 200, f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            return False, f"HTTP {exc.code}"
        except (OSError, ssl.SSLError) as exc:
            return False, str(getattr(exc, "reason", exc))

    def kubectl(self, context: str, *args: str, stdin: str | None = None,
                step: str = "kubectl") -> str:
        argv = ["kubectl", f"--kubeconfig={self.paths.kubeconfig}", f"--context={context}", *args]
        try:
            done = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                                  check=False, timeout=120)
        except FileNotFoundError as exc:
            raise LabError(step, "kubectl is not on PATH: install kubectl 1.33") from exc
        if done.returncode != 0:
            raise LabError(step, f"kubectl {' '.join(args[:2])} in {context}: "
                           f"{done.stderr.strip().splitlines()[-1] if done.stderr else 'failed'}")
        return done.stdout

    def _define_pod_logs(self, spec: LabSpec) -> None:
        for member in spec.members:
            if member.workloads:
                self.kubectl(member.name, "apply", "-f", "-", stdin=json.dumps(podlogs.crd()),
                             step=f"kwok's Logs in {member.name}")
                self.kubectl(member.name, "wait", "--for=condition=Established",
                             "crd/logs.kwok.x-k8s.io", "--timeout=60s",
                             step=f"kwok's Logs in {member.name}")

    def _free_node_leases(self, spec: LabSpec, records: dict[str, ProcessRecord]) -> None:
        """The node Leases a kwok about to start again would wait for: each kwok holds them
        under an identity of its own, new in every process, so a restarted one would leave
        its pods unready until the last one's leases ran out (40 s)."""
        for member in spec.members:
            if member.workloads and f"{member.name}/kwok" not in records:
                self.kubectl(member.name, "-n", "kube-node-lease", "delete", "lease",
                             *layout.node_names(member),
                             "--ignore-not-found", "--wait=false",
                             step=f"node leases of {member.name}")

    def _add_nodes(self, spec: LabSpec) -> None:
        """Create each member's kwok nodes and wait until they are Ready and pods can be made."""
        for index, member in enumerate(spec.members, start=1):
            if member.workloads:
                manifest = {"apiVersion": "v1", "kind": "List",
                            "items": layout.nodes(member, index,
                                                  spec.ports(member.name).kwok)}
                self.kubectl(member.name, "apply", "-f", "-", stdin=json.dumps(manifest),
                             step=f"nodes of {member.name}")
        for member in spec.members:
            if member.workloads:
                self.kubectl(member.name, "wait", "--for=condition=Ready", "nodes", "--all",
                             "--timeout=120s", step=f"nodes of {member.name}")
            self._wait_for(partial(self._has_default_sa, member.name),
                           f"default ServiceAccount in {member.name}")
        self.progress("nodes are Ready in every member")

    def _has_default_sa(self, context: str) -> bool:
        try:
            self.kubectl(context, "get", "serviceaccount", "default", "-o", "name")
        except LabError:
            return False
        return True

    def _wait_for(self, check: Callable[[], bool], what: str) -> None:
        began = time.monotonic()
        while not check():
            if time.monotonic() - began > START_TIMEOUT:
                raise LabError("up", f"gave up waiting for {what} after {START_TIMEOUT:.0f} s")
            time.sleep(POLL * 2)

    # down, status, stop ------------------------------------------------------------------
    def down(self) -> None:
        spec, records = self.load()
        self._stop(list(reversed(list(records))), records)
        if spec is not None:
            self._save(spec, records)
        shutil.rmtree(self.paths.root, ignore_errors=True)
        self.progress(f"lab is down; removed {self.paths.root}")

    def stop_component(self, name: str) -> None:
        """Kill one component at once, as a crash would (for example
        `member-1/kube-apiserver`); `up` starts it again."""
        spec, records = self.load()
        if spec is None or name not in records:
            raise LabError("stop", f"no component {name!r} is recorded in {self.paths.root}")
        self._stop([name], records, sig=signal.SIGKILL)
        self._save(spec, records)

    def pause_component(self, name: str, *, resume: bool = False) -> None:
        """Freeze one component (SIGSTOP), as a hung process: it keeps its connections and
        answers nothing; `resume=True` (SIGCONT) lets it go on."""
        spec, records = self.load()
        record = records.get(name)
        if record is None or not record.alive():
            raise LabError("pause", f"no running component {name!r} in {self.paths.root}")
        os.kill(record.pid, signal.SIGCONT if resume else signal.SIGSTOP)
        if resume and spec is not None:
            # Its clients' watches timed out meanwhile and back off: started afresh, as
            # after a restart of it.
            plan = layout.components(spec, self.paths, _placeholder_binaries())
            stale = layout.stale_clients(plan, set(records) - {name})
            if stale:
                self._stop(stale, records)
                self._save(spec, records)
                self.up(spec)

    def _stop(self, names: list[str], records: dict[str, ProcessRecord],
              sig: signal.Signals = signal.SIGTERM) -> None:
        for name in names:
            record = records.get(name)
            if record is not None and record.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(record.pid, sig)
        deadline = time.monotonic() + STOP_TIMEOUT
        for name in names:
            record = records.get(name)
            if record is None:
                continue
            while record.alive() and time.monotonic() < deadline:
                _reap(record.pid)
                time.sleep(0.05)
            if record.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(record.pid, signal.SIGKILL)
                while record.alive():
                    _reap(record.pid)
                    time.sleep(0.05)
            lingering = time.monotonic() + STOP_TIMEOUT
            while record.exiting() and time.monotonic() < lingering:
                time.sleep(0.01)
            _reap(record.pid)
            del records[name]

    def status(self) -> list[ComponentStatus]:
        spec, records = self.load()
        if spec is None:
            return []
        result = []
        for component in layout.components(spec, self.paths, _placeholder_binaries()):
            record = records.get(component.name)
            running = record is not None and record.alive()
            healthy, detail = self.probe(component.health) if running else (False, "stopped")
            result.append(ComponentStatus(
                component.name, record.pid if record else None, running, healthy, detail,
                self.paths.log(component.name),
                resident_bytes(record.pid) if record and running else 0))
        return result


def _placeholder_binaries() -> Binaries:
    """Binaries for laying out a running lab where only names, ports and health matter."""
    return Binaries(*(Path(n) for n in ("kube-apiserver", "kube-controller-manager",
                                        "kube-scheduler", "etcd", "kwok")))


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)

