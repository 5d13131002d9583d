"""The server's pure parts: when it may listen without a token, its session cookies,
host names and page cursors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from starlette.requests import Request

from orchestrator.browsing import decode_cursor, encode_cursor
from orchestrator.config import ServerAuth
from orchestrator.errors import InvalidCursor
from orchestrator.server.auth import ADMIN, READ, SESSION_COOKIE, Guard, host_name, same_origin


def request(
    headers: dict[str, str] | None = None, cookies: dict[str, str] | None = None
) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if cookies:
        raw.append((b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode()))
    return Request({"type": "http", "headers": raw, "method": "GET", "path": "/"})


@pytest.mark.parametrize(
    ("auth", "host", "refused"),
    [
        (ServerAuth(), "127.0.0.1", False),
        (ServerAuth(), "localhost", False),
        (ServerAuth(), "::1", False),
        (ServerAuth(), "0.0.0.0", True),
        (ServerAuth(), "10.1.2.3", True),
        (ServerAuth(token="t" * 20), "0.0.0.0", False),
        (ServerAuth(read_token="r" * 20), "127.0.0.1", True),
        (ServerAuth(token="same", read_token="same"), "127.0.0.1", True),
    ],
)
def test_who_may_listen_where(auth: ServerAuth, host: str, refused: bool) -> None:
    problem = auth.problem(host)
    assert (problem is not None) == refused
    if refused and auth.token is None and auth.read_token is None:
        assert "ORCHESTRATOR_SERVER_TOKEN" in (problem or "")


def test_bearer_tokens_grant_their_roles() -> None:
    guard = Guard(ServerAuth(token="admin-token", read_token="read-token"))
    assert guard.role(request({"Authorization": "Bearer admin-token"})) == ADMIN
    assert guard.role(request({"Authorization": "Bearer read-token"})) == READ
    assert guard.role(request({"Authorization": "Bearer wrong"})) is None
    assert guard.role(request()) is None
    assert Guard(ServerAuth()).role(request()) == ADMIN


def test_a_session_cookie_is_signed_expires_and_never_holds_the_token() -> None:
    guard = Guard(ServerAuth(token="admin-token", read_token="read-token"))
    cookie = guard.session(READ)
    assert "read-token" not in cookie and "admin-token" not in cookie
    assert guard.session_role(request(cookies={SESSION_COOKIE: cookie})) == READ
    forged = cookie.replace("read.", "admin.", 1)
    assert guard.session_role(request(cookies={SESSION_COOKIE: forged})) is None
    old = guard.session(ADMIN, now=0)
    assert guard.session_role(request(cookies={SESSION_COOKIE: old})) is None
    other = Guard(ServerAuth(token="another-token"))
    assert other.session_role(request(cookies={SESSION_COOKIE: cookie})) is None


def test_host_names_and_origins() -> None:
    assert host_name("127.0.0.1:4200") == "127.0.0.1"
    assert host_name("[::1]:4200") == "::1"
    assert host_name("Evil.Example") == "evil.example"
    here = {"Host": "127.0.0.1:4200"}
    assert same_origin(request({**here, "Origin": "http://127.0.0.1:4200"}))
    assert not same_origin(request({**here, "Origin": "http://evil.example"}))
    assert not same_origin(request({**here, "Origin": "null"}))
    assert same_origin(request({**here, "Sec-Fetch-Site": "same-origin", "Origin": "null"}))
    assert not same_origin(request({**here, "Sec-Fetch-Site": "cross-site"}))
    assert same_origin(request(here))


def test_cursors_round_trip_and_refuse_anything_else() -> None:
    moment = datetime(2026, 12, 3, 14, 0, 0, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(moment, "run-id"), str) == (moment, "run-id")
    assert decode_cursor(encode_cursor(moment, 42), int) == (moment, 42)
    for bad in ("", "not-a-cursor", encode_cursor(moment, "x")[:-3]):
        with pytest.raises(InvalidCursor):
            decode_cursor(bad, str)
    with pytest.raises(InvalidCursor):
        decode_cursor(encode_cursor(moment, "run-id"), int)
