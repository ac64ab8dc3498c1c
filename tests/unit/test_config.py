from __future__ import annotations

from pathlib import Path

import pytest

from federator import config
from tests.cli import federator_here as federator


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    file = tmp_path / "f.yaml"
    file.write_text("probe: {period: 5, timeout: 1}\nhttp: {port: 1000}\n")
    settings = config.load(file, {"FEDERATOR_PROBE__PERIOD": "7", "FEDERATOR_CACHE": "/x"},
                           {"http": {"port": 2000}})
    assert settings.probe.period == 7.0
    assert settings.probe.timeout == 1.0
    assert settings.http.port == 2000
    assert settings.leader_election.lease_duration == 10.0


def test_the_shipped_file_is_valid() -> None:
    settings = config.load(Path("config/federator.yaml"), {}, {})
    assert settings.plane_context == "federation"
    assert settings.probe.failure_threshold == 3


@pytest.mark.parametrize(("environ", "message"), [
    ({"FEDERATOR_PROBE__PERIOD": "-1"},
     "probe.period (file key, or FEDERATOR_PROBE__PERIOD): Input should be greater than 0"),
    ({"FEDERATOR_PROBE__PERIODE": "1"}, "probe.periode"),
    ({"FEDERATOR_LEADER_ELECTION__RENEW_DEADLINE": "20"},
     "need retry_period < renew_deadline < lease_duration"),
    ({"FEDERATOR_DNS__RFC2136__ENABLED": "true"},
     "key_secret_file: a TSIG secret is needed to send updates"),
    ({"FEDERATOR_DNS__RFC2136__ALGORITHM": "rot13"}, "dns.rfc2136.algorithm"),
])
def test_bad_settings_name_the_field(environ: dict[str, str], message: str) -> None:
    with pytest.raises(config.SettingsError, match=message.replace("(", r"\(").replace(
            ")", r"\)")):
        config.load(None, environ, {})


def test_serve_with_bad_settings_is_one_line(tmp_path: Path) -> None:
    file = tmp_path / "f.yaml"
    file.write_text("log: {level: loud}\n")
    done = federator("serve", "--config", str(file))
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1
    assert "log.level" in done.stderr
