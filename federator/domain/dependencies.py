"""What a workload's pods need of the objects the federation holds: the ConfigMaps, Secrets,
ServiceAccount and PersistentVolumeClaims its pod template names. They go wherever the
workload is placed, even where their own placement would not send them (a Deployment on
member-1 takes its ConfigMap along), unless the object opts out
with `federator.io/follow-workloads: "false"`. Pure."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

FOLLOW_ANNOTATION = "federator.io/follow-workloads"
FOLLOWING_KINDS = frozenset({"ConfigMap", "Secret", "ServiceAccount", "PersistentVolumeClaim"})
# Kinds (with their group) whose pod templates are read.
USING_KINDS = frozenset({"Deployment.apps", "ReplicaSet.apps", "StatefulSet.apps",
                         "DaemonSet.apps", "Job.batch", "CronJob.batch"})
Reference = tuple[str, str]  # (kind, name), in the workload's namespace


def follows(obj: Mapping[str, Any]) -> bool:
    """Whether an object goes where the workloads that use it go (besides its own places)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return obj.get("kind") in FOLLOWING_KINDS and annotations.get(FOLLOW_ANNOTATION) != "false"


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _maps(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _named(kind: str, name: Any) -> Iterator[Reference]:
    if isinstance(name, str) and name:
        yield kind, name


def _of_container(container: Mapping[str, Any]) -> Iterator[Reference]:
    for source in _maps(container.get("envFrom")):
        yield from _named("ConfigMap", _map(source.get("configMapRef")).get("name"))
        yield from _named("Secret", _map(source.get("secretRef")).get("name"))
    for variable in _maps(container.get("env")):
        value_from = _map(variable.get("valueFrom"))
        yield from _named("ConfigMap", _map(value_from.get("configMapKeyRef")).get("name"))
        yield from _named("Secret", _map(value_from.get("secretKeyRef")).get("name"))


def _of_volume(volume: Mapping[str, Any]) -> Iterator[Reference]:
    yield from _named("ConfigMap", _map(volume.get("configMap")).get("name"))
    yield from _named("Secret", _map(volume.get("secret")).get("secretName"))
    for source in _maps(_map(volume.get("projected")).get("sources")):
        yield from _named("ConfigMap", _map(source.get("configMap")).get("name"))
        yield from _named("Secret", _map(source.get("secret")).get("name"))
    yield from _named("PersistentVolumeClaim",
                      _map(volume.get("persistentVolumeClaim")).get("claimName"))


def _template(workload: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod template's spec: a CronJob's is in its job template."""
    spec = _map(workload.get("spec"))
    if "jobTemplate" in spec:
        spec = _map(_map(spec["jobTemplate"]).get("spec"))
    return _map(_map(spec.get("template")).get("spec"))


def references(workload: Mapping[str, Any]) -> frozenset[Reference]:
    """What a workload's pod template names: ConfigMaps and Secrets of volumes (also
    projected), envFrom and env of every container (init and ephemeral too), image pull
    secrets; its ServiceAccount; the PersistentVolumeClaims of its volumes."""
    template = _template(workload)
    found: set[Reference] = set()
    for field in ("containers", "initContainers", "ephemeralContainers"):
        for container in _maps(template.get(field)):
            found.update(_of_container(container))
    for volume in _maps(template.get("volumes")):
        found.update(_of_volume(volume))
    for pull in _maps(template.get("imagePullSecrets")):
        found.update(_named("Secret", pull.get("name")))
    found.update(_named("ServiceAccount", template.get("serviceAccountName")))
    return frozenset(found)
