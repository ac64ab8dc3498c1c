"""Who the gateway takes a caller for: token file lines, bearer headers, certificates."""

from __future__ import annotations

from pathlib import Path

import pytest

from federator.gateway.auth import (
    TokenFileError,
    User,
    read_tokens,
    user_of_certificate,
    user_of_token,
)


def test_a_token_file_as_kube_apiserver_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text('# operators\nabc,alice,1,"admins,devs"\n\nxyz,bob,2\n')
    tokens = read_tokens(path)
    assert tokens == {"abc": User("alice", ("admins", "devs")), "xyz": User("bob")}
    assert user_of_token(tokens, "Bearer abc") == User("alice", ("admins", "devs"))
    assert user_of_token(tokens, "Bearer abd") is None
    assert user_of_token(tokens, "Basic abc") is None
    assert user_of_token(tokens, None) is None


@pytest.mark.parametrize("line", ["onlytoken", ",alice,1", "abc,,1"])
def test_a_bad_line_is_named(tmp_path: Path, line: str) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text(f"ok,carol,3\n{line}\n")
    with pytest.raises(TokenFileError, match="line 2: expected token,user,uid"):
        read_tokens(path)


def test_a_missing_token_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match=r"gateway\.token_file: cannot read"):
        read_tokens(tmp_path / "absent.csv")


def test_a_certificate_names_user_and_groups() -> None:
    peer = {"subject": ((("organizationName", "devs"),), (("commonName", "alice"),),
                        (("organizationName", "ops"),))}
    assert user_of_certificate(peer) == User("alice", ("devs", "ops"))
    assert user_of_certificate({"subject": ((("organizationName", "devs"),),)}) is None
    assert user_of_certificate(None) is None
