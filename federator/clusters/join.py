"""`federator join` and `federator unjoin`: a member's identity for federator, its credentials
in the plane, and the Cluster object. Each either completes or leaves nothing behind."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from federator import manifests
from federator.clusters.plane import read_federation
from federator.domain import kinds
from federator.domain.naming import (
    CLUSTER_LABEL,
    FEDERATION_NAMESPACE,
    MANAGED_BY,
    MEMBER_TOKEN_SECRET,
    PLANE_UID,
    REGION_LABEL,
    ZONE_LABEL,
    cluster_secret_name,
)
from federator.kube.client import KubeClient, KubeError, Object, Unreachable
from federator.kube.discovery import discover
from federator.kube.kubeconfig import Credentials
from federator.kube.resources import (
    CLUSTERS,
    KINDS,
    NODES,
    SECRETS,
    Resource,
    object_path,
    path,
)

TOKEN_TIMEOUT = 30.0
NAMESPACE_TIMEOUT = 60.0
JOINED_CONTEXT = "federator.io/joined-context"
class JoinError(Exception):
    """join or unjoin cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class JoinRequest:
    context: str
    name: str
    region: str | None = None
    zone: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def credentials_secret(name: str, server: str, ca: bytes | None, token: str) -> Object:
    data = {"server": _b64(server.encode()), "token": _b64(token.encode())}
    if ca:
        data["ca.crt"] = _b64(ca)
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": cluster_secret_name(name), "namespace": FEDERATION_NAMESPACE,
                         "labels": {CLUSTER_LABEL: name}},
            "data": data}


def credentials_from_secret(secret: Object) -> Credentials:
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    return Credentials(server=data["server"].decode(), ca_pem=data.get("ca.crt"),
                       token=data["token"].decode())


def cluster_object(request: JoinRequest, server: str) -> Object:
    spec: dict[str, Any] = {"server": server,
                            "secretRef": {"name": cluster_secret_name(request.name)}}
    if request.region:
        spec["region"] = request.region
    if request.zone:
        spec["zone"] = request.zone
    return {"apiVersion": "federator.io/v1alpha1", "kind": "Cluster",
            "metadata": {"name": request.name, "labels": dict(request.labels),
                         "annotations": {JOINED_CONTEXT: request.context}},
            "spec": spec}


def joined_context(cluster: Object) -> str | None:
    """The kubeconfig context a Cluster was joined from (unjoin uses it by default)."""
    value = (cluster["metadata"].get("annotations") or {}).get(JOINED_CONTEXT)
    return str(value) if value else None


class _Undo:
    """Deletions to run, newest first, if a join fails half-way."""

    def __init__(self) -> None:
        self._steps: list[Callable[[], Awaitable[Any]]] = []

    def push(self, client: KubeClient, url: str) -> None:
        self._steps.append(lambda: client.delete(url))

    async def run(self) -> None:
        for step in reversed(self._steps):
            with contextlib.suppress(KubeError):
                await step()


async def _reach(member: KubeClient, context: str) -> str:
    """The member's version, or a JoinError that says why it cannot be used."""
    try:
        version = await member.get("/version")
    except Unreachable as exc:
        raise JoinError(f"cannot reach the server of context {context!r}: {exc.message}") from exc
    except KubeError as exc:
        if exc.code == 401:
            raise JoinError(f"the server of context {context!r} rejected its credentials "
                            "(401 Unauthorized): fix the user of that context") from exc
        raise JoinError(f"context {context!r}: {exc}") from exc
    return str(version.get("gitVersion", "unknown"))


async def _namespace_not_terminating(member: KubeClient) -> None:
    """Wait out the deletion of federation-system left by an unjoin a moment ago."""
    url = path(KINDS[("v1", "Namespace")], name=FEDERATION_NAMESPACE)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + NAMESPACE_TIMEOUT
    while True:
        try:
            namespace = await member.get(url)
        except KubeError as exc:
            if exc.not_found:
                return
            raise
        if (namespace.get("status") or {}).get("phase") != "Terminating":
            return
        if loop.time() > deadline:
            raise JoinError(f"namespace {FEDERATION_NAMESPACE} in the member is still being "
                            "deleted (from an earlier unjoin); try again when it is gone")
        await asyncio.sleep(0.5)


