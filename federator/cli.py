"""The `federator` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from federator import config
from federator.clusters import host
from federator.clusters.join import (
    JoinError,
    JoinRequest,
    get_cluster,
    join,
    joined_context,
    unjoin,
)
from federator.clusters.plane import Federation, InitError, init
from federator.domain.naming import dns_label_problem, parse_label
from federator.gateway.certificates import gateway_ca
from federator.kube.client import KubeClient, KubeError
from federator.kube.kubeconfig import (
    CredentialsError,
    alias_context,
    default_kubeconfig,
    load_credentials,
    write_context,
)
from federator.kube.resources import CLUSTERS, path
from federator.lab.errors import LabError
from federator.lab.kind import KindLab, docker_engine_answers
from federator.lab.process import ProcessLab
from federator.lab.spec import DEFAULT_BASE_PORT, DEFAULT_K8S_VERSION, LabSpec, default_members
from federator.lab.toolchain import Toolchain
from federator.pki import PKI, issue
from federator.serve import serve


class UsageError(Exception):
    """Bad input on the command line; the message says what to write instead."""


def default_lab_dir() -> Path:
    explicit = os.environ.get("FEDERATOR_LAB_DIR")
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME")
    return (Path(state) if state else Path.home() / ".local" / "state") / "federator" / "lab"


def _capacity(text: str) -> tuple[str, int]:
    name, sep, pods = text.partition("=")
    if not sep or not pods.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: write it as CLUSTER=PODS, e.g. member-2=2")
    return name, int(pods)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="federator", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, default=None,
                        help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    commands = parser.add_subparsers(dest="command", required=True)
    init_cmd = commands.add_parser("init", help="install the federation API in the plane")
    init_cmd.add_argument("--plane-context", default="plane",
                          help="kubeconfig context of the plane's apiserver (default: plane)")
    init_cmd.add_argument("--federation-name", default="federation",
                          help="name of the federation (default: federation)")
    init_cmd.add_argument("--dns-zone-name", default=None,
                          help="DNS domain of federated Services, e.g. example.com")
    init_cmd.add_argument("--host-cluster-context", default=None,
                          help="run the plane and federator in this cluster (deploy/host/)")
    init_cmd.add_argument("--host-namespace", default="federation-system")
    init_cmd.add_argument("--image", default=None, help="federator's container image")
    init_cmd.add_argument("--api-server-service-type", default="LoadBalancer",
                          choices=["LoadBalancer", "NodePort", "ClusterIP"])
    init_cmd.add_argument("--api-server-advertise-address", default=None,
                          help="address by which the plane's apiserver is reached")
    init_cmd.add_argument("--dry-run", action="store_true",
                          help="with --host-cluster-context: only validate, server-side")
    join_cmd = commands.add_parser("join", help="join the cluster of a kubeconfig context")
    join_cmd.add_argument("context", help="kubeconfig context of the member")
    join_cmd.add_argument("--cluster-name", default=None, help="default: the context's name")
    join_cmd.add_argument("--region", default=None)
    join_cmd.add_argument("--zone", default=None)
    join_cmd.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    unjoin_cmd = commands.add_parser("unjoin", help="remove a member from the federation")
    unjoin_cmd.add_argument("name", help="the Cluster's name")
    unjoin_cmd.add_argument("--delete-resources", action="store_true",
                            help="delete what federator put in the member (default: keep it)")
    unjoin_cmd.add_argument("--context", default=None,
                            help="an admin kubeconfig context of the member, to clean it up "
                                 "(default: the context it was joined from)")
    unjoin_cmd.add_argument("--force", action="store_true",
                            help="remove the Cluster without cleaning up the member")
    serve_cmd = commands.add_parser("serve", help="run the controllers, health and metrics")
    serve_cmd.add_argument("--config", type=Path, default=None,
                           help="settings file (see config/federator.yaml)")
    serve_cmd.add_argument("--plane-context", default=None)
    serve_cmd.add_argument("--http-port", type=int, default=None)
    serve_cmd.add_argument("--gateway-port", type=int, default=None)
    serve_cmd.add_argument("--identity", default=None, help="name of this replica")
    serve_cmd.add_argument("--log-format", choices=["json", "console"], default=None)
    config_cmd = commands.add_parser(
        "kubeconfig", help="write kubectl contexts for the gateway: `federation` and "
                           "`federation-<cluster>` for each member")
    config_cmd.add_argument("--server", default="https://127.0.0.1:8443",
                            help="the gateway's URL (default: https://127.0.0.1:8443)")
    config_cmd.add_argument("--user", default="federation-admin",
                            help="user named in a client certificate signed by the gateway "
                                 "CA (default: federation-admin)")
    config_cmd.add_argument("--group", action="append", default=None,
                            help="a group of that user, repeatable (default: system:masters "
                                 "for federation-admin, none otherwise)")
    config_cmd.add_argument("--token", default=None,
                            help="use this bearer token (from the gateway's token file) "
                                 "instead of a certificate")
    config_cmd.add_argument("--output", type=Path, default=None,
                            help="kubeconfig to write the contexts to (default: --kubeconfig)")
    config_cmd.add_argument("--context-name", default="federation",
                            help="name of the federation's context (default: federation)")
    for command in (join_cmd, unjoin_cmd, config_cmd):
        command.add_argument("--federation-context", default="federation",
                             help="kubeconfig context of the federation (default: federation)")
    lab = commands.add_parser("lab", help="a local lab: a federation plane and member clusters")
    lab.add_argument("--dir", type=Path, default=None,
                     help="the lab's directory (default: $FEDERATOR_LAB_DIR or "
                          "~/.local/state/federator/lab)")
    verbs = lab.add_subparsers(dest="verb", required=True)
    up = verbs.add_parser("up", help="start the lab (again); starts only what is not running")
    up.add_argument("--config", type=Path, default=None,
                    help="a lab described in YAML (see config/lab.yaml); other flags ignored")
    up.add_argument("--clusters", type=int, default=3, help="member clusters (default 3)")
    up.add_argument("--provider", choices=None, default=None,
                    help="process or kind (default: kind if a Docker engine answers, "
                         "else process)")
    up.add_argument("--k8s-version", default=DEFAULT_K8S_VERSION,
                    help=f"a Kubernetes 1.33 patch release (default {DEFAULT_K8S_VERSION})")
    up.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT,
                    help=f"first of the loopback ports the lab uses (default {DEFAULT_BASE_PORT})")
    up.add_argument("--nodes", type=int, default=2, help="kwok nodes per member (default 2)")
    up.add_argument("--pod-capacity", type=int, default=220,
                    help="pods each member can hold (default 220)")
    up.add_argument("--capacity", type=_capacity, action="append", default=[],
                    metavar="CLUSTER=PODS", help="pod capacity of one member, e.g. member-2=2")
    verbs.add_parser("down", help="stop every process of the lab and remove its directory")
    verbs.add_parser("status", help="the health of each component")
    verbs.add_parser("env", help="print `export KUBECONFIG=...` for the lab")
    stop = verbs.add_parser("stop", help="kill one component, as a crash would; `lab up` "
                                         "starts it again")
    stop.add_argument("component", help="e.g. member-1/kube-apiserver")
    pause = verbs.add_parser("pause", help="freeze one component (SIGSTOP), as a hung "
                                           "process; `lab resume` lets it go on")
    pause.add_argument("component", help="e.g. member-1/kube-apiserver")
    resume = verbs.add_parser("resume", help="let a paused component go on (SIGCONT)")
    resume.add_argument("component", help="e.g. member-1/kube-apiserver")
    build = verbs.add_parser("build", help="build (or find cached) Kubernetes binaries")
    build.add_argument("--k8s-version", default=DEFAULT_K8S_VERSION)
    return parser


def _spec_from_file(path: Path) -> LabSpec:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UsageError(f"--config: cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"--config: {path} is not YAML: {exc}") from exc
    try:
        return LabSpec.model_validate(data)
    except ValidationError as exc:
        raise UsageError(f"{path}: {_validation_message(exc, by_path=True)}") from exc


def _spec(args: argparse.Namespace) -> LabSpec:
    if args.config is not None:
        return _spec_from_file(args.config)
    provider = args.provider
    if provider is None:
        provider = "kind" if docker_engine_answers() else "process"
    if provider not in ("process", "kind"):
        raise UsageError(f"unknown provider {provider!r}: use --provider process or "
                         "--provider kind")
    try:
        members = default_members(args.clusters, nodes=args.nodes,
                                  pod_capacity=args.pod_capacity,
                                  capacities=dict(args.capacity))
        return LabSpec(provider=provider, k8s_version=args.k8s_version,
                       base_port=args.base_port, members=members)
    except ValidationError as exc:
        raise UsageError(_validation_message(exc)) from exc
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _validation_message(exc: ValidationError, *, by_path: bool = False) -> str:
    """One line naming each bad field: as a flag, or (from a file) as its path in the file."""
    flags = {"k8s_version": "--k8s-version", "base_port": "--base-port",
             "nodes": "--nodes", "pod_capacity": "--pod-capacity/--capacity"}
    parts = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        if by_path:
            where = ".".join(str(p) for p in error["loc"]) or "the file"
        else:
            field = next((str(p) for p in reversed(error["loc"]) if isinstance(p, str)), "")
            where = flags.get(field, field or "input")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _bare_up(args: argparse.Namespace) -> bool:
    """Whether `lab up` was given no flag that shapes the lab (then a recorded lab's own
    spec is used: `lab up` after `lab stop` starts what was stopped)."""
    defaults = build_parser().parse_args(["lab", "up"])
    shaping = ("config", "clusters", "provider", "k8s_version", "base_port", "nodes",
               "pod_capacity", "capacity")
    return all(getattr(args, name) == getattr(defaults, name) for name in shaping)


def _recorded_spec(root: Path) -> LabSpec | None:
    try:
        return LabSpec.model_validate(json.loads((root / "state.json").read_text())["spec"])
    except (OSError, ValueError, KeyError, ValidationError):
        return None


def _recorded_provider(root: Path) -> str | None:
    try:
        return str(json.loads((root / "state.json").read_text())["spec"]["provider"])
    except (OSError, ValueError, KeyError):
        return None


def run_lab(args: argparse.Namespace) -> int:
    root: Path = args.dir or default_lab_dir()
    if args.verb == "build":
        binaries = Toolchain(args.k8s_version).ensure()
        for name, path in vars(binaries).items():
            print(f"{name.replace('_', '-'):<24} {path}")
        return 0
    if args.verb == "up":
        spec = _recorded_spec(root) if _bare_up(args) else None
        if spec is None:
            spec = _spec(args)
        ports = spec.all_ports()
        print(f"lab in {root}: {len(spec.members)} members, loopback ports "
              f"{min(ports)}-{max(ports)}", flush=True)
        if spec.provider == "kind":
            KindLab(root).up(spec)
        else:
            ProcessLab(root).up(spec)
        return 0
    provider = _recorded_provider(root)
    if provider is None:
        if args.verb == "down":
            print(f"no lab in {root}; nothing to stop")
            return 0
        raise UsageError(f"no lab in {root}: start one with `federator lab up`")
    if args.verb == "env":
        print(f"export KUBECONFIG={root / 'kubeconfig'}")
        return 0
    if provider == "kind":
        kind = KindLab(root)
        if args.verb == "down":
            kind.down()
            return 0
        if args.verb == "status":
            rows = kind.status()
            for cluster, healthy, detail in rows:
                print(f"{cluster:<20} {'healthy' if healthy else 'unhealthy':<10} {detail}")
            return 0 if all(h for _, h, _ in rows) else 1
        raise UsageError(f"`lab {args.verb}` is for process labs only")
    lab = ProcessLab(root)
    if args.verb == "down":
        lab.down()
        return 0
    if args.verb == "stop":
        lab.stop_component(args.component)
        print(f"stopped {args.component}; `federator lab up` starts it again")
        return 0
    if args.verb in ("pause", "resume"):
        lab.pause_component(args.component, resume=args.verb == "resume")
        print(f"paused {args.component}; `federator lab resume {args.component}` lets it go "
              "on" if args.verb == "pause" else f"resumed {args.component}")
        return 0
    statuses = lab.status()
    mib = 1024 * 1024
    print(f"{'COMPONENT':<34} {'PID':>7}  {'STATE':<8} {'RSS':>9}  HEALTH")
    for s in statuses:
        state = "running" if s.running else "stopped"
        health = "ok" if s.healthy else s.detail
        rss = f"{s.rss_bytes / mib:.0f} MiB" if s.running else "-"
        print(f"{s.name:<34} {s.pid or '-':>7}  {state:<8} {rss:>9}  {health}")
    total = sum(s.rss_bytes for s in statuses) / mib
    print(f"{'total':<34} {'':>7}  {'':<8} {f'{total:.0f} MiB':>9}")
    return 0 if all(s.healthy for s in statuses) else 1


def _serve_settings(args: argparse.Namespace) -> config.Settings:
    overrides: dict[str, Any] = {}
    if args.kubeconfig is not None:
        overrides["kubeconfig"] = args.kubeconfig
    if args.plane_context is not None:
        overrides["plane_context"] = args.plane_context
    if args.identity is not None:
        overrides["identity"] = args.identity
    if args.http_port is not None:
        overrides["http"] = {"port": args.http_port}
    if args.gateway_port is not None:
        overrides["gateway"] = {"port": args.gateway_port}
    if args.log_format is not None:
        overrides["log"] = {"format": args.log_format}
    try:
        return config.load(args.config, os.environ, overrides)
    except config.SettingsError as exc:
        raise UsageError(str(exc)) from exc


def _state_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME")
    return (Path(state) if state else Path.home() / ".local" / "state") / "federator"


async def _init_in_host(args: argparse.Namespace, kubeconfig: Path,
                        federation: Federation) -> list[str]:
    """The plane and federator as workloads of a host cluster, then `init` in that plane."""
    options = host.HostOptions(namespace=args.host_namespace,
                               service_type=args.api_server_service_type,
                               advertise_address=args.api_server_advertise_address,
                               **({"federator_image": args.image} if args.image else {}))
    pki = PKI(_state_dir() / "host" / args.host_cluster_context, ca_name="federation-ca")
    objects = host.load(options)
    secret = host.pki_secret(options, pki)
    host_client = await _client(kubeconfig, args.host_cluster_context)
    try:
        lines = await host.install(host_client, options, objects, secret, dry_run=args.dry_run)
        if args.dry_run:
            return lines
        server = await host.plane_endpoint(host_client, options)
    finally:
        await host_client.close()
    credentials = host.plane_credentials(server, pki)
    assert credentials.ca_pem and credentials.cert_pem and credentials.key_pem
    write_context(kubeconfig, "federation", server, credentials.ca_pem,
                  cert=credentials.cert_pem, key=credentials.key_pem)
    plane = KubeClient(credentials)
    try:
        lines += await init(plane, federation)
    finally:
        await plane.close()
    lines.append(f"context federation ({server}) written to {kubeconfig}")
    return lines


async def _client(kubeconfig: Path, context: str) -> KubeClient:
    return KubeClient(await load_credentials(kubeconfig, context))


async def _write_kubeconfig(args: argparse.Namespace, kubeconfig: Path) -> list[str]:
    server = args.server.rstrip("/")
    if not server.startswith("https://"):
        raise UsageError(f"--server: {args.server!r} must be an https:// URL of the gateway")
    if problem := dns_label_problem(args.context_name):
        raise UsageError(f"--context-name: {problem}")
    plane = await _client(kubeconfig, args.federation_context)
    try:
        ca_cert, ca_key = await gateway_ca(plane)
        clusters = sorted(c["metadata"]["name"]
                          for c in (await plane.get(path(CLUSTERS))).get("items") or [])
    finally:
        await plane.close()
    if args.token is not None:
        credential: dict[str, Any] = {"token": args.token, "user": f"{args.context_name}-token"}
        who = "a token"
    else:
        groups = args.group if args.group is not None else (
            ["system:masters"] if args.user == "federation-admin" else [])
        cert, key = issue(ca_cert, ca_key, args.user, orgs=tuple(groups), server=False)
        credential = {"cert": cert, "key": key, "user": f"{args.context_name}-{args.user}"}
        who = f"user {args.user}" + (f" (groups {', '.join(groups)})" if groups else "")
    output: Path = args.output or kubeconfig
    write_context(output, args.context_name, server, ca_cert, **credential)
    for cluster in clusters:
        write_context(output, f"{args.context_name}-{cluster}", f"{server}/clusters/{cluster}",
                      ca_cert, **credential)
    contexts = [args.context_name, *(f"{args.context_name}-{c}" for c in clusters)]
    return [f"contexts {', '.join(contexts)} ({server}, as {who}) written to {output}"]


async def run_federation(args: argparse.Namespace) -> int:
    kubeconfig: Path = args.kubeconfig or default_kubeconfig()
    if args.command == "kubeconfig":
        lines = await _write_kubeconfig(args, kubeconfig)
    elif args.command == "init":
        for value, flag in ((args.federation_name, "--federation-name"),):
            if problem := dns_label_problem(value):
                raise UsageError(f"{flag}: {problem}")
        if args.dns_zone_name and not all(
                dns_label_problem(p) is None for p in args.dns_zone_name.rstrip(".").split(".")):
            raise UsageError(f"--dns-zone-name: {args.dns_zone_name!r} is not a DNS domain "
                             "such as example.com")
        federation = Federation(args.federation_name, args.dns_zone_name)
        if args.host_cluster_context:
            lines = await _init_in_host(args, kubeconfig, federation)
        else:
            plane = await _client(kubeconfig, args.plane_context)
            try:
                lines = await init(plane, federation)
            finally:
                await plane.close()
            changed = alias_context(kubeconfig, "federation", args.plane_context)
            lines.append(f"context federation {'written to' if changed else 'unchanged in'} "
                         f"{kubeconfig}")
    elif args.command == "unjoin" and (problem := dns_label_problem(args.name)):
        raise UsageError(f"NAME: {problem}")
    elif args.command == "join":
        name = args.cluster_name or args.context
        if problem := dns_label_problem(name):
            raise UsageError(f"--cluster-name: {problem}")
        try:
            labels = dict(parse_label(text) for text in args.label)
        except ValueError as exc:
            raise UsageError(f"--label: {exc}") from exc
        plane = await _client(kubeconfig, args.federation_context)
        member = await _client(kubeconfig, args.context)
        try:
            lines = await join(plane, member, JoinRequest(args.context, name, args.region,
                                                          args.zone, labels))
        finally:
            await plane.close()
            await member.close()
    else:
        plane = await _client(kubeconfig, args.federation_context)
        member = None
        try:
            context = args.context or joined_context(await get_cluster(plane, args.name))
            if not args.force:
                if context is None:
                    raise UsageError(f"name an admin context of {args.name} with --context, "
                                     "or remove it without clean-up with --force")
                member = await _client(kubeconfig, context)
            lines = await unjoin(plane, member, args.name,
                                 delete_resources=args.delete_resources)
        finally:
            await plane.close()
            if member is not None:
                await member.close()
    for line in lines:
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "lab":
            return run_lab(args)
        if args.command in ("init", "join", "unjoin", "kubeconfig"):
            return asyncio.run(run_federation(args))
        if args.command == "serve":
            return asyncio.run(serve(_serve_settings(args)))
    except (LabError, UsageError, JoinError, InitError, CredentialsError,
            host.HostError) as exc:
        print(f"federator: error: {exc}", file=sys.stderr)
        return 1
    except KubeError as exc:
        print(f"federator: error: the apiserver answered {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("federator: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `federator lab status | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # the last resort: one line, never a traceback
        print(f"federator: internal error: {exc.__class__.__name__}: {exc} (please report it)",
              file=sys.stderr)
        return 70
    return 2
