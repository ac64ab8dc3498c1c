"""Who is calling: a bearer token from a token file, or a client certificate verified by the
TLS layer (common name the user, organizations the groups, as Kubernetes reads them)."""

from __future__ import annotations

import csv
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web


class TokenFileError(Exception):
    """A token file that cannot be used; the message names the line."""


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()


USER = web.RequestKey("user", User)  # who a request comes from, once authenticated


def read_tokens(path: Path) -> dict[str, User]:
    """A token file as kube-apiserver's --token-auth-file has it:
    `token,user,uid[,"group1,group2"]` per line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise TokenFileError(f"gateway.token_file: cannot read {path}: {exc.strerror}") from exc
    tokens: dict[str, User] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 3 or not row[0].strip() or not row[1].strip():
            raise TokenFileError(f"gateway.token_file: {path} line {number}: expected "
                                 "token,user,uid[,\"group1,group2\"]")
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
        tokens[row[0].strip()] = User(row[1].strip(), groups)
    return tokens


def user_of_token(tokens: dict[str, User], header: str | None) -> User | None:
    if not header or not header.startswith("Bearer "):
        return None
    offered = header.removeprefix("Bearer ").strip().encode()
    found = None
    for token, user in tokens.items():  # compare with every one: no timing hint
        if hmac.compare_digest(token.encode(), offered):
            found = user
    return found


def user_of_certificate(peercert: dict[str, Any] | None) -> User | None:
    """From ssl's getpeercert() of a verified client certificate."""
    if not peercert:
        return None
    names: list[str] = []
    groups: list[str] = []
    for rdn in peercert.get("subject") or ():
        for key, value in rdn:
            if key == "commonName":
                names.append(value)
            elif key == "organizationName":
                groups.append(value)
    return User(names[0], tuple(groups)) if names else None
