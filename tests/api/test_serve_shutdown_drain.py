"""`serve` as a real subprocess: SIGTERM drains (running calls finish past shutdown_grace_s, new work
gets a 503 problem 1016), a second SIGTERM cuts a call off with a problem document (never a plain
500), and a busy port fails with 2016 port_in_use before any worker starts."""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path

import httpx

from runner.cli import exitcodes
from tests.api.support import NAME, ServeProcess, install, make_zip, png_bytes
from tests.support.waiting import wait_until


def serve(root: Path, *extra: str, grace_s: float = 1.0) -> ServeProcess:
    return ServeProcess(root, *extra, env=dict(os.environ, PROCVISION_RUNNER_SHUTDOWN_GRACE_S=str(grace_s)))


def _call(client: httpx.Client, sleep_s: float, answers: list[httpx.Response], timeout_ms: int = 20000) -> None:
    try:
        answers.append(client.post("/execute", data={"pid": "P001", "user_params": f'{{"sleep_s": {sleep_s}}}',
                                                     "timeout_ms": str(timeout_ms)},
                                   files={"image": ("a.png", png_bytes(), "image/png")}))
    except httpx.HTTPError as exc:  # reported to the test as a failed assertion below
        answers.append(httpx.Response(599, text=f"{type(exc).__name__}: {exc}"))


def _in_flight(client: httpx.Client, count: int = 1) -> bool:
    """At least ``count`` calls admitted by the version's pool (queued or running)."""
    return bool(client.get(f"/algorithms/{NAME}/1.0.0").json()["workers"]["in_flight"] >= count)


def _assert_shutdown_problem(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["code"] == "1016" and "shutting down" in body["detail"], body


def test_sigterm_lets_long_calls_finish_and_refuses_new_work(tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "pkgs")
    daemon = serve(tmp_path / "root", "--port", "0", grace_s=1.0)
    try:
        url = daemon.url()
        token = (tmp_path / "root" / ".token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            assert install(client, zip_path)["state"] == "succeeded"
            activated = client.post("/algorithms/activate", json={"name": NAME, "version": "1.0.0", "pids": ["P001"]})
            assert activated.status_code == 200, activated.text

            # Three calls on one worker (two of them queued), each 1.5 s: the last one ends about
            # 4.5 s after the signal, several times shutdown_grace_s (1 s).
            answers: list[httpx.Response] = []
            def own_client_call() -> None:
                with httpx.Client(base_url=url, headers=headers, timeout=120) as own:
                    _call(own, 1.5, answers)

            callers = [threading.Thread(target=own_client_call) for _ in range(3)]
            for caller in callers:
                caller.start()
            # All three must be admitted before the signal, or a late one is rightly refused.
            wait_until(lambda: _in_flight(client, 3), what="the three calls to be in flight")
            daemon.proc.send_signal(signal.SIGTERM)

            with httpx.Client(base_url=url, headers=headers, timeout=30) as other:
                def refused() -> httpx.Response | None:
                    response = other.post("/execute", data={"pid": "P001"},
                                          files={"image": ("a.png", png_bytes(), "image/png")})
                    return response if response.status_code == 503 else None

                _assert_shutdown_problem(wait_until(refused, what="new calls to be refused"))
            for caller in callers:
                caller.join(60)
        assert len(answers) == 3, answers
        for answer in answers:
            assert answer.status_code == 200 and answer.json()["status"] == "OK", answer.text
        assert daemon.wait() == 0, daemon.stderr[-30:]
        assert not any("Traceback" in line for line in daemon.stderr), daemon.stderr[-30:]
    finally:
        daemon.kill()


def test_second_sigterm_cuts_off_with_a_problem(tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "pkgs")
    daemon = serve(tmp_path / "root", "--port", "0", grace_s=1.0)
    try:
        url = daemon.url()
        token = (tmp_path / "root" / ".token").read_text().strip()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
            assert install(client, zip_path)["state"] == "succeeded"
            activated = client.post("/algorithms/activate", json={"name": NAME, "version": "1.0.0", "pids": ["P001"]})
            assert activated.status_code == 200, activated.text
            answers: list[httpx.Response] = []
            caller = threading.Thread(target=_call, args=(client, 30.0, answers, 60000))
            caller.start()
            wait_until(lambda: _in_flight(client), what="the call to be in flight")
            daemon.proc.send_signal(signal.SIGTERM)
            wait_until(lambda: any("draining" in line for line in daemon.stderr), what="the drain to start")
            daemon.proc.send_signal(signal.SIGTERM)
            caller.join(60)
        assert answers, "the cut-off call got no answer"
        _assert_shutdown_problem(answers[0])
        assert "cut off" in answers[0].json()["detail"]
        assert daemon.wait() == 0, daemon.stderr[-30:]
    finally:
        daemon.kill()


def test_busy_port_is_2016_before_workers_start(tmp_path: Path) -> None:
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        daemon = serve(tmp_path / "root", "--port", str(port))
        try:
            code = daemon.wait(60)
        finally:
            daemon.kill()
    finally:
        holder.close()
    stderr = "\n".join(daemon.stderr)
    assert code == exitcodes.exit_code_for("2016") == 26, stderr
    assert code != exitcodes.UNREACHABLE
    assert f"port {port} on 127.0.0.1 is in use: stop the other process or pass --port" in stderr
    assert "2016 port_in_use" in stderr and "Errno" not in stderr and "Traceback" not in stderr
    # The lock was released: the root is free for the next daemon.
    assert not (tmp_path / "root" / ".daemon.lock.pid").exists()
