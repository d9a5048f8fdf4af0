"""Receive a package zip from a request body into a file under the runtime root, with a size cap.

Accepted bodies: ``multipart/form-data`` with the zip in the field ``file``, or the raw zip as
``application/zip`` / ``application/octet-stream``. The body is streamed to disk chunk by chunk, so
a 2 GiB package never sits in memory, and the upload stops with 413 as soon as it passes the limit.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fastapi import Request
from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header

from runner.errors import PackageErrorCode, RunnerError
from runner.store.layout import RootLayout
from runner.store.space import raise_if_disk_full

FILE_FIELD = "file"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class ReceivedZip:
    """An uploaded zip on disk. ``discard`` removes it (and its folder)."""

    path: Path
    filename: str
    size: int
    sha256: str

    def discard(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)


def _too_large(limit: int) -> RunnerError:
    return RunnerError(PackageErrorCode.PAYLOAD_TOO_LARGE,
                       f"the upload is larger than max_zip_bytes={limit}; raise the setting or send a smaller zip",
                       max_zip_bytes=limit)


class _Sink:
    """Writes the bytes of one file into ``path`` while hashing and counting them."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.size = 0
        self.digest = hashlib.sha256()
        self.handle: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in finish()/abort()

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise _too_large(self.limit)
        self.digest.update(data)
        self.handle.write(data)

    def finish(self) -> None:
        self.handle.close()


class _MultipartZip:
    """Callbacks for python-multipart that route the ``file`` field into a sink and skip the rest."""

    def __init__(self, sink: _Sink) -> None:
        self.sink = sink
        self.filename = ""
        self.found = False
        self._field = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}
        self._in_file = False
        self.error: RunnerError | None = None

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers, self._field, self._value, self._in_file = {}, b"", b"", False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        if name == FILE_FIELD and not self.found:
            self._in_file, self.found = True, True
            self.filename = params.get(b"filename", b"").decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file and self.error is None:
            try:
                self.sink.write(data[start:end])
            except RunnerError as err:
                self.error = err

    def _part_end(self) -> None:
        self._in_file = False


async def receive_zip(request: Request, layout: RootLayout, limit: int) -> ReceivedZip:
    """Stream the request's zip to ``<root>/.uploads/<id>/upload.zip`` (the layout's ``uploads``, kept
    until its install has finished); 413 past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise _too_large(limit)
    content_type, params = parse_options_header(request.headers.get("content-type"))
    folder = layout.uploads / uuid.uuid4().hex
    try:
        folder.mkdir(parents=True, exist_ok=True)
        sink = _Sink(folder / "upload.zip", limit)
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise_if_disk_full(exc, folder, "receiving the upload")
        raise
    try:
        if content_type == b"multipart/form-data":
            filename = await _receive_multipart(request, sink, params.get(b"boundary"))
        elif content_type in (b"application/zip", b"application/octet-stream", b"application/x-zip-compressed"):
            filename = request.headers.get("x-filename", "")
            async for chunk in request.stream():
                sink.write(chunk)
        else:
            raise RunnerError(PackageErrorCode.INVALID_REQUEST,
                              "send the zip as multipart/form-data (field 'file'), as application/zip, "
                              "or JSON {\"path\": ...} of a zip on the runner's machine",
                              content_type=content_type.decode("latin-1"))
        sink.finish()  # may raise ENOSPC while flushing: handled below like a failed write
        if sink.size == 0:
            raise RunnerError(PackageErrorCode.INVALID_REQUEST, "the uploaded zip is empty")
    except BaseException as exc:
        # Closing flushes the buffer, which fails again on a full disk; the folder is removed anyway.
        with contextlib.suppress(OSError):
            sink.finish()
        shutil.rmtree(folder, ignore_errors=True)
        raise_if_disk_full(exc, folder, "receiving the upload")
        raise
    safe = _SAFE_NAME.sub("_", Path(filename).name) if filename else ""
    final = folder / (safe if safe.lower().endswith(".zip") else "upload.zip")
    if final != sink.path:
        sink.path.rename(final)
    return ReceivedZip(final, filename or final.name, sink.size, sink.digest.hexdigest())


async def _receive_multipart(request: Request, sink: _Sink, boundary: bytes | None) -> str:
    if not boundary:
        raise RunnerError(PackageErrorCode.INVALID_REQUEST, "multipart body without a boundary")
    target = _MultipartZip(sink)
    parser = MultipartParser(boundary, target.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if target.error is not None:
                raise target.error
        parser.finalize()
    except MultipartParseError as exc:
        raise RunnerError(PackageErrorCode.INVALID_REQUEST, f"malformed multipart body: {exc}") from exc
    if not target.found:
        raise RunnerError(PackageErrorCode.INVALID_REQUEST,
                          f"the multipart body has no '{FILE_FIELD}' field; send the zip as file=@package.zip")
    return target.filename
