"""JSON Patch (RFC 6902) on plain JSON values: the per-cluster overrides of a policy."""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """An operation that cannot be applied; the message names it."""


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"path {pointer!r} must start with '/'")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _parent(doc: Any, pointer: str) -> tuple[Any, str]:
    tokens = _tokens(pointer)
    if not tokens:
        raise PatchError("the whole document cannot be the target of this operation")
    node = doc
    for token in tokens[:-1]:
        node = _child(node, token, pointer)
    return node, tokens[-1]


def _child(node: Any, token: str, pointer: str) -> Any:
    if isinstance(node, dict) and token in node:
        return node[token]
    if isinstance(node, list) and token.isdigit() and int(token) < len(node):
        return node[int(token)]
    raise PatchError(f"path {pointer!r} does not exist")


def _get(doc: Any, pointer: str) -> Any:
    node = doc
    for token in _tokens(pointer):
        node = _child(node, token, pointer)
    return node


def _add(doc: Any, pointer: str, value: Any) -> None:
    parent, last = _parent(doc, pointer)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise PatchError(f"path {pointer!r}: index out of range")
    else:
        raise PatchError(f"path {pointer!r}: parent is not an object or array")


def _remove(doc: Any, pointer: str) -> Any:
    parent, last = _parent(doc, pointer)
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise PatchError(f"path {pointer!r} does not exist")


def apply_patch(doc: Any, operations: list[dict[str, Any]]) -> Any:
    """A patched copy of `doc`; the input is not changed. PatchError if any operation fails
    (then nothing is applied)."""
    result = copy.deepcopy(doc)
    for number, op in enumerate(operations):
        kind, where = op.get("op"), op.get("path", "")
        try:
            if kind == "add":
                _add(result, where, copy.deepcopy(op["value"]))
            elif kind == "remove":
                _remove(result, where)
            elif kind == "replace":
                _remove(result, where)
                _add(result, where, copy.deepcopy(op["value"]))
            elif kind == "move":
                _add(result, where, _remove(result, op["from"]))
            elif kind == "copy":
                _add(result, where, copy.deepcopy(_get(result, op["from"])))
            elif kind == "test":
                if _get(result, where) != op["value"]:
                    raise PatchError(f"test of {where!r} failed")
            else:
                raise PatchError(f"unknown op {kind!r}")
        except KeyError as exc:
            raise PatchError(f"patch {number}: {kind} needs {exc.args[0]!r}") from exc
        except PatchError as exc:
            raise PatchError(f"patch {number} ({kind} {where}): {exc}") from exc
    return result
