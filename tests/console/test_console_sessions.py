"""Console sign-in against a real daemon: the cookie, CSRF on changes, Origin checks, expiry, sign-out,
bearer clients unchanged, and --no-auth. The browser flow itself is in test_console_in_browser.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runner.console.sessions import COOKIE_NAME, CSRF_HEADER, SessionStore
from tests.api.support import RunningServer, start_server


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("console-sessions") / "root")
    try:
        yield srv
    finally:
        srv.stop()


def _signed_in(server: RunningServer) -> tuple[httpx.Client, str]:
    client = server.client(token=None)
    answer = client.post("/console/session", json={"token": server.token})
    assert answer.status_code == 200, answer.text
    return client, answer.json()["csrf"]


def test_the_page_is_served_at_root_without_auth(server: RunningServer) -> None:
    with server.client(token=None) as client:
        page = client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "/console/static/js/main.js" in page.text
        script = client.get("/console/static/js/core.js")
        assert script.status_code == 200 and "X-CSRF-Token" in script.text
        assert client.get("/console/session").json() == {"auth_enabled": True, "signed_in": False, "csrf": None}


def test_wrong_token_is_a_401_with_a_clear_message(server: RunningServer) -> None:
    with server.client(token=None) as client:
        answer = client.post("/console/session", json={"token": "not-the-token"})
        assert answer.status_code == 401
        assert answer.json()["code"] == "2015" and "wrong token" in answer.json()["detail"]
        assert COOKIE_NAME not in answer.cookies


def test_sign_in_sets_an_httponly_strict_cookie_that_authenticates_reads(server: RunningServer) -> None:
    client = server.client(token=None)
    answer = client.post("/console/session", json={"token": server.token})
    cookie = answer.headers["set-cookie"]
    assert f"{COOKIE_NAME}=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert client.get("/algorithms").status_code == 200
    assert client.get("/console/calls").json() == []
    assert client.get("/console/session").json()["csrf"] == answer.json()["csrf"]
    client.close()


def test_changes_by_cookie_need_the_csrf_token_and_this_origin(server: RunningServer) -> None:
    client, csrf = _signed_in(server)
    body = {"pids": ["NOPE"]}
    missing = client.post("/algorithms/deactivate", json=body)
    assert missing.status_code == 403 and missing.json()["code"] == "2060"
    wrong = client.post("/algorithms/deactivate", json=body, headers={CSRF_HEADER: csrf + "x"})
    assert wrong.status_code == 403 and wrong.json()["code"] == "2060"
    foreign = client.post("/algorithms/deactivate", json=body,
                          headers={CSRF_HEADER: csrf, "Origin": "http://evil.example"})
    assert foreign.status_code == 403 and "cross-origin" in foreign.json()["detail"]
    cross_site = client.post("/algorithms/deactivate", json=body,
                             headers={CSRF_HEADER: csrf, "Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403
    # With the token (and this origin) the request reaches the route: it answers for itself.
    origin = server.url.rstrip("/")
    allowed = client.post("/algorithms/deactivate", json=body, headers={CSRF_HEADER: csrf, "Origin": origin})
    assert allowed.status_code != 403, allowed.text
    client.close()


def test_sign_out_ends_the_session(server: RunningServer) -> None:
    client, csrf = _signed_in(server)
    assert client.delete("/console/session").status_code == 403  # sign-out is a change: CSRF token needed
    out = client.delete("/console/session", headers={CSRF_HEADER: csrf})
    assert out.status_code == 200
    cookie = client.cookies.get(COOKIE_NAME)
    assert cookie is None
    # The old cookie value is dead even if a browser kept it.
    client.close()


def test_a_signed_out_cookie_is_refused(server: RunningServer) -> None:
    client, csrf = _signed_in(server)
    stale = client.cookies.get(COOKIE_NAME)
    client.delete("/console/session", headers={CSRF_HEADER: csrf})
    with server.client(token=None) as other:
        other.cookies.set(COOKIE_NAME, stale or "")
        refused = other.get("/algorithms")
        assert refused.status_code == 401 and "sign in again" in refused.json()["detail"]
    client.close()


def test_bearer_clients_are_unchanged(server: RunningServer) -> None:
    with server.client() as client:
        assert client.get("/algorithms").status_code == 200
        # No cookie, no CSRF token: a bearer client changes state as before.
        assert client.post("/algorithms/deactivate", json={"pids": ["NOPE"]}).status_code != 403
    with server.client(token="wrong") as client:
        assert client.get("/algorithms").status_code == 401


def test_sessions_expire_and_stay_bounded() -> None:
    clock = Clock()
    store = SessionStore(max_sessions=2, ttl_s=60.0, clock=clock)
    first = store.create()
    second = store.create()
    third = store.create()  # the oldest makes room
    assert store.get(first.id) is None and store.get(second.id) is not None and len(store) == 2
    assert third.csrf_matches(third.csrf) and not third.csrf_matches(second.csrf) and not third.csrf_matches(None)
    clock.now += 61
    assert store.get(third.id) is None and len(store) == 0


def test_without_auth_the_console_needs_no_sign_in(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "root", auth_enabled=False)
    try:
        with srv.client(token=None) as client:
            assert client.get("/console/session").json()["signed_in"] is True
            assert client.get("/console/health").status_code == 200
            assert client.get("/").status_code == 200
    finally:
        srv.stop()


def test_console_disabled_serves_no_page_and_takes_no_cookie(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "root", console_enabled=False)
    try:
        with srv.client(token=None) as client:
            assert client.get("/").status_code == 404
            assert client.post("/console/session", json={"token": srv.token}).status_code == 404
            client.cookies.set(COOKIE_NAME, "anything")
            assert client.get("/algorithms").status_code == 401
        with srv.client() as client:
            assert client.get("/console/calls").status_code == 404
            assert client.get("/algorithms").status_code == 200
    finally:
        srv.stop()
