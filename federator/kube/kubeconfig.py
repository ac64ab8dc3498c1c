"""Credentials of one apiserver, held in memory, and how to read them from a kubeconfig."""

from __future__ import annotations

import atexit
import base64
import contextlib
import functools
import os
import shutil
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.config import ConfigException, load_kube_config


class CredentialsError(Exception):
    """A kubeconfig or context that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Credentials:
    """Where an apiserver is and how to prove who we are. Secrets never appear in repr()."""

    server: str
    ca_pem: bytes | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    cert_pem: bytes | None = field(default=None, repr=False)
    key_pem: bytes | None = field(default=None, repr=False)
    insecure: bool = False
    tls_server_name: str | None = None

    def ssl_context(self) -> ssl.SSLContext | bool:
        """An SSL context for aiohttp (True for plain HTTP's default)."""
        if not self.server.startswith("https"):
            return True
        context = ssl.create_default_context(
            cadata=self.ca_pem.decode() if self.ca_pem else None)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_pem and self.key_pem:
            # The ssl module loads client pairs only from files: a private directory that
            # lives for the length of this call.
            with tempfile.TemporaryDirectory(prefix="federator-") as tmp:
                cert, key = Path(tmp) / "c.pem", Path(tmp) / "k.pem"
                for path, data in ((cert, self.cert_pem), (key, self.key_pem)):
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(data)
                context.load_cert_chain(cert, key)
        return context


@functools.cache
def _private_dir() -> str:
    """Where kubernetes-asyncio may write the certificate data of a kubeconfig as files: one
    directory only this user can read, for the life of the process (the library keeps the
    names it wrote in a cache of its own), removed at exit."""
    directory = tempfile.mkdtemp(prefix="federator-kubeconfig-")
    atexit.register(shutil.rmtree, directory, True)
    return directory


def default_kubeconfig() -> Path:
    first = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(first) if first else Path.home() / ".kube" / "config"


def contexts_of(kubeconfig: Path) -> list[str]:
    try:
        data = yaml.safe_load(kubeconfig.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    return [c.get("name", "") for c in data.get("contexts") or []]


async def load_credentials(kubeconfig: Path, context: str) -> Credentials:
    """The credentials of one context, with exec plugins and token files resolved."""
    if not kubeconfig.exists():  # noqa: ASYNC240 (a small local file, read once)
        raise CredentialsError(f"kubeconfig {kubeconfig} does not exist: pass --kubeconfig or "
                               "set KUBECONFIG")
    known = contexts_of(kubeconfig)
    if context not in known:
        raise CredentialsError(f"context {context!r} is not in {kubeconfig}; its contexts: "
                               f"{', '.join(known) or 'none'}")
    config = Configuration()
    try:
        await load_kube_config(config_file=str(kubeconfig), context=context,
                               client_configuration=config, persist_config=False,
                               temp_file_path=_private_dir())
    except ConfigException as exc:
        raise CredentialsError(f"context {context!r} in {kubeconfig}: {exc}") from exc

    def read(path: str | None) -> bytes | None:
        if not path:
            return None
        with contextlib.suppress(OSError):
            return Path(path).read_bytes()
        raise CredentialsError(f"context {context!r}: cannot read {path}")

    bearer = config.api_key.get("BearerToken") or config.api_key.get("authorization")
    token = bearer.removeprefix("Bearer ").strip() if bearer else None
    return Credentials(
        server=str(config.host),
        ca_pem=read(config.ssl_ca_cert),
        token=token or None,
        cert_pem=read(config.cert_file),
        key_pem=read(config.key_file),
        insecure=not config.verify_ssl,
        tls_server_name=config.tls_server_name,
    )


def alias_context(kubeconfig: Path, alias: str, of: str) -> bool:
    """Make context `alias` use the cluster and user of context `of`. True if the file changed.
    Other entries of the file are kept as they are."""
    data = yaml.safe_load(kubeconfig.read_text()) or {}
    contexts = data.setdefault("contexts", [])
    source = next((c for c in contexts if c.get("name") == of), None)
    if source is None:
        raise CredentialsError(f"context {of!r} is not in {kubeconfig}")
    wanted = {"name": alias, "context": dict(source["context"])}
    existing = next((c for c in contexts if c.get("name") == alias), None)
    if existing == wanted:
        return False
    if existing is None:
        contexts.append(wanted)
    else:
        contexts[contexts.index(existing)] = wanted
    _write_yaml(kubeconfig, data)
    return True


def _write_yaml(kubeconfig: Path, data: dict[str, Any]) -> None:
    """Replace the file at once, readable by its owner only."""
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    tmp = kubeconfig.with_name(kubeconfig.name + ".federator.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(data, handle, default_flow_style=False, sort_keys=False)
    tmp.replace(kubeconfig)


SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def in_cluster_credentials() -> Credentials | None:
    """The pod's own service-account credentials, when running inside a cluster."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    token_file = SERVICE_ACCOUNT_DIR / "token"
    if not host or not token_file.exists():
        return None
    server_host = f"[{host}]" if ":" in host else host
    return Credentials(server=f"https://{server_host}:{port}",
                       ca_pem=(SERVICE_ACCOUNT_DIR / "ca.crt").read_bytes(),
                       token=token_file.read_text().strip())


def write_context(kubeconfig: Path, name: str, server: str, ca: bytes, *,
                  cert: bytes | None = None, key: bytes | None = None,
                  token: str | None = None, user: str | None = None) -> None:
    """Add or replace a cluster and a context called `name` and a user called `user` (or
    `name`), with embedded certificates or a token. Other entries of the file are kept."""
    data: dict[str, Any] = {}
    if kubeconfig.exists():
        data = yaml.safe_load(kubeconfig.read_text()) or {}
    user = user or name
    credential = ({"token": token} if token is not None else {
        "client-certificate-data": base64.b64encode(cert or b"").decode(),
        "client-key-data": base64.b64encode(key or b"").decode()})
    entries = {
        "clusters": {"name": name, "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca).decode()}},
        "users": {"name": user, "user": credential},
        "contexts": {"name": name, "context": {"cluster": name, "user": user}},
    }
    for section, entry in entries.items():
        kept = [e for e in data.get(section) or [] if e.get("name") != entry["name"]]
        data[section] = [*kept, entry]
    data.setdefault("apiVersion", "v1")
    data.setdefault("kind", "Config")
    _write_yaml(kubeconfig, data)


_INLINE_CLUSTER = frozenset({"server", "certificate-authority-data", "insecure-skip-tls-verify",
                             "tls-server-name", "extensions"})
_INLINE_USER = frozenset({"token", "client-certificate-data", "client-key-data", "extensions"})


def _entry(data: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    for entry in data.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(section[:-1])
            if isinstance(value, dict):
                return value
    raise CredentialsError(f"kubeconfig: {section} has no entry {name!r}")


def inline_credentials(text: str, context: str | None) -> Credentials:
    """The credentials of one context of kubeconfig text that carries them inline only (no
    exec plugins, auth providers or file paths: text from a remote caller must not run
    commands or read files here)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CredentialsError(f"kubeconfig: not YAML ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise CredentialsError("kubeconfig: not a kubeconfig (expected a mapping)")
    name = context or data.get("current-context")
    if not isinstance(name, str) or not name:
        raise CredentialsError("context: the kubeconfig has no current-context; name one")
    found = _entry(data, "contexts", name)
    cluster = _entry(data, "clusters", str(found.get("cluster")))
    user = _entry(data, "users", str(found.get("user")))
    for what, entry, allowed in (("cluster", cluster, _INLINE_CLUSTER),
                                 ("user", user, _INLINE_USER)):
        extra = sorted(set(entry) - allowed)
        if extra:
            raise CredentialsError(f"kubeconfig: {what} field {extra[0]!r} is not accepted "
                                   f"here; give credentials inline ({', '.join(sorted(allowed))})")

    def decoded(entry: dict[str, Any], key: str) -> bytes | None:
        value = entry.get(key)
        if value is None:
            return None
        try:
            return base64.b64decode(str(value), validate=True)
        except ValueError as exc:
            raise CredentialsError(f"kubeconfig: {key} is not base64") from exc

    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise CredentialsError("kubeconfig: the cluster's server must be an http(s) URL")
    token = user.get("token")
    return Credentials(server=server, ca_pem=decoded(cluster, "certificate-authority-data"),
                       token=str(token) if token else None,
                       cert_pem=decoded(user, "client-certificate-data"),
                       key_pem=decoded(user, "client-key-data"),
                       insecure=bool(cluster.get("insecure-skip-tls-verify")),
                       tls_server_name=cluster.get("tls-server-name"))
