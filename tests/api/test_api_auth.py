"""Auth on and off, problem documents for unknown routes and bad requests, /livez, /docs, /openapi.json."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.api.problems import status_for
from tests.api.support import RunningServer, png_bytes, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("auth") / "root")
    yield srv
    srv.stop()


def _is_problem(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert set(body) >= {"type", "title", "status", "detail", "code", "name", "details"}
    assert status_for(code) == status or code in ("2013", "2009")
    return dict(body)


def test_token_file_is_generated_private(server: RunningServer) -> None:
    path = server.settings.layout.token_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) >= 32


def test_livez_needs_no_token(server: RunningServer) -> None:
    with server.client(token=None) as client:
        assert client.get("/livez").json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/algorithms", "/algorithms/active", "/readyz", "/metrics",
                                  "/operations/abc", "/algorithms/x/1/logs"])
def test_everything_else_needs_the_token(server: RunningServer, path: str) -> None:
    with server.client(token=None) as client:
        body = _is_problem(client.get(path), 401, "2015")
        assert body["name"] == "unauthorized"
        assert client.get(path).headers["www-authenticate"] == "Bearer"
    with server.client(token="not-the-token") as client:
        assert "wrong" in _is_problem(client.get(path), 401, "2015")["detail"]


def test_right_token_is_accepted(server: RunningServer) -> None:
    with server.client() as client:
        assert client.get("/algorithms").json() == []
        assert client.get("/algorithms/active").json() == {}
        schema = client.get("/openapi.json").json()
        assert "/execute" in schema["paths"] and "/algorithms/install" in schema["paths"]
        assert "swagger" in client.get("/docs").text.lower()


def test_unknown_route_and_method_are_problems(server: RunningServer) -> None:
    with server.client() as client:
        _is_problem(client.get("/nope"), 404, "2009")
        _is_problem(client.put("/algorithms/active"), 405, "2013")


def test_unknown_version_and_operation_are_404(server: RunningServer) -> None:
    with server.client() as client:
        body = _is_problem(client.get("/algorithms/ghost/9.9"), 404, "2009")
        assert "ghost 9.9" in body["detail"]
        _is_problem(client.get("/operations/0123"), 404, "2009")
        _is_problem(client.delete("/algorithms/ghost/9.9"), 404, "2009")
        _is_problem(client.post("/algorithms/ghost/9.9/start"), 404, "2009")
        _is_problem(client.get("/algorithms/ghost/9.9/logs"), 404, "2009")


def test_malformed_bodies_are_422(server: RunningServer) -> None:
    with server.client() as client:
        body = _is_problem(client.post("/algorithms/activate", json={"name": "x"}), 422, "2013")
        assert body["details"]["errors"]
        _is_problem(client.post("/algorithms/activate", content=b"{not json",
                                headers={"content-type": "application/json"}), 422, "2013")
        _is_problem(client.post("/algorithms/rollback", json={"pids": []}), 422, "2013")
        _is_problem(client.post("/algorithms/install", json={"path": "relative.zip"}), 422, "2013")
        _is_problem(client.post("/algorithms/install", json={"nope": 1}), 422, "2013")
        _is_problem(client.post("/algorithms/install", content=b"x", headers={"content-type": "text/plain"}),
                    422, "2013")
        _is_problem(client.post("/algorithms/validate", json={"name": "ghost", "version": "1"}), 404, "2009")


def test_execute_on_unbound_pid_is_404(server: RunningServer) -> None:
    with server.client() as client:
        response = client.post("/execute", data={"pid": "NOPE"}, files={"image": ("a.png", png_bytes(), "image/png")})
        _is_problem(response, 404, "2009")
        response = client.post("/execute", data={"pid": "NOPE"}, files={"image": ("a.png", b"\x89PNG", "image/png")})
        _is_problem(response, 422, "1002")


def test_auth_disabled_serves_without_token(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "root", auth_enabled=False)
    try:
        with srv.client(token=None) as client:
            assert client.get("/algorithms").status_code == 200
            assert client.get("/openapi.json").status_code == 200
            assert client.get("/readyz").json() == {"ready": True, "reasons": []}
        assert not srv.settings.layout.token_file.exists()
    finally:
        srv.stop()


def test_configured_token_wins(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "root", token="s3cret-token-for-tests")
    try:
        with srv.client(token="s3cret-token-for-tests") as client:
            assert client.get("/algorithms").status_code == 200
        with srv.client(token=None) as client:
            assert client.get("/algorithms").status_code == 401
        assert not srv.settings.layout.token_file.exists()
    finally:
        srv.stop()
