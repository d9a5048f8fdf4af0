"""HTTP client of the runner API, on the standard library (``http.client``), with deadlines everywhere.

The CLI's commands must answer in a fraction of a second; an HTTP library costs more than that to
import, and the API needs only JSON requests, multipart uploads and one server-sent-event stream.
Every request opens its own connection (loopback: cheap) so no stale keep-alive socket can fail one.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode, urlsplit

from .failures import ApiError, Unreachable

__all__ = ["ApiError", "FilePart", "RunnerClient", "Unreachable"]

DEFAULT_URL = "http://127.0.0.1:8765"
TERMINAL_STATES = ("succeeded", "failed")
#: Longest wait for the TCP connection itself, whatever the request's own deadline.
CONNECT_TIMEOUT_S = 5.0
#: How long a log stream may stay silent (the server sends a keepalive every 15 s).
STREAM_SILENCE_S = 60.0
_CHUNK = 1 << 20
#: ``timeout=`` default: the client's own timeout.
_DEFAULT = object()

#: A file part: (file name, bytes or an open binary file, content type).
FilePart = tuple[str, "bytes | IO[bytes]", str]


def _multipart(fields: Mapping[str, str], files: Mapping[str, FilePart]) -> tuple[str, list[bytes | IO[bytes]], int]:
    """Content type, body pieces and total length of a multipart/form-data body (files not read)."""
    boundary = f"procvision-{os.urandom(16).hex()}"
    pieces: list[bytes | IO[bytes]] = []
    length = 0

    def add(piece: bytes | IO[bytes], size: int) -> None:
        nonlocal length
        pieces.append(piece)
        length += size

    for name, value in fields.items():
        part = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n').encode()
        add(part, len(part))
    for name, (filename, content, content_type) in files.items():
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n").encode()
        add(head, len(head))
        if isinstance(content, bytes):
            add(content, len(content))
        else:
            add(content, os.fstat(content.fileno()).st_size - content.tell())
        add(b"\r\n", 2)
    tail = f"--{boundary}--\r\n".encode()
    add(tail, len(tail))
    return f"multipart/form-data; boundary={boundary}", pieces, length


def _stream(pieces: list[bytes | IO[bytes]]) -> Iterable[bytes]:
    for piece in pieces:
        if isinstance(piece, bytes):
            yield piece
        else:
            while block := piece.read(_CHUNK):
                yield block


class RunnerClient:
    """Calls the API of one daemon; raises ApiError for problems and Unreachable for transport errors."""

    def __init__(self, url: str, token: str | None, timeout_s: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Unreachable(f"--url must look like http://HOST:PORT, got {url!r}")
        self.url = url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def close(self) -> None:
        """Nothing stays open between requests; kept so callers can use ``with``."""

    def __enter__(self) -> RunnerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ---------------------------------------------------------------------------------

    def _connect(self, read_timeout_s: float | None) -> http.client.HTTPConnection:
        """A connected connection; reads then wait at most ``read_timeout_s`` (None: no limit)."""
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=min(CONNECT_TIMEOUT_S, read_timeout_s or CONNECT_TIMEOUT_S))
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(read_timeout_s)
        return conn

    def _send(self, method: str, path: str, *, params: Mapping[str, Any] | None, json_body: Any,
              data: Mapping[str, str] | None, files: Mapping[str, FilePart] | None,
              headers: Mapping[str, str] | None, read_timeout_s: float | None
              ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        target = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        all_headers = {**self._headers, "Accept": "application/json", **(headers or {})}
        body: bytes | Iterable[bytes] | None = None
        if files is not None or data is not None:
            content_type, pieces, length = _multipart(data or {}, files or {})
            all_headers.update({"Content-Type": content_type, "Content-Length": str(length)})
            body = _stream(pieces)
        elif json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        elif method in ("POST", "PUT", "PATCH", "DELETE"):
            body = b""
        conn = None
        try:
            conn = self._connect(read_timeout_s)
            conn.request(method, target, body=body, headers=all_headers)
            return conn, conn.getresponse()
        except TimeoutError as exc:
            if conn is not None:
                conn.close()
            raise Unreachable(f"{self.url} did not answer {method} {path} in time ({exc})") from exc
        except (OSError, http.client.HTTPException) as exc:
            if conn is not None:
                conn.close()
            raise Unreachable(f"cannot reach the runner at {self.url}: {exc}; is the daemon running "
                              "(procvision-runner serve) and is --url right?") from exc

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (), params: Mapping[str, Any] | None = None,
                json: Any = None, data: Mapping[str, str] | None = None, files: Mapping[str, FilePart] | None = None,
                headers: Mapping[str, str] | None = None, timeout: float | None | object = _DEFAULT) -> Any:
        """Send a request; the decoded JSON body (or text) of a 2xx answer, ApiError otherwise.

        ``timeout`` bounds each wait for the answer (None: no limit); default the client's timeout.
        """
        read_timeout = self.timeout_s if timeout is _DEFAULT else timeout
        assert read_timeout is None or isinstance(read_timeout, int | float)
        conn, response = self._send(method, path, params=params, json_body=json, data=data, files=files,
                                    headers=headers, read_timeout_s=read_timeout)
        try:
            raw = response.read()
        except TimeoutError as exc:
            raise Unreachable(f"{self.url} did not finish answering {method} {path} in time ({exc})") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise Unreachable(f"the connection to {self.url} broke during {method} {path}: {exc}") from exc
        finally:
            conn.close()
        return self._decode(response.status, response.getheader("content-type") or "", raw, ok)

    @staticmethod
    def _decode(status: int, content_type: str, raw: bytes, ok: tuple[int, ...]) -> Any:
        text = raw.decode("utf-8", "replace")
        body: Any = text
        if "json" in content_type:
            try:
                body = json.loads(text)
            except ValueError:
                body = text
        if 200 <= status < 300 or status in ok:
            return body
        problem = body if isinstance(body, dict) else {"detail": str(body)[:500]}
        raise ApiError(status, problem)

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
            files: dict[str, FilePart] = {"file": (zip_path.name, handle, "application/zip")}
            # A big upload takes long; the daemon answers as soon as it has the whole file.
            return dict(self.request("POST", "/algorithms/install", files=files, headers=headers, timeout=None))

    def operations(self, kind: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("kind", kind), ("state", state)) if v}
        return list(self.request("GET", "/operations", params=params))

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
                                  f"(last stage: {op.get('stage')}); check `procvision-runner operation {op_id}`")
            time.sleep(poll_s)

    def validate_zip(self, zip_path: Path) -> dict[str, Any]:
        with open(zip_path, "rb") as handle:
            files: dict[str, FilePart] = {"file": (zip_path.name, handle, "application/zip")}
            return dict(self.request("POST", "/algorithms/validate", files=files, timeout=None))

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
        parts: dict[str, FilePart] = dict(files)
        if timeout_s:
            return dict(self.request("POST", "/execute", data=fields, files=parts, timeout=timeout_s))
        return dict(self.request("POST", "/execute", data=fields, files=parts))

    def logs(self, name: str, version: str, tail: int) -> dict[str, Any]:
        return dict(self.request("GET", f"/algorithms/{name}/{version}/logs", params={"tail": tail}))

    def follow_logs(self, name: str, version: str, tail: int) -> Iterator[str]:
        """Yield log lines from the SSE stream until the server ends it."""
        path = f"/algorithms/{name}/{version}/logs/stream"
        conn, response = self._send("GET", path, params={"tail": tail}, json_body=None, data=None, files=None,
                                    headers={"Accept": "text/event-stream"}, read_timeout_s=STREAM_SILENCE_S)
        try:
            if not 200 <= response.status < 300:
                self._decode(response.status, response.getheader("content-type") or "", response.read(), ())
            while True:
                try:
                    raw = response.readline()
                except TimeoutError as exc:
                    raise Unreachable(f"the log stream from {self.url} went silent ({exc})") from exc
                except (OSError, http.client.HTTPException) as exc:
                    raise Unreachable(f"cannot reach the runner at {self.url}: {exc}") from exc
                if not raw:
                    return
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("data: "):
                    yield str(json.loads(line[6:]))
        finally:
            conn.close()