async def _create_member_objects(member: KubeClient, request: JoinRequest, federation: str,
                                 undo: _Undo) -> None:
    await _namespace_not_terminating(member)
    for obj in manifests.load("member.yaml"):
        obj["metadata"].setdefault("labels", {})[MANAGED_BY] = federation
        url = object_path(obj)
        try:
            await member.create(url.rsplit("/", 1)[0], obj)
        except KubeError as exc:
            what = f"{obj['kind']} {obj['metadata']['name']}"
            if exc.conflict and obj["kind"] == "Namespace":
                continue  # a namespace of that name may be there already; it is kept
            if exc.conflict:
                raise JoinError(f"the member of context {request.context!r} already has "
                                f"{what}: is it joined to another federation? Remove it or "
                                "unjoin it there first") from exc
            if exc.code == 403:
                raise JoinError(f"context {request.context!r} may not create {what} in the "
                                f"member ({exc.message}): join needs cluster-admin rights "
                                "there") from exc
            raise JoinError(f"creating {what} in the member: {exc}") from exc
        undo.push(member, url)


async def _service_account_token(member: KubeClient) -> str:
    url = path(SECRETS, namespace=FEDERATION_NAMESPACE, name=MEMBER_TOKEN_SECRET)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TOKEN_TIMEOUT
    while True:
        secret = await member.get(url)
        token = (secret.get("data") or {}).get("token")
        if token:
            return base64.b64decode(token).decode()
        if loop.time() > deadline:
            raise JoinError(f"the member did not issue a token for federator within "
                            f"{TOKEN_TIMEOUT:.0f} s: is its kube-controller-manager running "
                            "with --service-account-private-key-file?")
        await asyncio.sleep(0.2)


async def _check_token(credentials: Credentials) -> None:
    """federator's own credential must work before it is stored (RBAC may lag a moment)."""
    client = KubeClient(credentials, timeout=5)
    try:
        for attempt in range(25):
            try:
                await client.get("/apis/apps/v1/deployments", limit="1")
                return
            except KubeError as exc:
                if exc.code not in (401, 403) or attempt == 24:
                    raise JoinError(f"federator's new credential does not work in the member: "
                                    f"{exc}") from exc
                await asyncio.sleep(0.2)
    finally:
        await client.close()


async def _with_location(member: KubeClient, request: JoinRequest) -> JoinRequest:
    """Region and zone not given are taken from the member's nodes, where they all agree."""
    if request.region and request.zone:
        return request
    nodes = (await member.get(path(NODES))).get("items") or []
    found = {}
    for label, given in ((REGION_LABEL, request.region), (ZONE_LABEL, request.zone)):
        values = {(n["metadata"].get("labels") or {}).get(label) for n in nodes}
        found[label] = given or (values.pop() if len(values) == 1 else None)
    return replace(request, region=found[REGION_LABEL], zone=found[ZONE_LABEL])


async def join(plane: KubeClient, member: KubeClient, request: JoinRequest) -> list[str]:
    """Join one member; the lines to tell the user."""
    federation = await read_federation(plane)
    if federation is None:
        raise JoinError("the plane holds no federation: run `federator init` first")
    try:
        await plane.get(path(CLUSTERS, name=request.name))
        raise JoinError(f"cluster {request.name!r} is already joined; to join it again, "
                        f"first run `federator unjoin {request.name}`")
    except KubeError as exc:
        if not exc.not_found:
            raise
    server = member.server
    for cluster in (await plane.get(path(CLUSTERS))).get("items") or []:
        if cluster["spec"]["server"] == server:
            raise JoinError(f"the server of context {request.context!r} ({server}) is already "
                            f"joined as cluster {cluster['metadata']['name']!r}")
    version = await _reach(member, request.context)
    request = await _with_location(member, request)
    undo = _Undo()
    try:
        await _create_member_objects(member, request, federation.name, undo)
        token = await _service_account_token(member)
        ca = member.credentials.ca_pem
        await _check_token(Credentials(server=server, ca_pem=ca, token=token))
        secret = credentials_secret(request.name, server, ca, token)
        await plane.create(path(SECRETS, namespace=FEDERATION_NAMESPACE), secret)
        undo.push(plane, object_path(secret))
        await plane.create(path(CLUSTERS), cluster_object(request, server))
    except BaseException:
        await undo.run()
        raise
    return [f"cluster/{request.name} joined ({server}, Kubernetes {version})"]


