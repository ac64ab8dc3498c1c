"""What propagation tells: events on the plane object (one per kind of action naming every
cluster, a new spread, a new error, a bad placement), the per-cluster breakdown in the
`federator.io/cluster-status` annotation, and the members' status summed into the plane
object's (workloads, Jobs, custom kinds with a scale subresource)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import structlog

from federator.domain import events as event_rules
from federator.domain import replicas as replica_rules
from federator.domain.naming import PLANE_UID
from federator.domain.objects import contains
from federator.domain.propagation import CLUSTER_STATUS, STATUS_KINDS
from federator.domain.status import MemberState, aggregate, aggregate_job, aggregate_scaled
from federator.kube.client import KubeClient, KubeError, Object
from federator.kube.events import EventRecorder
from federator.kube.resources import EVENTS, path

from .members import Members
from .memory import Key, Memories
from .plane import Plane

log = structlog.get_logger(__name__)


def _holds(actual: Object, status: Object) -> bool:
    """Whether a stored status already says `status`, a zero count being the same as none
    (the apiserver does not store zero counts)."""
    return all(actual.get(key, 0) == value if value == 0 else contains(actual.get(key), value)
               for key, value in status.items())


# The plane keeps events this long by default (kube-apiserver --event-ttl): a copy made
# earlier may have had its event, expired since.
EVENT_TTL = 3600.0
RECALL_PAGE = "500"


class Recall:
    """Which copies' creations are announced already, as the plane's events say: recalled
    when this replica starts and whenever it takes shards (another replica may have stopped
    between writing a copy and announcing it; so may this one's previous run). A copy found
    right, of which this process has no memory, made before the recall and not announced, is
    announced once."""

    def __init__(self, client: KubeClient, window: float = EVENT_TTL) -> None:
        self.client = client
        self.window = window
        self.announced: set[tuple[str, str]] = set()
        self.at: float | None = None  # when the announcements were listed (POSIX seconds)
        self._listing: asyncio.Task[None] | None = None
        self._generation = 0

    def start(self) -> None:
        """List the announcements (again), in the background; the newest listing decides."""
        self._generation += 1
        self._listing = asyncio.create_task(self._list(self._generation))

    async def _list(self, generation: int) -> None:
        began: float | None = time.time()
        found: set[tuple[str, str]] = set()
        params = {"fieldSelector": f"reason={event_rules.CREATED},"
                                   f"source={event_rules.COMPONENT}", "limit": RECALL_PAGE}
        try:
            while True:
                page = await self.client.get(path(EVENTS), **params)
                found |= event_rules.creations(page.get("items") or [])
                more = (page.get("metadata") or {}).get("continue")
                if not more:
                    break
                params["continue"] = more
        except (KubeError, OSError, TimeoutError) as exc:
            # Best effort, as events are: unknown, nothing is announced late.
            log.warning("announcements not recalled; creations left unannounced by a "
                        "stopped replica stay so", error=str(exc))
            found, began = set(), None
        if generation == self._generation:
            self.announced, self.at = found, began

    async def due(self, obj: Object, cluster: str, copy: Object) -> bool:
        """Whether `copy` (right as it is, and unknown to this process) is a creation still
        to announce; if so it counts as announced from now on."""
        meta = obj["metadata"]
        uid = meta.get("uid") or ""
        copy_meta = copy.get("metadata") or {}
        if not uid or (copy_meta.get("annotations") or {}).get(PLANE_UID) != uid:
            return False
        while self._listing is not None and not self._listing.done():
            await asyncio.shield(self._listing)  # a newer one may have started meanwhile
        created = event_rules.seconds(copy_meta.get("creationTimestamp"))
        if not event_rules.unannounced(uid, cluster, created, self.announced, self.at,
                                       self.window):
            return False
        self.announced.add((uid, cluster))
        return True

    def stop(self) -> None:
        if self._listing is not None:
            self._listing.cancel()


class Reporter:
    def __init__(self, plane: Plane, members: Members, memories: Memories,
                 recorder: EventRecorder) -> None:
        self.plane = plane
        self.members = members
        self.memories = memories
        self.recorder = recorder

    async def announce(self, key: Key, obj: Object,
                       actions: list[tuple[str, str, str]]) -> None:
        """One event per kind of action, naming every cluster it was done in."""
        by_reason: dict[tuple[str, str], list[str]] = {}
        for reason, what, cluster in actions:
            by_reason.setdefault((reason, what), []).append(cluster)
        for (reason, what), clusters in sorted(by_reason.items()):
            message = (f"{what} {key[0]} {key[2]} in cluster{'s' if len(clusters) > 1 else ''}"
                       f" {', '.join(sorted(clusters))}")
            log.info(message, kind=key[0], namespace=key[1], object=key[2])
            await self.recorder.record(obj, "Normal", reason, message, clusters=clusters)

    async def report(self, key: Key, obj: Object, targets: list[str], ready: list[str],
                     replicas: dict[str, int] | None, errors: dict[str, str],
                     waits: dict[str, str]) -> None:
        """Events for a new spread and new errors; the per-cluster breakdown (what is wrong
        or waited for) in an annotation, the members' status summed into the plane's."""
        kind = key[0]
        memory = self.memories.of(key)
        if replicas is not None and memory.plan != replicas:
            memory.plan = replicas
            layout = ", ".join(f"{c}={n}" for c, n in sorted(replicas.items())) or "none"
            await self.recorder.record(obj, "Normal", "Scheduled",
                                       f"replicas per cluster: {layout}")
        for cluster in ready:
            error = errors.get(cluster)
            copy = memory.copy(cluster)
            if error is not None and copy.error != error:
                await self.recorder.record(obj, "Warning", "PropagationFailed",
                                           f"cluster {cluster}: {error}")
            copy.error = error
        summed = self.plane.summed(kind)
        status, breakdown = self._status(key, obj, replicas, ready, errors)
        for cluster, waiting in waits.items():
            breakdown.setdefault(cluster, {})["waiting"] = waiting
        for cluster in targets:
            if cluster not in ready and cluster not in waits:
                breakdown[cluster] = {"error": "cluster not ready"}
        # Workloads always carry their breakdown; other kinds only while something is wrong.
        annotation: str | None = json.dumps(breakdown, sort_keys=True, separators=(",", ":"))
        if not summed and not breakdown:
            annotation = None
        current = (obj["metadata"].get("annotations") or {}).get(CLUSTER_STATUS)
        if annotation != current and (annotation is not None or current is not None):
            obj = await self.plane.patch(obj, self.plane.url(*key), {"metadata": {
                "annotations": {CLUSTER_STATUS: annotation}}})
        if status and not _holds(obj.get("status") or {}, status):
            # Zeros are sent as null: the apiserver leaves zero counts out of what it stores.
            await self.plane.patch(obj, self.plane.url(*key, subresource="status"),
                                   {"status": {k: v if v != 0 else None
                                               for k, v in status.items()}})

    def _status(self, key: Key, obj: Object, replicas: dict[str, int] | None,
                ready: list[str], errors: dict[str, str]
                ) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
        """The plane object's status summed from its copies (None: not summed), and the
        breakdown per cluster."""
        kind = key[0]
        states = {c: MemberState((replicas or {}).get(c, 0), self.members.views[c].copy(*key),
                                 errors.get(c)) for c in ready}
        if kind in STATUS_KINDS:
            return aggregate(obj, states)
        if kind == replica_rules.JOB:
            return aggregate_job(states, obj.get("status"))
        scale = self.plane.scale(kind)
        if scale is not None:
            field = replica_rules.field_of(kind, scale)
            summed, breakdown = aggregate_scaled(field.status if field else None, states)
            status: dict[str, Any] | None = summed
            definition = self.plane.definition(kind) or {}
            if not replica_rules.has_status(definition, self.plane.resources[kind].version):
                status = None  # no status subresource to write it to
            return status, breakdown
        return None, {c: {"error": e} for c, e in errors.items()}

    async def invalid(self, key: Key, obj: Object, problem: str) -> None:
        """Bad placement or preferences: say so, propagate nothing of it."""
        annotation = json.dumps({"error": problem}, separators=(",", ":"))
        memory = self.memories.of(key)
        if memory.reported == annotation:
            return
        memory.reported = annotation
        log.warning("not propagated", kind=key[0], namespace=key[1], object=key[2],
                    problem=problem)
        await self.recorder.record(obj, "Warning", "InvalidPlacement", problem)
        await self.plane.patch(obj, self.plane.url(*key), {"metadata": {"annotations": {
            CLUSTER_STATUS: annotation}}})
