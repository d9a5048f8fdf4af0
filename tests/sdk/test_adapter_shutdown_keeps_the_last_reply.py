"""A shutdown that arrives while a call runs must not lose that call's reply.

The call thread marks the worker idle before it writes the reply; the main thread then tears down,
writes the shutdown ack and returns. If the main thread did not wait for the reply's write, the
process could exit with the reply unwritten (seen once in CI under load: the client got the ack and
then end of file instead of the result).
"""

from __future__ import annotations

import io
import os
import threading
import time
from typing import Any

from procvision_algorithm_sdk import BaseAlgorithm, protocol
from procvision_algorithm_sdk.adapter.server import AdapterServer
from procvision_algorithm_sdk.adapter.stdio import ProtocolStreams
from procvision_algorithm_sdk.logger import StructuredLogger

#: How long the runner takes to drain a reply: long enough that, without the wait, teardown runs
#: while the reply is still being written.
SLOW_DRAIN_S = 0.5


class _SlowDrain(io.BytesIO):
    """The worker's stdout as seen through a runner that reads replies slowly."""

    def write(self, data: Any) -> int:
        if protocol.read_frame(io.BytesIO(bytes(data)))["type"] == protocol.RESULT:
            time.sleep(SLOW_DRAIN_S)  # the slow reader under test, not a wait for a condition
        return super().write(data)


class _GatedAlgorithm(BaseAlgorithm):
    def __init__(self, out: io.BytesIO) -> None:
        super().__init__()
        self.out = out
        self.started = threading.Event()
        self.release = threading.Event()
        self.reply_written_before_teardown: bool | None = None

    def get_info(self) -> dict[str, Any]:
        return {"name": "gated", "version": "1.0.0", "supported_pids": ["P"], "steps": []}

    def pre_execute(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"status": "OK"}

    def execute(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.started.set()
        assert self.release.wait(30)
        return {"status": "OK", "data": {"result_status": "OK"}}

    def teardown(self) -> None:
        self.reply_written_before_teardown = any(kind == protocol.RESULT for kind, _ in _frames(self.out))


def _frames(out: io.BytesIO) -> list[tuple[str, str | None]]:
    raw = out.getvalue()
    stream = io.BytesIO(raw)
    frames = []
    while stream.tell() < len(raw):
        frame = protocol.read_frame(stream)
        frames.append((frame["type"], frame.get("request_id")))
    return frames


def test_the_reply_of_a_call_running_at_shutdown_is_written_before_teardown_and_the_ack() -> None:
    read_fd, write_fd = os.pipe()
    out = _SlowDrain()
    algorithm = _GatedAlgorithm(out)
    # hard_exit is replaced so the adapter's main loop can run inside the test process.
    server = AdapterServer(algorithm, ProtocolStreams(os.fdopen(read_fd, "rb"), out),
                           StructuredLogger(io.StringIO()), max_frame_bytes=1 << 20, shutdown_grace_s=10.0,
                           hard_exit=lambda code: None)
    exit_codes: list[int] = []
    main = threading.Thread(target=lambda: exit_codes.append(server.run(protocol.make_hello("t", []))))
    main.start()
    with os.fdopen(write_fd, "wb") as feed:
        feed.write(protocol.encode_frame(protocol.make_call("c1", {"phase": "execute", "step_index": 1,
                                                                   "pid": "P", "session": {"id": "s"},
                                                                   "user_params": {}})))
        feed.flush()
        assert algorithm.started.wait(30), "the call never started"
        feed.write(protocol.encode_frame({"type": protocol.SHUTDOWN}))
        feed.flush()
        algorithm.release.set()
        main.join(30)
    assert exit_codes == [0]
    assert algorithm.reply_written_before_teardown is True
    frames = _frames(out)
    assert frames[-1][0] == protocol.SHUTDOWN and (protocol.RESULT, "c1") in frames, frames
