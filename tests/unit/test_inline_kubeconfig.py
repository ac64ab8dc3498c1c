"""Kubeconfig text from a remote caller (the REST API's join): inline credentials only."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from federator.kube.kubeconfig import CredentialsError, inline_credentials


def _config(user: dict[str, Any], cluster: dict[str, Any] | None = None) -> str:
    return yaml.safe_dump({
        "current-context": "m",
        "contexts": [{"name": "m", "context": {"cluster": "c", "user": "u"}},
                     {"name": "other", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": cluster or {
            "server": "https://10.0.0.1:6443",
            "certificate-authority-data": base64.b64encode(b"CA").decode()}}],
        "users": [{"name": "u", "user": user}]})


def test_inline_token_and_certificates_are_read() -> None:
    creds = inline_credentials(_config({"token": "s3cret"}), None)
    assert (creds.server, creds.ca_pem, creds.token) == ("https://10.0.0.1:6443", b"CA",
                                                          "s3cret")
    assert "s3cret" not in repr(creds)
    pair = {"client-certificate-data": base64.b64encode(b"CERT").decode(),
            "client-key-data": base64.b64encode(b"KEY").decode()}
    creds = inline_credentials(_config(pair), "other")
    assert (creds.cert_pem, creds.key_pem) == (b"CERT", b"KEY")


@pytest.mark.parametrize(("user", "cluster", "says"), [
    ({"exec": {"command": "sh"}}, None, "'exec' is not accepted"),
    ({"auth-provider": {"name": "gcp"}}, None, "'auth-provider' is not accepted"),
    ({"tokenFile": "/etc/shadow"}, None, "'tokenFile' is not accepted"),
    ({"client-certificate": "/root/cert"}, None, "'client-certificate' is not accepted"),
    ({"token": "t"}, {"server": "https://x", "certificate-authority": "/etc/ca"},
     "'certificate-authority' is not accepted"),
    ({"token": "t"}, {"server": "file:///etc/passwd"}, "must be an http(s) URL"),
    ({"client-key-data": "***"}, None, "client-key-data is not base64"),
])
def test_anything_that_runs_or_reads_files_is_refused(user: dict[str, Any],
                                                      cluster: dict[str, Any] | None,
                                                      says: str) -> None:
    with pytest.raises(CredentialsError) as refused:
        inline_credentials(_config(user, cluster), None)
    assert says in str(refused.value)


@pytest.mark.parametrize(("text", "context", "says"), [
    ("{not: [yaml", None, "not YAML"),
    ("- a list", None, "expected a mapping"),
    ("contexts: []", None, "context: the kubeconfig has no current-context"),
    (_config({"token": "t"}), "missing", "contexts has no entry 'missing'"),
])
def test_unreadable_kubeconfigs_say_what_is_wrong(text: str, context: str | None,
                                                  says: str) -> None:
    with pytest.raises(CredentialsError) as refused:
        inline_credentials(text, context)
    assert says in str(refused.value)
