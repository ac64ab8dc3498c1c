"""What a lab pod's containers log, and the kwok Logs object that points at it."""

from __future__ import annotations

import calendar
from pathlib import Path

from federator.lab.podlogs import crd, file_of, lines, logs_object


def test_a_containers_log_names_the_pod_the_container_and_the_cluster() -> None:
    at = calendar.timegm((2026, 12, 5, 1, 0, 0))  # 2026-12-05T01:00:00Z
    text = lines("member-2", "shop", "cart-7d9", "app", at)
    first, *rest = text.splitlines()
    assert first == ("2026-12-05T01:00:00.000000000Z stdout F federator lab: container app "
                     "of pod shop/cart-7d9 in member-2")
    assert rest == ["2026-12-05T01:00:00.000000000Z stdout F cart-7d9: started",
                    "2026-12-05T01:00:00.000000000Z stdout F cart-7d9: serving"]


def test_the_logs_object_is_owned_by_its_pod_and_names_each_containers_file() -> None:
    pod = {"metadata": {"name": "cart-7d9", "namespace": "shop", "uid": "u-1"}}
    files = {c: file_of(Path("/lab/logs"), "shop", "cart-7d9", c) for c in ("app", "side")}
    made = logs_object(pod, files)
    assert made["metadata"]["name"] == "cart-7d9" and made["metadata"]["namespace"] == "shop"
    assert made["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "cart-7d9", "uid": "u-1"}]
    assert made["spec"]["logs"] == [
        {"containers": ["app"], "logsFile": "/lab/logs/shop_cart-7d9_app.log", "follow": True},
        {"containers": ["side"], "logsFile": "/lab/logs/shop_cart-7d9_side.log",
         "follow": True}]
    assert crd()["spec"]["names"]["kind"] == made["kind"] == "Logs"
