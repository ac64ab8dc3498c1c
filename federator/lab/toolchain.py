"""Upstream Kubernetes, etcd and kwok binaries, built from the Go module proxy and cached.

Each component is built in a small outer Go module under the cache directory. For Kubernetes
that module requires `k8s.io/kubernetes` at the chosen release and replaces every
`k8s.io/<staging>` module with the matching `v0.<minor>.<patch>`; the list of staging modules is
read from that release's own go.mod, and etcd's version is the one that release requires.
Binaries land in `<cache>/bin/<component>-<version>/` with a stamp of the recipe, so a machine
that has them never builds again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from federator.lab.errors import LabError

KWOK_VERSION = "v0.7.0"
MIN_GO = (1, 24)
Progress = Callable[[str], None]
HEARTBEAT_SECONDS = 30.0


def echo(line: str) -> None:
    """The default progress sink: a line on stdout, flushed at once (CI logs are files)."""
    print(line, flush=True)


def _go_env() -> dict[str, str]:
    return {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}


def cache_dir() -> Path:
    """Where builds and binaries are kept: $FEDERATOR_CACHE, else $XDG_CACHE_HOME/federator."""
    explicit = os.environ.get("FEDERATOR_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "federator"


@dataclass(frozen=True)
class Binaries:
    """Paths of the programs a process lab runs."""

    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    etcd: Path
    kwok: Path


@dataclass(frozen=True)
class Recipe:
    """One outer Go module and the binaries built from it."""

    name: str  # e.g. "kubernetes-v1.33.13"
    go_mod: str
    packages: tuple[str, ...]
    ldflags: str
    renames: tuple[tuple[str, str], ...] = ()  # go names a binary after its package path

    @property
    def stamp(self) -> str:
        text = json.dumps([self.go_mod, self.packages, self.ldflags, self.renames])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_go_version(text: str) -> tuple[int, int] | None:
    """`go version go1.26.8 linux/amd64` -> (1, 26)."""
    match = re.search(r"go(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def staging_modules(kubernetes_go_mod: str) -> list[str]:
    """The `k8s.io/<staging>` modules that a Kubernetes go.mod replaces with ./staging paths."""
    found = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", kubernetes_go_mod, re.M)
    return sorted(set(found))


def required_version(go_mod: str, module: str) -> str | None:
    """The version a go.mod requires of `module`, if it requires it."""
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", go_mod, re.M)
    return match.group(1) if match else None


def version_ldflags(version: str) -> str:
    """-X flags that make the binaries report `version` (kubectl picks its own by it)."""
    major, minor, _ = version.removeprefix("v").split(".")
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion=v{version.removeprefix('v')}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


def kubernetes_recipe(version: str, kubernetes_go_mod: str) -> Recipe:
    """The outer module that builds kube-apiserver, -controller-manager and -scheduler."""
    v = version.removeprefix("v")
    staging_version = "v0." + v.split(".", 1)[1]
    replaces = "\n".join(
        f"\t{m} => {m} {staging_version}" for m in staging_modules(kubernetes_go_mod)
    )
    go_mod = (
        "module federator.invalid/build/kubernetes\n\ngo 1.24.0\n\ngodebug default=go1.24\n\n"
        f"require k8s.io/kubernetes v{v}\n\nreplace (\n{replaces}\n)\n"
    )
    packages = tuple(
        f"k8s.io/kubernetes/cmd/{c}"
        for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
    )
    return Recipe(f"kubernetes-v{v}", go_mod, packages, version_ldflags(v))


def etcd_recipe(version: str) -> Recipe:
    go_mod = (
        "module federator.invalid/build/etcd\n\ngo 1.24.0\n\n"
        f"require go.etcd.io/etcd/server/v3 {version}\n"
    )
    return Recipe(f"etcd-{version}", go_mod, ("go.etcd.io/etcd/server/v3",), "-s -w",
                  renames=(("server", "etcd"),))


def kwok_recipe(version: str = KWOK_VERSION) -> Recipe:
    go_mod = (
        "module federator.invalid/build/kwok\n\ngo 1.24.0\n\n"
        f"require sigs.k8s.io/kwok {version}\n"
    )
    return Recipe(f"kwok-{version}", go_mod, ("sigs.k8s.io/kwok/cmd/kwok",), "-s -w")


class Toolchain:
    """Finds or builds the binaries of one Kubernetes release."""

    def __init__(self, k8s_version: str, *, root: Path | None = None,
                 progress: Progress = echo) -> None:
        self.version = k8s_version.removeprefix("v")
        self.root = root or cache_dir()
        self.progress = progress
        self.go = os.environ.get("FEDERATOR_GO") or shutil.which("go")

    def bin_dir(self, recipe_name: str) -> Path:
        return self.root / "bin" / recipe_name

    def cached(self) -> Binaries | None:
        """The binaries if a previous build left them all, without asking Go anything."""
        index = self.root / "bin" / f"kubernetes-v{self.version}.json"
        if not index.exists():
            return None
        try:
            paths = json.loads(index.read_text())
            binaries = Binaries(**{k: Path(v) for k, v in paths.items()})
        except (ValueError, TypeError):
            return None
        if all(p.is_file() and os.access(p, os.X_OK) for p in vars(binaries).values()):
            return binaries
        return None

    def ensure(self) -> Binaries:
        """Return the binaries, building whatever the cache lacks."""
        found = self.cached()
        if found:
            return found
        self._check_go()
        k8s_mod = self._kubernetes_go_mod()
        etcd_version = required_version(k8s_mod, "go.etcd.io/etcd/client/v3") or "v3.5.21"
        recipes = [kubernetes_recipe(self.version, k8s_mod), etcd_recipe(etcd_version),
                   kwok_recipe()]
        for n, recipe in enumerate(recipes, 1):
            self._build(recipe, f"[{n}/{len(recipes)}]")
        k8s, etcd, kwok = (self.bin_dir(r.name) for r in recipes)
        binaries = Binaries(
            kube_apiserver=k8s / "kube-apiserver",
            kube_controller_manager=k8s / "kube-controller-manager",
            kube_scheduler=k8s / "kube-scheduler",
            etcd=etcd / "etcd",
            kwok=kwok / "kwok",
        )
        index = self.root / "bin" / f"kubernetes-v{self.version}.json"
        index.write_text(json.dumps({k: str(v) for k, v in vars(binaries).items()}, indent=1))
        return binaries

    def _check_go(self) -> None:
        if not self.go:
            raise LabError(
                "build",
                "the Go toolchain is not installed (no `go` on PATH): install Go "
                f"{MIN_GO[0]}.{MIN_GO[1]} or newer, or set FEDERATOR_GO to its `go` binary",
            )
        out = self._go(["version"], step="build").stdout
        found = parse_go_version(out)
        if found is None or found < MIN_GO:
            raise LabError(
                "build",
                f"{out.strip() or 'go'} is too old to build Kubernetes {self.version}: "
                f"install Go {MIN_GO[0]}.{MIN_GO[1]} or newer",
            )

    def _go(self, args: list[str], *, step: str, cwd: Path | None = None,
            log: Path | None = None) -> subprocess.CompletedProcess[str]:
        assert self.go is not None
        try:
            return subprocess.run([self.go, *args], cwd=cwd, env=_go_env(), capture_output=True,
                                  text=True, check=True)
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or exc.stdout or "").strip().splitlines()
            raise LabError(step, detail[-1] if detail else f"go {args[0]} failed", log) from exc

    def _kubernetes_go_mod(self) -> str:
        """Kubernetes' own go.mod, which also proves that the release exists."""
        module = f"k8s.io/kubernetes@v{self.version}"
        try:
            out = self._go(["mod", "download", "-json", module], step="resolve").stdout
        except LabError as exc:
            raise LabError(
                "resolve",
                f"Kubernetes {self.version} does not exist on the Go module proxy ({exc.message}); "
                "pick a released 1.33 patch such as 1.33.13",
            ) from exc
        info = json.loads(out)
        if "Error" in info:
            raise LabError("resolve", f"Kubernetes {self.version}: {info['Error']}")
        return Path(info["GoMod"]).read_text()

    def _build(self, recipe: Recipe, counter: str) -> None:
        out_dir = self.bin_dir(recipe.name)
        stamp_file = out_dir / ".stamp"
        if stamp_file.exists() and stamp_file.read_text() == recipe.stamp:
            self.progress(f"{counter} {recipe.name}: cached in {out_dir}")
            return
        work = self.root / "build" / recipe.name
        work.mkdir(parents=True, exist_ok=True)
        (work / "go.mod").write_text(recipe.go_mod)
        log = work / "build.log"
        tmp_out = out_dir.with_name(out_dir.name + ".tmp")
        shutil.rmtree(tmp_out, ignore_errors=True)
        tmp_out.mkdir(parents=True)
        self.progress(f"{counter} building {recipe.name} from the Go module proxy "
                      f"(a cold build takes many minutes; log: {log})")
        args = [self.go or "go", "build", "-trimpath", "-ldflags", recipe.ldflags,
                "-o", str(tmp_out) + "/", *recipe.packages]
        started = time.monotonic()
        with log.open("w") as sink:
            proc = subprocess.Popen(args, cwd=work, env=_go_env(), stdout=sink,
                                    stderr=subprocess.STDOUT)
            while True:
                try:
                    proc.wait(timeout=HEARTBEAT_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    self.progress(f"{counter}   still building {recipe.name} "
                                  f"({time.monotonic() - started:.0f} s)")
        if proc.returncode != 0:
            lines = log.read_text(errors="replace").strip().splitlines()
            raise LabError(f"build {recipe.name}",
                           lines[-1] if lines else f"go build exited {proc.returncode}", log)
        for built, wanted in recipe.renames:
            (tmp_out / built).rename(tmp_out / wanted)
        shutil.rmtree(out_dir, ignore_errors=True)
        tmp_out.rename(out_dir)
        stamp_file.write_text(recipe.stamp)
        self.progress(f"{counter} built {recipe.name} in {time.monotonic() - started:.0f} s")
