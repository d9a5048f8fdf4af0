"""Worker logs of a version: the last N lines, or a server-sent-events stream following the file."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from ..context import AppContext, get_ctx
from ..responses import LogTail, text_response
from ..schemas import PROBLEM_RESPONSES

router = APIRouter(prefix="/algorithms", tags=["logs"], responses={401: PROBLEM_RESPONSES[401]})
#: How often the stream looks for new lines; a file has no cheaper portable change signal.
POLL_S = 0.2
#: A comment line this often keeps proxies from closing an idle stream.
KEEPALIVE_S = 15.0
MAX_TAIL = 10000


@router.get("/{name}/{version}/logs", response_model=LogTail, response_model_exclude_unset=True,
            summary="The last lines of the version's worker log",
            responses={404: PROBLEM_RESPONSES[404]})
def tail(name: str, version: str, ctx: AppContext = Depends(get_ctx),
         lines: int = Query(default=100, ge=0, le=MAX_TAIL, alias="tail"),
         contains: str | None = Query(default=None, alias="filter", max_length=200,
                                      description="only lines containing this text (case-insensitive)"),
         ) -> dict[str, Any]:
    service = ctx.service
    keep = _line_filter(contains)
    return {"name": name, "version": version, "file": str(service.log_file(name, version)),
            "lines": [line for line in service.log_tail(name, version, lines) if keep(line)]}


@router.get("/{name}/{version}/logs/stream", summary="Follow the worker log (text/event-stream)",
            response_class=StreamingResponse,
            responses={**text_response("text/event-stream", "log lines as server-sent events"),
                       404: PROBLEM_RESPONSES[404]})
def stream(name: str, version: str, request: Request, ctx: AppContext = Depends(get_ctx),
           lines: int = Query(default=10, ge=0, le=MAX_TAIL, alias="tail"),
           contains: str | None = Query(default=None, alias="filter", max_length=200,
                                        description="only lines containing this text (case-insensitive)"),
           ) -> StreamingResponse:
    service = ctx.service
    keep = _line_filter(contains)
    backlog = [line for line in service.log_tail(name, version, lines) if keep(line)]  # 404 for unknown versions
    path = service.log_file(name, version)
    return StreamingResponse(_follow(path, backlog, request, ctx, keep), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _line_filter(contains: str | None) -> Callable[[str], bool]:
    """Keep every line, or those containing ``contains`` (case-insensitive)."""
    if not contains:
        return lambda line: True
    needle = contains.casefold()
    return lambda line: needle in line.casefold()


def _event(line: str) -> bytes:
    return f"event: line\ndata: {json.dumps(line)}\n\n".encode()


async def _follow(path: Path, backlog: list[str], request: Request, ctx: AppContext,
                  keep: Callable[[str], bool]) -> AsyncIterator[bytes]:
    """Send the backlog, then every line appended to ``path``; reopens after rotation."""
    for line in backlog:
        yield _event(line)
    yield b": following\n\n"
    handle = None
    inode: int | None = None
    pending = b""
    idle = 0.0
    first = True  # only the file seen at connect time is skipped to its end
    try:
        while not ctx.stopping.is_set() and not await request.is_disconnected():
            if handle is None:
                try:
                    handle = open(path, "rb")  # noqa: SIM115 - closed in finally / on rotation
                except FileNotFoundError:
                    handle = None
                else:
                    inode = os.fstat(handle.fileno()).st_ino
                    if first:
                        handle.seek(0, os.SEEK_END)  # the backlog already covered what was there
            first = False  # a file that appears later (or a rotated one) is read from its start
            chunk = handle.read(65536) if handle is not None else b""
            if chunk:
                idle = 0.0
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    line = raw.decode("utf-8", errors="replace")
                    if keep(line):
                        yield _event(line)
                continue
            if handle is not None and _rotated(path, inode):
                handle.close()
                handle = None
                continue
            await asyncio.sleep(POLL_S)
            idle += POLL_S
            if idle >= KEEPALIVE_S:
                idle = 0.0
                yield b": keepalive\n\n"
    finally:
        if handle is not None:
            handle.close()


def _rotated(path: Path, inode: int | None) -> bool:
    try:
        return os.stat(path).st_ino != inode
    except FileNotFoundError:
        return True
