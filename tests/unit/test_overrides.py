from __future__ import annotations

from typing import Any

import pytest

from federator.domain.overrides import PatchError, apply_patch

DOC: dict[str, Any] = {
    "spec": {"replicas": 1, "template": {"spec": {"containers": [{"image": "a"}]}}},
    "metadata": {"labels": {"a/b": "1"}}}


def test_operations() -> None:
    patched = apply_patch(DOC, [
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "b"},
        {"op": "add", "path": "/metadata/labels/tier", "value": "gold"},
        {"op": "remove", "path": "/metadata/labels/a~1b"},
        {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"image": "c"}},
        {"op": "copy", "from": "/spec/replicas", "path": "/spec/copied"},
        {"op": "move", "from": "/spec/copied", "path": "/spec/moved"},
        {"op": "test", "path": "/spec/moved", "value": 1},
    ])
    assert patched["spec"]["template"]["spec"]["containers"] == [{"image": "b"}, {"image": "c"}]
    assert patched["metadata"]["labels"] == {"tier": "gold"}
    assert patched["spec"]["moved"] == 1 and "copied" not in patched["spec"]
    assert DOC["metadata"]["labels"] == {"a/b": "1"}  # the input is unchanged


@pytest.mark.parametrize(("ops", "message"), [
    ([{"op": "remove", "path": "/nope"}], "does not exist"),
    ([{"op": "replace", "path": "spec"}], "must start with '/'"),
    ([{"op": "test", "path": "/spec/replicas", "value": 2}], "test of '/spec/replicas' failed"),
    ([{"op": "add", "path": "/x"}], "add needs 'value'"),
    ([{"op": "frobnicate", "path": "/x"}], "unknown op"),
])
def test_bad_operations(ops: list[dict[str, object]], message: str) -> None:
    with pytest.raises(PatchError, match=message):
        apply_patch(DOC, ops)
