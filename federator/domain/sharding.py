"""How replicas share the controllers' work: it is split into a fixed number of shards by a
stable hash of the namespace (a namespace's objects stay together, and so do the objects a
workload depends on), each shard held by one replica at a time through a Lease.

Each replica decides alone, from the Leases it sees, which shards to take or give up
(`plan`); nothing but the Leases is shared. With n live replicas and S shards each should
hold S // n or S // n + 1. A replica below S // n + 1 takes free shards (never held, given
up, or unrenewed for longer than their duration); a replica above it gives the excess up;
a replica above S // n gives one up while other live replicas lack more than the free
shards would give them (each should hold S // n at least: the poorer one could not get any
otherwise), and takes none beyond S // n while such a poorer replica may. Which shards is
decided by rendezvous hashing (each replica prefers the shards that rank highest for its
identity), so that two replicas seldom reach for the same free shard, and a replica that
comes back after a restart tends to take the shards it had.

One replica alone holds every shard."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


def shard_of(namespace: str, shards: int) -> int:
    """The shard of a namespace's objects (cluster-scoped objects: namespace ""). A
    cryptographic hash, not Python's `hash` (salted per process): every replica, of any
    version, must agree."""
    digest = hashlib.sha256(namespace.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def namespace_of(kind: str, namespace: str, name: str) -> str:
    """What an object is sharded by: its namespace; a Namespace goes with its objects."""
    return name if kind == "Namespace" and not namespace else namespace


def rank(identity: str, shard: int) -> int:
    """How much `identity` prefers `shard` (rendezvous hashing)."""
    return int.from_bytes(hashlib.sha256(f"{identity}/{shard}".encode()).digest()[:8], "big")


@dataclass(frozen=True)
class Holding:
    """A shard's Lease as one replica sees it: who holds it ("" if nobody) and whether that
    holder renewed it within its duration."""

    holder: str
    live: bool


@dataclass(frozen=True)
class Plan:
    take: tuple[int, ...] = ()
    give: tuple[int, ...] = ()


def plan(shards: int, me: str, holdings: Mapping[int, Holding], replicas: Iterable[str]
         ) -> Plan:
    """Which shards `me` should take and give up now. `holdings` has the shards whose Lease
    exists (a missing one is free); `replicas` are the identities whose own Leases are live
    (`me` counts whether it is among them or not, and so does every live holder)."""
    holders = {h.holder for h in holdings.values() if h.live and h.holder}
    live = holders | set(replicas) | {me}
    base = shards // len(live)
    held: Counter[str] = Counter(h.holder for h in holdings.values()
                                 if h.holder and (h.live or h.holder == me))
    mine = sorted((s for s, h in holdings.items() if h.holder == me),
                  key=lambda s: rank(me, s), reverse=True)  # most preferred first
    ceiling = base + 1 if shards % len(live) or base == 0 else base
    if len(mine) > ceiling:
        return Plan(give=tuple(mine[ceiling:]))
    free = [s for s in range(shards)
            if s not in holdings
            or (holdings[s].holder != me and not (holdings[s].holder and holdings[s].live))]
    short = sum(max(0, base - held[replica]) for replica in live if replica != me)
    if len(mine) > base and short > len(free):
        return Plan(give=(mine[-1],))
    # While another replica holds fewer than its due, free shards are left to it.
    wanted = base if short else ceiling
    if len(mine) >= wanted:
        return Plan()
    free.sort(key=lambda s: rank(me, s), reverse=True)
    return Plan(take=tuple(free[:wanted - len(mine)]))
