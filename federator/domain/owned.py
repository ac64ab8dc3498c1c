"""What a member must not receive of a plane object: the fields each cluster allocates or
owns itself. A copy carrying the plane's values would be refused (a Service's cluster IP from
another cluster's range, a Job's selector generated for the plane's uid) or would take what
is not the federation's (a PVC bound to a volume of the plane, a ServiceAccount's token
Secrets). Pure: `strip` changes a copy made for a member, per kind (with its group)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Object = dict[str, Any]
# Labels a Job's controller puts on it and on its pod template, for the selector it makes.
_JOB_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid", "job-name",
               "batch.kubernetes.io/job-name")
# Annotations the volume binder and provisioners of one cluster put on a claim.
_CLAIM_ANNOTATIONS = ("pv.kubernetes.io/bind-completed", "pv.kubernetes.io/bound-by-controller",
                      "volume.kubernetes.io/selected-node",
                      "volume.beta.kubernetes.io/storage-provisioner",
                      "volume.kubernetes.io/storage-provisioner")


def _spec(copy: Object) -> Object:
    spec = copy.get("spec")
    return spec if isinstance(spec, dict) else {}


def _service(copy: Object) -> None:
    spec = _spec(copy)
    for field in ("clusterIP", "clusterIPs", "healthCheckNodePort"):
        spec.pop(field, None)
    ports = spec.get("ports")
    for port in ports if isinstance(ports, list) else []:
        if isinstance(port, dict):
            port.pop("nodePort", None)


def _without_labels(meta: Any, names: tuple[str, ...]) -> None:
    if isinstance(meta, dict) and isinstance(meta.get("labels"), dict):
        for name in names:
            meta["labels"].pop(name, None)
        if not meta["labels"]:
            del meta["labels"]


def _job_spec(spec: Object) -> None:
    """A Job's selector is generated (unless it says `manualSelector: true`) from its uid,
    which differs in every cluster: the member generates its own, with its labels."""
    if spec.get("manualSelector") is True:
        return
    spec.pop("selector", None)
    template = spec.get("template")
    if isinstance(template, dict):
        _without_labels(template.get("metadata"), _JOB_LABELS)


def _job(copy: Object) -> None:
    _without_labels(copy.get("metadata"), _JOB_LABELS)
    _job_spec(_spec(copy))


def _claim(copy: Object) -> None:
    _spec(copy).pop("volumeName", None)
    meta = copy.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if isinstance(annotations, dict):
        for name in _CLAIM_ANNOTATIONS:
            annotations.pop(name, None)


def _service_account(copy: Object) -> None:
    copy.pop("secrets", None)  # token Secrets of the plane's own making


def _namespace(copy: Object) -> None:
    copy.pop("spec", None)  # finalizers of the member's own


_RULES: dict[str, Callable[[Object], None]] = {
    "Service": _service,
    "Job.batch": _job,
    "PersistentVolumeClaim": _claim,
    "ServiceAccount": _service_account,
    "Namespace": _namespace,
}


def strip(group_kind: str, copy: Object) -> None:
    """Take from a member's copy (in place) what the member owns; `status` goes for every
    kind."""
    copy.pop("status", None)
    rule = _RULES.get(group_kind)
    if rule is not None:
        rule(copy)
