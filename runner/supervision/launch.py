"""Starting one worker process: its command line and environment, the handshake, and the check
that the algorithm really loaded."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from procvision_algorithm_sdk import protocol
from procvision_algorithm_sdk.client import AdapterClient, HandshakeFailed, WorkerFailure, adapter_argv
from procvision_algorithm_sdk.errors import ErrorCode
from runner import __version__ as runner_version
from runner.config import Settings

from .dialects import IMPORT_BEFORE_HELLO_CAPABILITY, Dialect, detect_dialect, worker_environment
from .spec import WorkerSpec

ExitCallback = Callable[[AdapterClient, "int | None", str], None]


def make_client(spec: WorkerSpec, settings: Settings, shm_dir: Path, base_env: Mapping[str, str],
                on_stderr_line: Callable[[str], None], on_exit: ExitCallback) -> AdapterClient:
    """An AdapterClient (not yet started) for one worker process of ``spec``."""
    env = worker_environment(base_env, spec.package_dir, shm_dir, settings.max_frame_bytes)
    return AdapterClient(adapter_argv(str(spec.python), spec.entry_point), str(spec.package_dir), env,
                         max_frame_bytes=settings.max_frame_bytes, stderr_tail_lines=settings.stderr_tail_lines,
                         on_stderr_line=on_stderr_line, on_exit=on_exit)


def handshake(client: AdapterClient, settings: Settings) -> tuple[dict[str, Any], Dialect, dict[str, Any] | None]:
    """Spawn the process, exchange hellos and confirm the algorithm loaded.

    Returns ``(hello, dialect, info)``; raises HandshakeFailed (the process is killed) otherwise.
    """
    try:
        hello = client.start(settings.handshake_timeout_ms / 1000, protocol.make_runner_hello(
            runner_version, settings.heartbeat_interval_ms, settings.heartbeat_grace_ms))
        dialect = detect_dialect(hello)
        info = confirm_ready(client, hello, dialect, settings)
    except WorkerFailure as exc:
        client.kill()
        if isinstance(exc, HandshakeFailed):
            raise
        raise HandshakeFailed(f"worker failed while starting: {exc.message}", exc.error_code,
                              exit_code=exc.exit_code if exc.exit_code is not None else client.wait(2.0),
                              stderr_tail=exc.stderr_tail or client.stderr_tail) from exc
    return dict(hello), dialect, info


def confirm_ready(client: AdapterClient, hello: Mapping[str, Any], dialect: Dialect, settings: Settings
                  ) -> dict[str, Any] | None:
    """Make sure the algorithm loaded; returns its get_info() when that was used to check.

    A hello proves it only for our adapter (``pv:import-before-hello:v1``). Public 0.0.7 workers are
    asked for ``info``; older ones (no ``info`` capability) must answer a ping. Raises
    HandshakeFailed (or another WorkerFailure) when the algorithm did not load.
    """
    caps = [str(c) for c in hello.get("capabilities") or []]
    if dialect.ours and IMPORT_BEFORE_HELLO_CAPABILITY in caps:
        return None
    timeout = settings.info_timeout_ms / 1000
    # Public adapters import the algorithm after their hello, so the first reply waits for that load:
    # it gets the handshake deadline, as the wait for our adapter's hello does.
    first_reply = max(timeout, settings.handshake_timeout_ms / 1000)
    if "info" in caps:
        frame = client.call({"phase": "info", "step_index": 0, "pid": "", "user_params": {},
                             "shared_mem_id": "", "image_meta": {}}, first_reply)
        if frame.get("type") != protocol.RESULT or frame.get("status") != "OK":
            raise HandshakeFailed(f"the algorithm did not load: info call answered "
                                  f"{frame.get('message') or frame.get('type')!r}",
                                  str(frame.get("error_code") or ErrorCode.HANDSHAKE_FAILED.value),
                                  stderr_tail=client.stderr_tail)
        data = frame.get("data")
        info = data.get("info") if isinstance(data, dict) else None
        return dict(info) if isinstance(info, dict) else None
    # Upstream adapters read their first frame only after importing the algorithm, and report an
    # import failure with a null-request-id error frame before exiting: a pong proves the load.
    client.ping(first_reply)
    return None

