"""The RFC 2136 provider against a real BIND 9: records appear, change and go; a record
someone else put in the zone is never touched; a start reads the zone and removes our stale
records; a badly signed update is reported, not raised."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from federator.dns.rfc2136 import Rfc2136Provider, Rfc2136Settings, UpdateRefused
from federator.domain.dns import RecordSet
from tests.bind import KEY_NAME, Bind

pytestmark = pytest.mark.integration
ZONE = "fed.example"
WEB = f"web.shop.fed.svc.{ZONE}"
THEIRS = f"api.shop.fed.svc.{ZONE}"


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[Bind]:
    server = Bind(tmp_path / "bind", ZONE, records=f"{THEIRS.removesuffix('.' + ZONE)} "
                                                   "IN A 192.0.2.99\n")
    yield server
    server.stop()


def _provider(bind: Bind, problems: list[str], secret: str | None = None, batch: int = 2,
              algorithm: str = "hmac-sha256") -> Rfc2136Provider:
    return Rfc2136Provider(Rfc2136Settings("127.0.0.1", ZONE, KEY_NAME,
                                           secret or bind.secret, port=bind.port, batch=batch,
                                           algorithm=algorithm),
                           "fed", on_problem=problems.append)


def test_changes_go_in_batches_of_names(bind: Bind) -> None:
    """Five names with `batch` 2 are three UPDATE messages (BIND's serial counts them), with
    `batch` 20 one."""
    names = [f"n{i}.shop.fed.svc.{ZONE}" for i in range(5)]
    for batch, updates in ((2, 3), (20, 1)):
        problems: list[str] = []
        provider = _provider(bind, problems, batch=batch)
        asyncio.run(provider.apply([]))  # the zone read first, as at a start
        before = bind.serial()
        asyncio.run(provider.apply([RecordSet(name, "A", 30, (f"127.0.{batch}.1",))
                                    for name in names]))
        assert bind.serial() - before == updates
        assert all(bind.dig(name) == [f"127.0.{batch}.1"] for name in names)
        assert not problems


def test_a_key_of_another_algorithm(tmp_path: Path) -> None:
    """A BIND key of hmac-sha512 takes updates signed with `algorithm: hmac-sha512`; signed
    with the default hmac-sha256 they are refused, and the message names the algorithm."""
    server = Bind(tmp_path / "bind512", ZONE, algorithm="hmac-sha512")
    try:
        problems: list[str] = []
        asyncio.run(_provider(server, problems, algorithm="hmac-sha512").apply(
            [RecordSet(WEB, "A", 30, ("127.0.0.5",))]))
        assert server.dig(WEB) == ["127.0.0.5"] and not problems
        with pytest.raises(UpdateRefused) as refused:
            asyncio.run(_provider(server, problems).apply([]))
        assert "algorithm" in str(refused.value) and server.secret not in str(refused.value)
    finally:
        server.stop()


def test_records_are_kept_in_bind_and_others_left_alone(bind: Bind) -> None:
    problems: list[str] = []
    provider = _provider(bind, problems)
    desired = [RecordSet(WEB, "A", 30, ("127.0.0.1", "127.0.0.2")),
               RecordSet(WEB, "AAAA", 30, ("2001:db8::1",)),
               RecordSet(f"web.shop.fed.svc.eu.{ZONE}", "CNAME", 30, (WEB,)),
               RecordSet(THEIRS, "A", 30, ("127.9.9.9",))]  # someone else's name
    asyncio.run(provider.apply(desired))
    assert bind.dig(WEB) == ["127.0.0.1", "127.0.0.2"]
    assert bind.dig(WEB, "AAAA") == ["2001:db8::1"]
    assert bind.dig(f"web.shop.fed.svc.eu.{ZONE}", "CNAME") == [WEB + "."]
    assert bind.dig(f"_federator.{WEB}", "TXT") == ['"heritage=federator,federation=fed"']
    assert bind.dig(THEIRS) == ["192.0.2.99"]  # not ours: untouched
    assert problems == [f"{THEIRS} holds records federator did not create: left alone"]

    # Change one level to a CNAME, drop the other name: only what changed is sent.
    asyncio.run(provider.apply([RecordSet(WEB, "CNAME", 30, (f"other.{ZONE}",))]))
    assert bind.dig(WEB, "CNAME") == [f"other.{ZONE}."]
    assert bind.dig(WEB, "A") == [f"other.{ZONE}."]  # dig +short shows the chain
    assert bind.dig(f"web.shop.fed.svc.eu.{ZONE}", "CNAME") == []
    assert bind.dig(f"_federator.web.shop.fed.svc.eu.{ZONE}", "TXT") == []
    assert bind.dig(THEIRS) == ["192.0.2.99"]


def test_a_start_reads_the_zone_and_removes_stale_records(bind: Bind) -> None:
    problems: list[str] = []
    asyncio.run(_provider(bind, problems).apply([RecordSet(WEB, "A", 30, ("127.0.0.1",)),
                                                 RecordSet(f"old.{ZONE}", "A", 30,
                                                           ("127.0.0.3",))]))
    fresh = _provider(bind, problems)  # a restarted federator: knows nothing yet
    asyncio.run(fresh.apply([RecordSet(WEB, "A", 30, ("127.0.0.1",))]))
    assert bind.dig(f"old.{ZONE}") == [] and bind.dig(WEB) == ["127.0.0.1"]
    assert bind.dig(THEIRS) == ["192.0.2.99"]
    assert not problems


def test_a_record_taken_meanwhile_is_left_to_its_owner(bind: Bind) -> None:
    problems: list[str] = []
    provider = _provider(bind, problems)
    asyncio.run(provider.apply([]))  # the zone read: WEB is free
    intruder = _provider(bind, [])
    intruder.federation = "other"  # another federation takes WEB first
    asyncio.run(intruder.apply([RecordSet(WEB, "A", 30, ("10.7.7.7",))]))
    asyncio.run(provider.apply([RecordSet(WEB, "A", 30, ("127.0.0.1",))]))
    assert bind.dig(WEB) == ["10.7.7.7"]
    assert problems == [f"{WEB} holds records federator did not create: left alone"]


def test_a_badly_signed_update_is_refused_and_reported(bind: Bind) -> None:
    problems: list[str] = []
    wrong = _provider(bind, problems, secret="d3Jvbmcgc2VjcmV0IG9mIDMyIGJ5dGVzISEhISEhISE=")
    for what, current in (("a transfer", None), ("an update", [])):
        wrong.current = current  # [] skips the transfer: the update itself is refused
        with pytest.raises(UpdateRefused) as refused:
            asyncio.run(wrong.apply([RecordSet(WEB, "A", 30, ("127.0.0.1",))]))
        assert f"did not accept the TSIG signature of {what}" in str(refused.value)
        assert f"key {KEY_NAME}" in str(refused.value) and wrong.settings.key_secret not in str(
            refused.value)

    # Retried with backoff: the waits it asks for (its `sleep`, recorded instead of
    # slept) start at 0.05 s and double up to 0.4 s, each drawn from 0.5x to 1.5x; every
    # try is refused and reported, and nothing reaches the zone.
    problems.clear()
    waits: list[float] = []

    async def run_until_six_waits() -> None:
        enough = asyncio.Event()

        async def recorded(seconds: float) -> None:
            waits.append(seconds)
            if len(waits) >= 6:
                enough.set()
            await asyncio.sleep(0)  # a turn of the loop instead of the wait

        task = asyncio.ensure_future(wrong.run(lambda: [], asyncio.Event(), backoff_min=0.05,
                                               backoff_max=0.4, sleep=recorded))
        await enough.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run_until_six_waits())
    assert len(problems) >= 6 and all("did not accept the TSIG signature" in p
                                      for p in problems), problems
    for wait, base in zip(waits, (0.05, 0.1, 0.2, 0.4, 0.4, 0.4), strict=False):
        assert 0.5 * base <= wait <= 1.5 * base, waits
    assert bind.dig(WEB) == []
