"""HTTP client of the runner API (httpx, with deadlines on every request)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from runner.api.auth import read_token_file
from runner.config import Settings

DEFAULT_URL = "http://127.0.0.1:8765"
TERMINAL_STATES = ("succeeded", "failed")


class ApiError(Exception):
    """The API answered with a problem document (or something unexpected)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.code = str(problem.get("code") or "")
        self.name = str(problem.get("name") or "")
        self.detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
        super().__init__(f"[{self.code} {self.name}] {self.detail}")


class Unreachable(Exception):
    """The daemon could not be reached or did not answer in time."""


def default_url(settings: Settings) -> str:
    """The URL of the daemon configured by ``settings`` (a wildcard bind is reached on loopback)."""
    host = settings.host
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{settings.port}"


def token_for(settings: Settings, explicit: str | None) -> str | None:
    """``--token``, else the configured token (PROCVISION_RUNNER_TOKEN / config), else ``<root>/.token``."""
    if explicit:
        return explicit
    if settings.token:
        return settings.token
    return read_token_file(settings.layout.token_file)


class RunnerClient:
    """Calls the API of one daemon; raises ApiError for problems and Unreachable for transport errors."""

    def __init__(self, url: str, token: str | None, timeout_s: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.timeout = httpx.Timeout(timeout_s, connect=min(5.0, timeout_s))
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=self.timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RunnerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (), **kwargs: Any) -> Any:
        """Send a request; the decoded JSON body (or text) of a 2xx answer, ApiError otherwise."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise Unreachable(f"{self.url} did not answer {method} {path} in time ({exc})") from exc
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach the runner at {self.url}: {exc}; is the daemon running "
                              "(procvision-runner serve) and is --url right?") from exc
        return self._decode(response, ok)

    @staticmethod
    def _decode(response: httpx.Response, ok: tuple[int, ...]) -> Any:
        is_json = "json" in response.headers.get("content-type", "")
        body: Any = response.text
        if is_json:
            try:
                body = response.json()
            except ValueError:
                body = response.text
        if response.is_success or response.status_code in ok:
            return body
        problem = body if isinstance(body, dict) else {"detail": str(body)[:500]}
        raise ApiError(response.status_code, problem)

    # --- endpoints ---------------------------------------------------------------------------------

    def livez(self) -> Any:
        return self.request("GET", "/livez")

    def readyz(self) -> dict[str, Any]:
        return dict(self.request("GET", "/readyz", ok=(503,)))

    def metrics(self) -> str:
        return str(self.request("GET", "/metrics"))

    def install(self, zip_path: Path, *, idempotency_key: str | None = None, by_path: bool = False) -> dict[str, Any]:
        """Start an install; returns the operation."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        if by_path:
            return dict(self.request("POST", "/algorithms/install", json={"path": str(zip_path.resolve())},
                                     headers=headers))
        with open(zip_path, "rb") as handle:
            files = {"file": (zip_path.name, handle, "application/zip")}
            timeout = httpx.Timeout(None, connect=self.timeout.connect)  # big uploads take long
            return dict(self.request("POST", "/algorithms/install", files=files, headers=headers,
                                     timeout=timeout))

    def operation(self, op_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/operations/{op_id}"))

    def wait(self, op_id: str, *, timeout_s: float, on_update: Callable[[dict[str, Any]], None] | None = None,
             poll_s: float = 0.25) -> dict[str, Any]:
        """Poll an operation until it succeeded or failed (or ``timeout_s`` passed: Unreachable)."""
        deadline = time.monotonic() + timeout_s
        while True:
            op = self.operation(op_id)
            if on_update is not None:
                on_update(op)
            if op.get("state") in TERMINAL_STATES:
                return op
            if time.monotonic() > deadline:
                raise Unreachable(f"operation {op_id} did not finish within {timeout_s:.0f} s "
                                  f"(last stage: {op.get('stage')}); check GET /operations/{op_id}")
            time.sleep(poll_s)

    def validate_zip(self, zip_path: Path) -> dict[str, Any]:
        with open(zip_path, "rb") as handle:
            files = {"file": (zip_path.name, handle, "application/zip")}
            return dict(self.request("POST", "/algorithms/validate", files=files,
                                     timeout=httpx.Timeout(None, connect=self.timeout.connect)))

    def validate_installed(self, name: str, version: str, rerun: bool = False) -> dict[str, Any]:
        return dict(self.request("POST", "/algorithms/validate",
                                 json={"name": name, "version": version, "rerun": rerun}))

    def list_versions(self, name: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("name", name), ("state", state)) if v}
        return list(self.request("GET", "/algorithms", params=params))

    def show(self, name: str, version: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/algorithms/{name}/{version}"))

    def active(self) -> dict[str, Any]:
        return dict(self.request("GET", "/algorithms/active"))

    def activate(self, name: str, version: str, pids: list[str], memory_limit_mb: int | None = None
                 ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "version": version, "pids": pids}
        if memory_limit_mb is not None:
            body["memory_limit_mb"] = memory_limit_mb
        return dict(self.request("POST", "/algorithms/activate", json=body))

    def switch(self, name: str, version: str, pids: list[str]) -> dict[str, Any]:
        return dict(self.request("POST", "/algorithms/switch", json={"name": name, "version": version,
                                                                      "pids": pids}))

    def rollback(self, pids: list[str]) -> dict[str, Any]:
        return dict(self.request("POST", "/algorithms/rollback", json={"pids": pids}))

    def deactivate(self, pids: list[str]) -> dict[str, Any]:
        return dict(self.request("POST", "/algorithms/deactivate", json={"pids": pids}))

    def uninstall(self, name: str, version: str, force: bool = False) -> dict[str, Any]:
        return dict(self.request("DELETE", f"/algorithms/{name}/{version}",
                                 params={"force": "true" if force else "false"}))

    def lifecycle(self, action: str, name: str, version: str) -> dict[str, Any]:
        return dict(self.request("POST", f"/algorithms/{name}/{version}/{action}"))

    def execute(self, fields: dict[str, str], files: dict[str, tuple[str, bytes, str]],
                timeout_s: float | None = None) -> dict[str, Any]:
        timeout = httpx.Timeout(timeout_s, connect=self.timeout.connect) if timeout_s else None
        kwargs: dict[str, Any] = {"data": fields, "files": files}
        if timeout is not None:
            kwargs["timeout"] = timeout
        return dict(self.request("POST", "/execute", **kwargs))

    def logs(self, name: str, version: str, tail: int) -> dict[str, Any]:
        return dict(self.request("GET", f"/algorithms/{name}/{version}/logs", params={"tail": tail}))

    def follow_logs(self, name: str, version: str, tail: int) -> Iterator[str]:
        """Yield log lines from the SSE stream until the server ends it."""
        path = f"/algorithms/{name}/{version}/logs/stream"
        # The server sends a keepalive comment every 15 s; 60 s of silence means it is gone.
        timeout = httpx.Timeout(60.0, connect=self.timeout.connect)
        try:
            with self._http.stream("GET", path, params={"tail": tail}, timeout=timeout) as response:
                if not response.is_success:
                    response.read()
                    self._decode(response, ())
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        yield str(json.loads(line[6:]))
        except httpx.TimeoutException as exc:
            raise Unreachable(f"the log stream from {self.url} went silent ({exc})") from exc
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach the runner at {self.url}: {exc}") from exc
