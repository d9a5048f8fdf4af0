"""A small client for programs on the station itself: frames go through shared memory, not HTTP.

::

    from runner.client import LocalClient

    with LocalClient.from_root("/var/lib/procvision") as client:    # or LocalClient(uds="/run/pv.sock")
        with client.lease_slot((1200, 1920, 3)) as slot:
            camera.grab_into(slot.frame)               # write the frame into the slot yourself
            result = slot.execute("P001", step_index=1)

The daemon creates the slot's memory and gives it only to the caller that leased it (a secret key
travels with every call); the request carries no image bytes. Talks HTTP over TCP (``url``) or the
daemon's Unix socket (``uds``, see ``serve --uds``). Only the standard library and numpy.
"""

from __future__ import annotations

import json
import mmap
import os
import urllib.parse
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from runner.store.layout import RootLayout  # standard library only, like this module

from .connection import DEFAULT_MAX_IDLE_S, Connection


class LocalClientError(Exception):
    """The daemon refused a request: ``status``, ``code`` (e.g. "2051") and its problem ``body``."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.code = str(body.get("code", ""))
        self.body = body
        super().__init__(f"HTTP {status} {self.code} {body.get('name', '')}: {body.get('detail', body)}")


class LocalClient:
    """One keep-alive connection to the daemon (not thread-safe: one client per thread).

    A connection the daemon closed while idle (after its ``http_keep_alive_s``), or unused for
    ``max_idle_s`` (keep it under the daemon's keep-alive), is reopened before the next request is
    sent. ``timeout_s`` bounds the connect and every read and write.
    """

    def __init__(self, url: str = "http://127.0.0.1:8765", token: str | None = None, *, uds: str | None = None,
                 timeout_s: float = 60.0, max_idle_s: float = DEFAULT_MAX_IDLE_S) -> None:
        if uds is not None:
            self.connection = Connection(uds=uds, timeout_s=timeout_s, max_idle_s=max_idle_s)
        else:
            parts = urllib.parse.urlsplit(url)
            self.connection = Connection(host=parts.hostname or "127.0.0.1", port=parts.port or 80,
                                         timeout_s=timeout_s, max_idle_s=max_idle_s)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    @classmethod
    def from_root(cls, root: str | Path, url: str = "http://127.0.0.1:8765", **kwargs: Any) -> LocalClient:
        """A client using the token file of the daemon's root (``<root>/.token``), if there is one."""
        token_file = RootLayout(Path(root)).token_file
        token = token_file.read_text().strip() if token_file.exists() else None
        return cls(url, token, **kwargs)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        """One request: (status, headers with lower-case names, decoded JSON or None); LocalClientError on >= 400."""
        answer = self.connection.request(method, path, {**self._headers, **(headers or {})}, body or b"")
        try:
            data = json.loads(answer.body) if answer.body else None
        except ValueError:
            if answer.status < 400:
                raise
            data = None
        if answer.status >= 400:
            raise LocalClientError(answer.status, data if isinstance(data, dict) else {"detail": answer.body[:500]})
        return answer.status, answer.headers, data

    def lease_slot(self, shape: tuple[int, ...]) -> FrameSlot:
        """Lease a frame slot for frames of ``shape`` (uint8, [H, W] or [H, W, 3])."""
        payload = json.dumps({"shape": list(shape), "client_pid": os.getpid()}).encode()
        _status, _headers, lease = self.request("POST", "/fastpath/slots", payload,
                                                {"Content-Type": "application/json"})
        return FrameSlot(self, lease)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> LocalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FrameSlot:
    """A leased slot: ``frame`` is a writable array over its shared memory."""

    def __init__(self, client: LocalClient, lease: dict[str, Any]) -> None:
        self.client = client
        self.slot_id = str(lease["slot_id"])
        self.key = str(lease["key"])
        self.path = str(lease["path"])
        self.shape = tuple(int(n) for n in lease["shape"])
        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        try:
            self._mm: mmap.mmap | None = mmap.mmap(fd, int(np.prod(self.shape)))
        finally:
            os.close(fd)
        self.frame = np.frombuffer(self._mm, dtype=np.uint8).reshape(self.shape)
        #: ``Server-Timing`` of the last call.
        self.server_timing = ""

    def execute(self, pid: str, **fields: Any) -> dict[str, Any]:
        """Run ``/execute`` on the frame now in the slot; ``fields`` as for /execute (dicts become JSON)."""
        query = {"pid": pid, "slot": self.slot_id}
        for name, value in fields.items():
            query[name] = json.dumps(value) if isinstance(value, dict | list) else str(value)
        _status, headers, result = self.client.request(
            "POST", "/execute?" + urllib.parse.urlencode(query), None, {"X-Slot-Key": self.key})
        self.server_timing = headers.get("server-timing", "")
        return dict(result)

    def release(self) -> None:
        """Give the slot back (also done on ``with`` exit)."""
        if self._mm is None:
            return
        del self.frame
        self._mm.close()
        self._mm = None
        self.client.request("DELETE", f"/fastpath/slots/{self.slot_id}", None, {"X-Slot-Key": self.key})

    def __enter__(self) -> FrameSlot:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
