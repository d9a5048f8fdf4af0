"""When the algorithm cannot be loaded: one coded error frame instead of a hello, then the frames
that still arrive are answered with the same error for a short while, then exit code 3."""

from __future__ import annotations

import select
import traceback
from typing import Any

from .. import protocol
from ..errors import ErrorCode, ProcVisionError
from ..logger import StructuredLogger
from .stdio import ProtocolStreams

#: Exit code when the algorithm cannot be loaded (an error frame was sent first).
EXIT_LOAD_FAILED = 3
#: After a load failure, how long the adapter keeps answering frames (with the load error) before exiting.
LOAD_FAILURE_LINGER_S = 10.0
MAX_MESSAGE_CHARS = 4000


def _tb(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def load_failure(streams: ProtocolStreams, logger: StructuredLogger, exc: BaseException, message: str,
                 max_frame_bytes: int) -> int:
    """Report a load failure as an error frame (request_id null), answer late frames, return exit code 3."""
    logger.error(message, traceback=_tb(exc))
    fields = exc.to_fields() if isinstance(exc, ProcVisionError) else {"error_code": ErrorCode.UNKNOWN_ERROR.value}
    code = str(fields.pop("error_code"))
    fields.pop("error_name", None)
    frame = protocol.make_error(None, message[:MAX_MESSAGE_CHARS], code, **fields)
    try:
        protocol.write_frame(streams.out, frame, max_frame_bytes)
    except (BrokenPipeError, OSError) as write_exc:
        logger.error("cannot report the load failure on the protocol stream", reason=str(write_exc))
        return EXIT_LOAD_FAILED
    _answer_after_load_failure(streams, frame, max_frame_bytes, logger)
    return EXIT_LOAD_FAILED


def _answer_after_load_failure(streams: ProtocolStreams, failure: dict[str, Any], max_frame_bytes: int,
                               logger: StructuredLogger, linger_s: float = LOAD_FAILURE_LINGER_S) -> None:
    """Answer what still arrives with the load error until EOF, shutdown or ``linger_s`` of silence.

    The public adapter says hello before importing and then answers calls with errors, and callers
    written for it send their call before looking at the reply; they get a reply naming the load
    failure instead of a broken pipe. The runner kills the worker on the first error frame anyway.
    """
    fd = streams.inp.fileno()
    while True:
        try:
            ready, _, _ = select.select([fd], [], [], linger_s)
        except (OSError, ValueError):
            return
        if not ready:
            logger.info("no frames after the load failure; exiting", linger_s=linger_s)
            return
        try:
            frame = protocol.read_frame(streams.inp, max_frame_bytes)
        except protocol.ProtocolError:
            return  # EOF, the end marker, or garbage: nothing more to answer
        except (OSError, ValueError):
            return
        kind, rid = frame.get("type"), frame.get("request_id")
        if kind == protocol.CALL:
            reply = dict(failure, request_id=rid if isinstance(rid, str) else None, timestamp_ms=protocol.now_ms())
        elif kind == protocol.PING:
            reply = protocol.make_pong(rid)
        elif kind == protocol.SHUTDOWN:
            reply = protocol.make_shutdown_ack()
        else:
            continue
        try:
            protocol.write_frame(streams.out, reply, max_frame_bytes)
        except (OSError, ValueError):
            return
        if kind == protocol.SHUTDOWN:
            return
