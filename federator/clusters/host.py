"""`federator init --host-cluster-context C`: the plane (etcd, kube-apiserver, a
controller-manager with only the namespace and garbage-collector controllers) and federator
run as workloads of a host cluster, from the manifests in deploy/host/."""

from __future__ import annotations

import asyncio
import base64
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from federator import __version__
from federator.kube.client import KubeClient, KubeError, Object
from federator.kube.kubeconfig import Credentials
from federator.kube.resources import KINDS, object_path, path
from federator.pki import PKI

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "host" / "plane.yaml"
PKI_SECRET = "federation-plane-pki"  # noqa: S105 (a name)
AVAILABLE_TIMEOUT = 300.0


class HostError(Exception):
    """The plane cannot be installed in the host cluster; the message says why."""


@dataclass(frozen=True)
class HostOptions:
    namespace: str = "federation-system"
    k8s_version: str = "1.33.13"
    etcd_image: str = "registry.k8s.io/etcd:3.5.21-0"
    federator_image: str = f"federator:{__version__}"
    service_type: str = "LoadBalancer"
    etcd_storage: str = "1Gi"
    advertise_address: str | None = None

    @property
    def service_dns(self) -> tuple[str, ...]:
        base = f"federation-apiserver.{self.namespace}"
        return ("federation-apiserver", base, f"{base}.svc", f"{base}.svc.cluster.local")


def load(options: HostOptions, template: Path = TEMPLATE) -> list[Object]:
    if not template.exists():
        raise HostError(f"{template} is missing: run federator from its source checkout")
    return render(options, template.read_text())


def render(options: HostOptions, template: str) -> list[Object]:
    """The objects of the plane in the host cluster (without the PKI Secret)."""
    text = string.Template(template).substitute(
        namespace=options.namespace, k8s_version=options.k8s_version,
        etcd_image=options.etcd_image, federator_image=options.federator_image,
        service_type=options.service_type, etcd_storage=options.etcd_storage)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def plane_kubeconfig(server: str, ca: bytes, cert: bytes, key: bytes) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Config", "current-context": "federation",
            "clusters": [{"name": "federation",
                          "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}],
            "users": [{"name": "federation-admin",
                       "user": {"client-certificate-data": _b64(cert),
                                "client-key-data": _b64(key)}}],
            "contexts": [{"name": "federation",
                          "context": {"cluster": "federation", "user": "federation-admin"}}]}


def pki_secret(options: HostOptions, pki: PKI) -> Object:
    """Certificates of the plane's apiserver and its in-cluster kubeconfig. The CA's key
    stays in the local directory of `pki`; it never enters the host cluster."""
    ips = (options.advertise_address,) if options.advertise_address and \
        options.advertise_address[0].isdigit() else ()
    names = options.service_dns + ((options.advertise_address,) if options.advertise_address
                                   and not ips else ())
    serving = pki.apiserver("federation", "10.96.0.1", dns=names, ips=ips)
    admin = pki.admin()
    ca = pki.ca.cert.read_bytes()
    inside = plane_kubeconfig(f"https://{options.service_dns[2]}:443", ca,
                              admin.cert.read_bytes(), admin.key.read_bytes())
    data = {"ca.crt": ca, "apiserver.crt": serving.cert.read_bytes(),
            "apiserver.key": serving.key.read_bytes(),
            "sa.key": pki.service_account_key("federation").read_bytes(),
            "kubeconfig": yaml.safe_dump(inside).encode()}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": PKI_SECRET, "namespace": options.namespace,
                         "labels": {"app.kubernetes.io/part-of": "federator"}},
            "data": {k: _b64(v) for k, v in data.items()}}


async def install(host: KubeClient, options: HostOptions, objects: list[Object],
                  secret: Object, *, dry_run: bool = False) -> list[str]:
    """Apply the namespace, the PKI Secret and the other objects (server-side; validated
    only, with dry_run). One line each."""
    namespace, rest = objects[0], objects[1:]
    if dry_run:
        try:
            await host.get(path(KINDS[("v1", "Namespace")], name=options.namespace))
        except KubeError as exc:
            if exc.not_found:
                raise HostError(f"a dry run needs namespace {options.namespace} in the host "
                                "cluster (namespaced objects are checked in it): create it or "
                                "pass --host-namespace") from exc
            raise
    ordered = [namespace, secret, *rest]
    lines = []
    for obj in ordered:
        try:
            await host.apply(object_path(obj), obj, dry_run=dry_run)
        except KubeError as exc:
            raise HostError(f"the host cluster refused {obj['kind']} "
                            f"{obj['metadata']['name']}: {exc}") from exc
        suffix = " (server dry run)" if dry_run else ""
        lines.append(f"{obj['kind'].lower()}/{obj['metadata']['name']} applied{suffix}")
    return lines


async def plane_endpoint(host: KubeClient, options: HostOptions) -> str:
    """Where the plane's apiserver is reached from outside the host cluster, once it is up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + AVAILABLE_TIMEOUT
    deployment_url = path(KINDS[("apps/v1", "Deployment")], namespace=options.namespace,
                          name="federation-apiserver")
    service_url = path(KINDS[("v1", "Service")], namespace=options.namespace,
                       name="federation-apiserver")
    while True:
        status = (await host.get(deployment_url)).get("status") or {}
        service = await host.get(service_url)
        address = _address(options, service, await host.get(path(KINDS[("v1", "Node")])))
        if status.get("availableReplicas") and address:
            return address
        if loop.time() > deadline:
            raise HostError(f"the plane's apiserver is not available with an address after "
                            f"{AVAILABLE_TIMEOUT:.0f} s: see `kubectl -n {options.namespace} "
                            "get pods,svc`")
        await asyncio.sleep(2)


def _address(options: HostOptions, service: Object, nodes: Object) -> str | None:
    if options.advertise_address:
        return f"https://{options.advertise_address}:443"
    spec = service.get("spec") or {}
    if spec.get("type") == "LoadBalancer":
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if ingress:
            return f"https://{ingress[0].get('ip') or ingress[0].get('hostname')}:443"
        return None
    if spec.get("type") == "NodePort":
        port = spec["ports"][0].get("nodePort")
        for node in nodes.get("items") or []:
            for addr in (node.get("status") or {}).get("addresses") or []:
                if addr.get("type") in ("ExternalIP", "InternalIP"):
                    return f"https://{addr['address']}:{port}"
    return None


def plane_credentials(server: str, pki: PKI) -> Credentials:
    admin = pki.admin()
    return Credentials(server=server, ca_pem=pki.ca.cert.read_bytes(),
                       cert_pem=admin.cert.read_bytes(), key_pem=admin.key.read_bytes())
