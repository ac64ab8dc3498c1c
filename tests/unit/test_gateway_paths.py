"""Which request targets the gateway passes on: nothing that could name another host or climb
out of `/clusters/<name>/`, and every ordinary apiserver path unchanged."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federator.gateway.paths import MemberTarget, Refused, Target, member_target, parse
from federator.kube.client import KubeClient
from federator.kube.kubeconfig import Credentials

TRICKS = [
    "//127.0.0.1:9999/x",
    "/clusters/member-1//127.0.0.1:9999/x",
    "/clusters/member-1//api/v1/secrets",
    "/clusters/member-1/../../api/v1/secrets",
    "/clusters/member-1/%2e%2e/%2E%2E/api/v1/secrets",
    "/clusters/member-1/%2F%2F127.0.0.1:9999/x",
    "/%2F%2F127.0.0.1:9999/x",
    "/clusters/member-1/.%2e/api",
    "/api/v1/./secrets",
    "/api/v1/namespaces/default/..",
    "/\\\\127.0.0.1:9999/x",
    "/api%5C..%5Cx",
    "http://127.0.0.1:9999/x",
    "https://127.0.0.1:9999/api/v1/secrets",
    "127.0.0.1:9999/x",
    "*",
    "/api/v1/secrets#frag",
    "/api/v1/se crets",
    "/api/v1/%00secrets",
    "/api/v1/%zz",
    "/api/v1/" + "a" * 9000,
]


@pytest.mark.parametrize("raw", TRICKS)
def test_tricks_are_refused_with_a_reason(raw: str) -> None:
    refused = parse(raw)
    assert isinstance(refused, Refused)
    assert refused.message.startswith("the request")


@pytest.mark.parametrize(("raw", "path", "query"), [
    ("/api/v1/namespaces/default/pods?watch=true&resourceVersion=5",
     "/api/v1/namespaces/default/pods", "?watch=true&resourceVersion=5"),
    ("/apis/", "/apis/", ""),
    ("/", "/", ""),
    ("/api/v1/pods?labelSelector=app%3Dweb%2Ctier%20in%20(a)",
     "/api/v1/pods", "?labelSelector=app%3Dweb%2Ctier%20in%20(a)"),
    ("/api/v1/nodes/n1:10250/proxy/metrics", "/api/v1/nodes/n1:10250/proxy/metrics", ""),
    ("/api/v1/x?next=//evil:1/", "/api/v1/x", "?next=//evil:1/"),  # a query names no host
    ("/api/v1/namespaces/a/configmaps/name.with.dots", "/api/v1/namespaces/a/configmaps/"
     "name.with.dots", ""),
])
def test_ordinary_paths_pass_unchanged(raw: str, path: str, query: str) -> None:
    assert parse(raw) == Target(path, query)
    assert Target(path, query).path_qs == raw


@pytest.mark.parametrize(("raw", "expected"), [
    ("/clusters/member-1/api/v1/pods?watch=1",
     MemberTarget("member-1", Target("/api/v1/pods", "?watch=1"))),
    ("/clusters/member-1/", MemberTarget("member-1", Target("/", ""))),
    ("/clusters/member-1", MemberTarget("member-1", Target("/", ""))),
    ("/clusters/member-1/version", MemberTarget("member-1", Target("/version", ""))),
])
def test_member_targets(raw: str, expected: MemberTarget) -> None:
    target = parse(raw)
    assert isinstance(target, Target)
    assert member_target(target) == expected


@pytest.mark.parametrize("raw", ["/api/v1/pods", "/clusters", "/clusters/", "/apis/clusters"])
def test_other_paths_are_not_member_targets(raw: str) -> None:
    target = parse(raw)
    assert isinstance(target, Target)
    assert member_target(target) is None


SEGMENT = st.text(alphabet=st.sampled_from("ab.%2eEfF5cC/\\:@?#"), max_size=8)


@given(st.lists(SEGMENT, max_size=6))
def test_no_accepted_target_leaves_its_server(segments: list[str]) -> None:
    """Whatever parse accepts, appended to a server, stays at that server, and a member
    target stays under the member's root."""
    raw = "/" + "/".join(segments)
    target = parse(raw)
    if isinstance(target, Refused):
        return
    client = KubeClient(Credentials(server="https://127.0.0.1:6443"))
    url = client.url(target.path_qs, encoded=True)
    assert (url.scheme, url.host, url.port) == ("https", "127.0.0.1", 6443)
    assert ".." not in url.path.split("/") and "//" not in url.path
    at = member_target(target)
    if at is not None:
        inner = client.url(at.target.path_qs, encoded=True)
        assert (inner.host, inner.port) == ("127.0.0.1", 6443)
        assert ".." not in inner.path.split("/")


@pytest.mark.parametrize("path", ["//127.0.0.1:9/x", "http://127.0.0.1:9/x", "x", "@evil/x",
                                  "/\\\\evil/x"])
def test_the_client_sends_its_credential_to_its_own_server_only(path: str) -> None:
    client = KubeClient(Credentials(server="https://127.0.0.1:6443", token="secret-token"))
    with pytest.raises(ValueError, match="not a path of") as caught:
        client.url(path, encoded=True)
    assert "secret-token" not in str(caught.value)


def test_the_client_keeps_a_server_path_prefix() -> None:
    client = KubeClient(Credentials(server="https://127.0.0.1:6443/k8s/clusters/c-1/"))
    assert str(client.url("/api/v1/namespaces/a b")) == \
        "https://127.0.0.1:6443/k8s/clusters/c-1/api/v1/namespaces/a%20b"
