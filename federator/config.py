"""Settings of `federator serve`: a YAML file, then FEDERATOR_* environment variables, then
command-line flags, each over the one before, validated by pydantic. Errors name the field."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from federator.domain.kinds import bad_exclusion

ENV_PREFIX = "FEDERATOR_"
# Variables of other federator commands (the lab, its tests), not settings of serve.
OTHER_VARIABLES = frozenset({"FEDERATOR_CACHE", "FEDERATOR_GO", "FEDERATOR_LAB_DIR",
                             "FEDERATOR_TEST_BASE_PORT"})


class SettingsError(Exception):
    """Settings that cannot be used; one line per bad field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpSettings(_Strict):
    address: str = "127.0.0.1"
    port: int = Field(default=9090, ge=0, le=65535)


class ProbeConfig(_Strict):
    period: float = Field(default=2.0, gt=0)
    timeout: float = Field(default=2.0, gt=0)
    failure_threshold: int = Field(default=3, ge=1)
    success_threshold: int = Field(default=1, ge=1)
    capacity_period: float = Field(default=30.0, gt=0)


class LeaderElectionConfig(_Strict):
    enabled: bool = True
    lease_name: str = "federator"
    namespace: str = "federation-system"
    lease_duration: float = Field(default=10.0, gt=0)
    renew_deadline: float = Field(default=8.0, gt=0)
    retry_period: float = Field(default=2.0, gt=0)
    # The controllers' work is split by a hash of the namespace into this many shards, each
    # held by one replica through a Lease `<lease_name>-shard-<i>`: alike on every replica.
    shards: int = Field(default=8, ge=1, le=256)

    @model_validator(mode="after")
    def _ordered(self) -> LeaderElectionConfig:
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration, got "
                             f"{self.retry_period} < {self.renew_deadline} < "
                             f"{self.lease_duration}")
        return self


class PropagationConfig(_Strict):
    workers: int = Field(default=16, ge=1, le=1024)
    member_concurrency: int = Field(default=16, ge=1, le=1024)
    deletion_timeout: float = Field(default=60.0, gt=0)
    unschedulable_after: float = Field(default=60.0, gt=0)
    capacity_ttl: float = Field(default=300.0, gt=0)
    # A member's write that takes longer goes on alone (a hung member delays only its own
    # copies); the object's other members are done with at once.
    member_wait: float = Field(default=1.0, gt=0, le=30)
    # Resources kept in the plane besides the cluster-local ones, named as kubectl names
    # them: networkpolicies.networking.k8s.io, configmaps.
    exclude: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _resource_names(self) -> PropagationConfig:
        for name in self.exclude:
            problem = bad_exclusion(name)
            if problem is not None:
                raise ValueError(f"exclude: {problem}")
        return self


class EventsConfig(_Strict):
    """Member events copied into the plane, per member at most `rate`/s (`burst` at once);
    past `max_pending` waiting, new ones are dropped."""

    enabled: bool = True
    rate: float = Field(default=20.0, gt=0)
    burst: int = Field(default=200, ge=1)
    max_pending: int = Field(default=2000, ge=1)


class EmbeddedDnsConfig(_Strict):
    enabled: bool = True
    address: str = "127.0.0.1"
    port: int = Field(default=8053, ge=0, le=65535)  # 5353 is mDNS
    nameservers: tuple[str, ...] = ()  # the zone's NS records; default ns.<dns zone>


class Rfc2136Config(_Strict):
    enabled: bool = False
    server: str = "127.0.0.1"  # an address
    port: int = Field(default=53, ge=1, le=65535)
    zone: str | None = None  # default: the federation's DNS zone (federator init)
    key_name: str = "federator"
    key_secret_file: Path | None = None  # the TSIG secret, base64, as tsig-keygen prints it
    algorithm: Literal["hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224",
                       "hmac-sha1", "hmac-md5"] = "hmac-sha256"
    batch: int = Field(default=20, ge=1, le=500)

    @model_validator(mode="after")
    def _keyed(self) -> Rfc2136Config:
        if self.enabled and self.key_secret_file is None:
            raise ValueError("key_secret_file: a TSIG secret is needed to send updates; "
                             "make one with `tsig-keygen` and name its file")
        return self


class DnsConfig(_Strict):
    """Records of federated Services under the federation's DNS zone: answered by the
    embedded server, and/or kept in an authoritative server by RFC 2136 updates."""

    enabled: bool = True
    ttl: int = Field(default=30, ge=1, le=86400)
    embedded: EmbeddedDnsConfig = EmbeddedDnsConfig()
    rfc2136: Rfc2136Config = Rfc2136Config()


class GatewayConfig(_Strict):
    enabled: bool = True
    address: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)
    hostnames: tuple[str, ...] = ()  # names and addresses it is reached by, besides loopback
    token_file: Path | None = None  # lines of token,user,uid[,"group1,group2"]
    client_ca_file: Path | None = None  # further CAs whose client certificates are accepted
    member_timeout: float = Field(default=5.0, gt=0)  # a fan-out read waits this long


class LogConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class Settings(_Strict):
    kubeconfig: Path | None = None
    plane_context: str = "federation"
    identity: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    http: HttpSettings = HttpSettings()
    probe: ProbeConfig = ProbeConfig()
    leader_election: LeaderElectionConfig = LeaderElectionConfig()
    propagation: PropagationConfig = PropagationConfig()
    events: EventsConfig = EventsConfig()
    dns: DnsConfig = DnsConfig()
    gateway: GatewayConfig = GatewayConfig()
    log: LogConfig = LogConfig()


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """FEDERATOR_PROBE__PERIOD=5 -> {"probe": {"period": "5"}}; `__` separates levels."""
    result: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in OTHER_VARIABLES:
            continue
        keys = name.removeprefix(ENV_PREFIX).lower().split("__")
        node = result
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return result


def load(file: Path | None, environ: Mapping[str, str],
         overrides: Mapping[str, Any]) -> Settings:
    data: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = yaml.safe_load(file.read_text()) or {}
        except OSError as exc:
            raise SettingsError(f"--config: cannot read {file}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise SettingsError(f"--config: {file} is not YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise SettingsError(f"--config: {file} must hold a mapping of settings")
        data = loaded
    data = _merge(_merge(data, from_environment(environ)), overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "settings"
            env = ENV_PREFIX + "__".join(str(p) for p in error["loc"]).upper()
            lines.append(f"{where} (file key, or {env}): "
                         f"{error['msg'].removeprefix('Value error, ')}")
        raise SettingsError("; ".join(lines)) from exc
