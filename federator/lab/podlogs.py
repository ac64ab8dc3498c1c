"""What the containers of a lab member's pods log. For each pod placed on a node, a file per
container of a few lines naming the pod, the container and the cluster, in the container
runtime's log format, and a kwok `Logs` object (named as the pod, owned by it: the member's
garbage collector removes it with the pod) that points kwok's kubelet API at those files for
`kubectl logs` and `attach`; a pod's files go with it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import structlog

from federator.kube.client import KubeClient, KubeError, Object
from federator.kube.watching import Reflector
from federator.lab.layout import KWOK_API, runtime_log

log = structlog.get_logger(__name__)



def lines(cluster: str, namespace: str, pod: str, container: str, seconds: float) -> str:
    """A container's log, in the runtime's format (see layout.runtime_log)."""
    return runtime_log([f"federator lab: container {container} of pod {namespace}/{pod} in "
                        f"{cluster}", f"{pod}: started", f"{pod}: serving"], seconds)


def file_of(directory: Path, namespace: str, pod: str, container: str) -> Path:
    return directory / f"{namespace}_{pod}_{container}.log"


def logs_object(pod: Object, files: dict[str, Path]) -> Object:
    """kwok's Logs for one pod: each container's file, followed as it grows."""
    meta = pod["metadata"]
    return {"apiVersion": KWOK_API, "kind": "Logs",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Pod",
                                              "name": meta["name"], "uid": meta["uid"]}]},
            "spec": {"logs": [{"containers": [name], "logsFile": str(path), "follow": True}
                              for name, path in files.items()]}}


class PodLogs:
    def __init__(self, client: KubeClient, cluster: str, directory: Path) -> None:
        self.client = client
        self.cluster = cluster
        self.directory = directory
        self.written: dict[tuple[str, str], list[Path]] = {}
        self.pods = Reflector(client, "/api/v1/pods", self._changed, keep=False,
                              field_selector="spec.nodeName!=")

    async def run(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        await self.pods.run()

    async def _changed(self, event: str, pod: Object) -> None:
        meta = pod["metadata"]
        key = (str(meta["namespace"]), str(meta["name"]))
        if event == "DELETED":
            for path in self.written.pop(key, []):
                path.unlink(missing_ok=True)
            return
        if key in self.written:
            return
        containers = [str(c["name"]) for c in (pod.get("spec") or {}).get("containers") or []]
        when = time.time()
        files = {c: file_of(self.directory, *key, c) for c in containers}
        for container, path in files.items():
            if not path.exists():
                path.write_text(lines(self.cluster, *key, container, when))
        self.written[key] = list(files.values())
        url = f"/apis/kwok.x-k8s.io/v1alpha1/namespaces/{key[0]}/logs"
        try:
            await self.client.create(url, logs_object(pod, files))
        except KubeError as exc:
            if exc.code != 409:  # 409: made before this process (re)started
                log.warning("pod logs not set up", cluster=self.cluster, namespace=key[0],
                            pod=key[1], error=exc.message)
                self.written.pop(key, None)


def crd() -> dict[str, Any]:
    """The definition of kwok's `Logs` in a member: what kwok reads, kept as it is."""
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "logs.kwok.x-k8s.io"},
            "spec": {"group": "kwok.x-k8s.io", "scope": "Namespaced",
                     "names": {"kind": "Logs", "listKind": "LogsList", "plural": "logs",
                               "singular": "logs"},
                     "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                                   "subresources": {"status": {}},
                                   "schema": {"openAPIV3Schema": schema}}]}}