async def _release(member: KubeClient, federation: str, delete: bool) -> int:
    """Delete, or stop managing, what federator put in a member; how many objects."""
    selector = f"{MANAGED_BY}={federation}"
    count = 0
    # Whatever kinds the member serves that federator could have propagated; namespaces
    # last (deleting one deletes what is in it), definitions before them.
    served = await discover(member)
    for found in reversed(kinds.federated(served.resources)):
        resource = Resource(found.group, found.version, found.plural, found.namespaced)
        items = (await member.get(path(resource), labelSelector=selector)).get("items") or []
        for item in items:
            meta = item["metadata"]
            if meta.get("namespace") == FEDERATION_NAMESPACE or (
                    resource.plural == "namespaces" and meta["name"] == FEDERATION_NAMESPACE):
                continue  # federator's own identity: removed below
            url = path(resource, namespace=meta.get("namespace"), name=meta["name"])
            if delete:
                await member.delete(url)
            else:
                await member.merge_patch(url, {"metadata": {"labels": {MANAGED_BY: None},
                                                            "annotations": {PLANE_UID: None}}})
            count += 1
    return count


REVOKE_TIMEOUT = 10.0


async def _revoke(member: KubeClient) -> None:
    """Take federator's rights in the member away first, and wait until the member's
    authorizer says so: a running `federator serve` would otherwise write again (as drift)
    what unjoin deletes or releases next. Should unjoin fail later, the Cluster is still
    there to unjoin again."""
    identity = {o["kind"]: o for o in manifests.load("member.yaml")}
    binding, account = identity["ClusterRoleBinding"], identity["ServiceAccount"]
    await member.delete(object_path(binding))
    user = (f"system:serviceaccount:{account['metadata']['namespace']}:"
            f"{account['metadata']['name']}")
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": {"user": user, "resourceAttributes": {"verb": "create",
                                                            "resource": "configmaps"}}}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REVOKE_TIMEOUT
    while loop.time() < deadline:
        answer = await member.create("/apis/authorization.k8s.io/v1/subjectaccessreviews",
                                     review)
        if not (answer.get("status") or {}).get("allowed"):
            return
        await asyncio.sleep(0.1)
    raise JoinError(f"federator's rights in the member were not revoked within "
                    f"{REVOKE_TIMEOUT:.0f} s")


async def _remove_identity(member: KubeClient, federation: str) -> None:
    for obj in reversed(manifests.load("member.yaml")):
        url = object_path(obj)
        if obj["kind"] == "Namespace":
            try:
                found = await member.get(url)
            except KubeError as exc:
                if exc.not_found:
                    continue
                raise
            if (found["metadata"].get("labels") or {}).get(MANAGED_BY) != federation:
                continue  # it was there before federator: it stays
        await member.delete(url)


async def get_cluster(plane: KubeClient, name: str) -> Object:
    try:
        cluster: Object = await plane.get(path(CLUSTERS, name=name))
    except KubeError as exc:
        if exc.not_found:
            raise JoinError(f"no cluster {name!r} is joined (see `kubectl get clusters`)") from exc
        raise
    return cluster


async def unjoin(plane: KubeClient, member: KubeClient | None, name: str, *,
                 delete_resources: bool) -> list[str]:
    """Remove a member from the federation; the lines to tell the user. `member` is an admin
    client of the member (federator's own credential may not remove itself); None skips the
    member's clean-up (--force)."""
    cluster = await get_cluster(plane, name)
    federation = await read_federation(plane)
    lines = []
    if member is not None and federation is not None:
        try:
            await _revoke(member)
            count = await _release(member, federation.name, delete_resources)
            await _remove_identity(member, federation.name)
        except KubeError as exc:
            raise JoinError(f"cannot clean up cluster {name!r} ({exc}); to remove it from "
                            "the federation anyway, leaving federator's ServiceAccount and "
                            f"objects in the member: federator unjoin {name} --force") from exc
        verb = "deleted" if delete_resources else "left in place, no longer managed"
        lines.append(f"{count} object(s) in the member {verb}")
    elif member is None:
        lines.append("the member was not cleaned up (--force): federator's ServiceAccount "
                     "and objects stay in it")
    await plane.delete(path(SECRETS, namespace=FEDERATION_NAMESPACE,
                            name=cluster["spec"]["secretRef"]["name"]))
    await plane.delete(path(CLUSTERS, name=name))
    lines.append(f"cluster/{name} unjoined")
    return lines
