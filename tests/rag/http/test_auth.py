"""Credentials: what the server accepts, what a client sends, and that secrets never show."""

from __future__ import annotations

import base64

import pytest

from rag.http.auth import check_authorization, client_headers, login_required, refusal_message
from rag.errors import ConfigError
from rag.settings import Settings

KEY = "k3y-with-enough-entropy"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_bearer_key_and_basic_login_are_checked_exactly() -> None:
    both = Settings(api_key=KEY, auth="alice:pa:ss word")
    assert both.login == ("alice", "pa:ss word")  # the password may hold colons and spaces
    assert check_authorization(f"Bearer {KEY}", both)
    assert check_authorization(f"bearer  {KEY} ", both)
    assert check_authorization(_basic("alice", "pa:ss word"), both)
    for wrong in (None, "", f"Bearer {KEY}x", f"Bearer {KEY[:-1]}", "Bearer", KEY, _basic("alice", "pa:ss"),
                  _basic("bob", "pa:ss word"), "Basic !!!notbase64", "Basic " + base64.b64encode(b"\xff\xfe").decode()):
        assert not check_authorization(wrong, both), wrong
    # Each scheme only works when its setting is set.
    assert not check_authorization(_basic("alice", "pa:ss word"), Settings(api_key=KEY))
    assert not check_authorization(f"Bearer {KEY}", Settings(auth="alice:pw"))
    assert not login_required(Settings()) and login_required(Settings(api_key=KEY))
    assert login_required(Settings(auth="alice:pw"))


def test_client_sends_the_key_else_the_login() -> None:
    assert client_headers(Settings()) == {}
    assert client_headers(Settings(api_key=KEY, auth="alice:pw")) == {"Authorization": f"Bearer {KEY}"}
    header = client_headers(Settings(auth="alice:pw"))["Authorization"]
    assert check_authorization(header, Settings(auth="alice:pw"))


def test_secrets_stay_out_of_repr_and_messages() -> None:
    s = Settings(api_key=KEY, auth="alice:hunter2")
    assert KEY not in repr(s) and "hunter2" not in repr(s)
    for sent in (True, False):
        message = refusal_message(s, sent=sent)
        assert KEY not in message and "hunter2" not in message and "RAG_API_KEY" in message and "RAG_AUTH" in message


@pytest.mark.parametrize("env", [{"RAG_AUTH": "alice"}, {"RAG_AUTH": ":hunter2"}, {"RAG_AUTH": "alice:"}])
def test_a_malformed_login_is_refused_without_echoing_it(env: dict) -> None:
    with pytest.raises(ConfigError) as exc:
        Settings.from_env(env)
    assert "RAG_AUTH must be user:password" in str(exc.value)
    assert "hunter2" not in str(exc.value)


def test_a_key_that_cannot_travel_in_a_header_is_refused() -> None:
    with pytest.raises(ConfigError, match="RAG_API_KEY must not contain"):
        Settings.from_env({"RAG_API_KEY": "abc\ndef"})
    assert Settings.from_env({"RAG_API_KEY": KEY}).api_key == KEY
