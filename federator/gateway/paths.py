"""Which request targets the gateway passes on, and where they go. Pure: no I/O.

The gateway sends a request to an upstream as that upstream's own server plus the path it
was asked for, so the path alone must never be able to name another host or climb out of
where it was sent: `//host:port/x` reads as a URL with a host, `..` segments climb out of
`/clusters/<name>/`, and percent-encoded forms of both (`%2F`, `%2e%2e`) or backslashes do
the same in servers that decode before they resolve. Such targets are refused whole, never
repaired: an apiserver has no resource whose path needs them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

MAX_TARGET = 8 * 1024  # bytes of path and query: longer request lines are refused
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class Target:
    """A request target that is safe to append to an upstream's server: `path` starts with
    one "/" and has no empty, "." or ".." segment; `query` is "" or starts with "?". Both
    stay percent-encoded as they came."""

    path: str
    query: str

    @property
    def path_qs(self) -> str:
        return self.path + self.query


@dataclass(frozen=True)
class Refused:
    """Why a target is not passed on (the message names the part and what to send)."""

    message: str


def parse(raw: str) -> Target | Refused:
    """The request line's target (`request.raw_path`), checked."""
    if len(raw) > MAX_TARGET:
        return Refused(f"the request path is longer than {MAX_TARGET} bytes")
    if any(ord(c) < 0x21 or ord(c) == 0x7F or ord(c) > 0x7E for c in raw):
        return Refused("the request path holds a space, control or non-ASCII character: "
                       "percent-encode it")
    if "#" in raw:
        return Refused("the request path holds a fragment (#)")
    path, mark, query = raw.partition("?")
    if not path.startswith("/"):
        return Refused("the request target must be a path that starts with /, "
                       "not an absolute URL")
    if _PERCENT.search(path):
        return Refused("the request path holds a % that starts no percent-encoded byte")
    segments = path[1:].split("/")
    for index, segment in enumerate(segments):
        decoded = unquote(segment)
        if segment == "" and index < len(segments) - 1:
            return Refused("the request path holds an empty segment (//)")
        if decoded in (".", ".."):
            return Refused(f"the request path holds a {decoded!r} segment")
        if "/" in decoded or "\\" in decoded:
            return Refused("the request path holds a slash or backslash inside a segment "
                           "(%2F, %5C or \\)")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
            return Refused("the request path holds an encoded control character")
    return Target(path, mark + query)


@dataclass(frozen=True)
class MemberTarget:
    """A target under `/clusters/<cluster>/`: the member's name and what to ask it for."""

    cluster: str
    target: Target


def member_target(target: Target) -> MemberTarget | None:
    """`/clusters/<name>/<rest>` split into the member and `/<rest>`; None for any other
    path. `/clusters/<name>` alone asks for the member's root."""
    segments = target.path[1:].split("/")
    if len(segments) < 2 or segments[0] != "clusters" or not segments[1]:
        return None
    rest = "/" + "/".join(segments[2:])
    return MemberTarget(unquote(segments[1]), Target(rest, target.query))
