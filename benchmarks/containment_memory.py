"""What hostile inputs cost a real daemon in memory: peak RSS before and after each attack.

Run from the repository root::

    .venv/bin/python -m benchmarks.containment_memory [--entries 3000000] [--body-mb 300] [--limit-mb 256]

Starts ``procvision-runner serve`` on 127.0.0.1 (a temporary root, port 0), installs and activates a
small algorithm, then sends, one at a time:

1. a zip whose zip64 end records (and central directory) hold ``--entries`` empty stored entries,
   uploaded to ``POST /algorithms/install``; checked against: rejected (2001) with < 50 MB daemon growth;
2. a ``--body-mb`` JSON body to ``POST /algorithms/activate`` (chunked, no length up front), and a PNG
   followed by ``--body-mb`` of trailing bytes on ``POST /execute``; checked against: 413 while
   streaming, growth <= 2x the largest allowed image (when the settings name one);
3. an ``execute`` that appends 64 MB blocks (up to ``--grow-max-mb``), with ``worker_memory_limit_mb``
   set when the settings know it; checked against: the worker killed near the limit, host memory kept.

For each it prints the answer (HTTP status and error code), the daemon's RSS before, its peak during
the attack (VmHWM reset through /proc/<pid>/clear_refs, plus VmRSS sampled every 10 ms) and the growth.
A benchmark prints; it never asserts. It runs against any version of the runner: settings it does not
know are left out, and an attack it does not stop is reported as what it answered.

The host is protected whatever the runner does: the daemon runs under RLIMIT_AS ``--daemon-cap-mb``
(inherited by its workers), the growing worker additionally gets RLIMIT_AS (its current size plus
``--grow-max-mb`` and some slack) through prlimit, and the algorithm stops at ``--grow-max-mb`` itself.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.hostile_inputs import png_bytes, write_zip64_entries_zip
from benchmarks.process_memory import PeakWatch, mem_available_kb, status_kb
from benchmarks.streaming_http import file_chunks, repeated, send_streaming
from runner.config import Settings
from tests.support.packages import build_package, manifest_for

NAME, VERSION, PID = "containment_bench", "1.0.0", "P1"
CHUNK = 1 << 20
DEADLINE_S = 600.0  # every wait of this script is bounded by it

ALGO = f'''
from procvision_algorithm_sdk import BaseAlgorithm


class Algorithm(BaseAlgorithm):
    def get_info(self):
        return {{"name": {NAME!r}, "version": {VERSION!r}, "supported_pids": [{PID!r}], "steps": []}}

    def pre_execute(self, step_index, pid, session, user_params, shared_mem_id, image_meta):
        return {{"status": "OK", "message": "", "data": {{}}}}

    def execute(self, step_index, pid, session, user_params, shared_mem_id, image_meta):
        held = []
        if user_params.get("mode") == "grow":
            block = int(user_params.get("block_mb", 64))
            for _ in range(int(user_params.get("max_mb", 1024)) // block):
                held.append(bytearray(block << 20))  # zero-filled: every page is touched
        return {{"status": "OK", "message": "", "data": {{"result_status": "OK", "defect_rects": [],
                                                         "held_mb": len(held) * int(user_params.get("block_mb", 64))}}}}
'''


# --- the daemon -----------------------------------------------------------------------------------


@dataclass
class Daemon:
    """A ``procvision-runner serve`` subprocess and how to reach it."""

    proc: subprocess.Popen[str]
    url: str
    token: str | None
    root: Path
    stderr_path: Path

    def death(self) -> str | None:
        """None while the daemon runs; else how it ended and its last stderr line."""
        code = self.proc.poll()
        if code is None:
            return None
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        lines = self.stderr_path.read_text(errors="replace").strip().splitlines()[-1:] \
            if self.stderr_path.is_file() else []
        return f"daemon DIED ({how}){': ' + lines[0][:200] if lines else ''}"

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=DEADLINE_S)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_daemon(root: Path, config: dict[str, Any], cap_mb: int) -> Daemon:
    """Serve ``root`` with ``config`` as its runner_config.json, under RLIMIT_AS ``cap_mb``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "runner_config.json").write_text(json.dumps(config, indent=2))
    stderr_path = root.parent / "daemon-stderr.log"
    script = Path(sys.executable).with_name("procvision-runner")
    argv = [str(script)] if script.is_file() else [sys.executable, "-m", "runner.cli.main"]
    cap = cap_mb << 20

    def limit() -> None:  # runs in the child: the daemon and every worker it starts stay under the cap
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    with stderr_path.open("a") as stderr:
        proc = subprocess.Popen([*argv, "serve", "--root", str(root), "--port", "0", "--no-watch"],
                                stdout=subprocess.PIPE, stderr=stderr, text=True, preexec_fn=limit)
    url = _read_url(proc)
    token_file = root / ".token"
    token = token_file.read_text().strip() if token_file.is_file() else None
    daemon = Daemon(proc, url, token, root, stderr_path)
    _wait_ready(daemon)
    return daemon


def _wait_ready(daemon: Daemon) -> None:
    """Wait (bounded) until every active version serves; a fresh root has none."""
    deadline = time.monotonic() + 120
    with daemon.client() as client:
        while time.monotonic() < deadline and client.get("/readyz").status_code != 200:
            time.sleep(0.2)


def _read_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    found: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            match = re.search(r"serving (http://\S+)", line)
            if match and not found:
                found.append(match.group(1))

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 120
    while not found and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not found:
        proc.kill()
        raise SystemExit("the daemon did not report its URL within 120 s")
    return found[0]


def install_and_activate(daemon: Daemon, work: Path) -> None:
    package = build_package(work / "pkg", manifest=manifest_for(name=NAME, version=VERSION, pids=(PID,)),
                            files={"algo/__init__.py": "", "algo/main.py": ALGO})
    with daemon.client() as client:
        op = client.post("/algorithms/install", content=package.read_bytes(),
                         headers={"Content-Type": "application/zip"}).json()
        op = _wait_operation(client, op["id"])
        if op.get("state") != "succeeded":
            raise SystemExit(f"installing the benchmark algorithm failed: {op}")
        answer = client.post("/algorithms/activate", json={"name": NAME, "version": VERSION, "pids": [PID]})
        answer.raise_for_status()


def _wait_operation(client: httpx.Client, op_id: str) -> dict[str, Any]:
    """The finished operation. A daemon busy with an attack may drop an idle keep-alive connection
    just as it is reused; such a poll is simply repeated (on a fresh connection) until the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        try:
            op = dict(client.get(f"/operations/{op_id}", headers={"Connection": "close"}).json())
        except httpx.TransportError:
            op = {}
        if op.get("state") in ("succeeded", "failed"):
            return op
        time.sleep(0.2)
    return {"state": "still running after the benchmark's deadline"}


def worker_pid(daemon: Daemon) -> int | None:
    with daemon.client() as client:
        shown = client.get(f"/algorithms/{NAME}/{VERSION}").json()
    workers = (shown.get("workers") or {}).get("workers") or []
    pid = workers[0].get("pid") if workers else None
    return int(pid) if pid else None


# --- the attacks ----------------------------------------------------------------------------------


@dataclass
class Row:
    attack: str
    answer: str
    before_mb: float
    peak_mb: float
    limit: str

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.before_mb


def _measure(daemon: Daemon, attack: str, limit: str, run: Callable[[], str]) -> Row:
    with PeakWatch(lambda: [daemon.proc.pid]) as watch:
        try:
            answer = run()
        except (httpx.HTTPError, OSError) as exc:
            answer = f"no answer ({type(exc).__name__}: {exc})"
    death = daemon.death()
    if death is not None:
        answer = f"{answer}; {death}"
    pid = daemon.proc.pid
    return Row(attack, answer, watch.before_kb.get(pid, 0) / 1024, watch.peak_kb.get(pid, 0) / 1024, limit)


def zip64_attack(daemon: Daemon, work: Path, entries: int) -> Row:
    bomb = write_zip64_entries_zip(work / "entries.zip", entries)

    def run() -> str:
        answer = send_streaming(daemon.url, daemon.token, "/algorithms/install",
                                {"Content-Type": "application/zip", "Content-Length": str(bomb.stat().st_size)},
                                file_chunks(bomb), chunked=False)
        if answer.status in (200, 202):
            op_id = json.loads(answer.body or b"{}").get("id")
            with daemon.client() as client:
                op = _wait_operation(client, op_id) if op_id else {}
            error = op.get("error") or {}
            return f"{answer.status}, operation {op.get('state')} {error.get('code') or ''}".rstrip()
        return answer.text()

    size_mb = bomb.stat().st_size / (1 << 20)
    row = _measure(daemon, f"1 zip64 end records claim {entries:,} entries ({size_mb:.0f} MB zip)",
                   "2001, growth < 50 MB", run)
    bomb.unlink()
    return row


def json_body_attack(daemon: Daemon, body_mb: int, image_limit: str) -> Row:
    filler = b"x" * CHUNK
    body = repeated(b'{"name": "', filler, body_mb << 20, b'", "version": "1.0.0", "pids": ["P1"]}')
    return _measure(daemon, f"6 {body_mb} MB JSON body (chunked) on /algorithms/activate", f"413, {image_limit}",
                    lambda: send_streaming(daemon.url, daemon.token, "/algorithms/activate",
                                           {"Content-Type": "application/json"}, body, chunked=True).text())


def png_trailer_attack(daemon: Daemon, body_mb: int, image_limit: str) -> Row:
    boundary = uuid.uuid4().hex
    fields = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                     for k, v in (("pid", PID), ("user_params", "{}")))
    head = (fields + f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n").encode() + png_bytes()
    tail = f"\r\n--{boundary}--\r\n".encode()
    total = len(head) + (body_mb << 20) + len(tail)
    body = repeated(head, b"\0" * CHUNK, body_mb << 20, tail)
    return _measure(daemon, f"6 PNG + {body_mb} MB trailing bytes on /execute", f"413, {image_limit}",
                    lambda: send_streaming(daemon.url, daemon.token, "/execute",
                                           {"Content-Type": f"multipart/form-data; boundary={boundary}",
                                            "Content-Length": str(total)}, body, chunked=False).text())


def grow_attack(daemon: Daemon, limit_mb: int | None, grow_max_mb: int) -> tuple[Row, str]:
    pid = worker_pid(daemon)
    if pid is None:
        return Row("8 execute appends 64 MB blocks", "no worker running", 0, 0, "-"), ""
    # Host protection whatever the runner does: the worker may not map more than this.
    cap = (status_kb(pid).get("VmSize", 0) << 10) + ((grow_max_mb + 256) << 20)
    resource.prlimit(pid, resource.RLIMIT_AS, (cap, cap))
    available_before = mem_available_kb()
    with PeakWatch(lambda: [daemon.proc.pid, pid]) as watch, daemon.client() as client:
        try:
            answer = client.post("/execute", data={"pid": PID, "timeout_ms": "120000", "user_params": json.dumps(
                {"mode": "grow", "block_mb": 64, "max_mb": grow_max_mb})}, files={"image": ("a.png", png_bytes())})
            status: int | None = answer.status_code
            reply = answer.json()
        except (httpx.HTTPError, OSError, ValueError) as exc:
            status, reply = None, {"status": f"no answer ({type(exc).__name__}: {exc})"}
    code = reply.get("error_code") or reply.get("code") or (reply.get("result") or {}).get("error_code")
    held = (reply.get("data") or {}).get("held_mb")
    text = f"{status or ''} {code or reply.get('status', '')}".strip() + (f" (held {held} MB)" if held else "")
    death = daemon.death()
    if death is not None:
        text = f"{text}; {death}"
    limit = f"worker killed at {limit_mb} MB" if limit_mb else "no worker_memory_limit_mb setting yet"
    row = Row("8 execute appends 64 MB blocks (daemon RSS)", text, watch.before_kb.get(daemon.proc.pid, 0) / 1024,
              watch.peak_kb.get(daemon.proc.pid, 0) / 1024, limit)
    worker = (f"worker pid {pid}: peak RSS {watch.peak_kb.get(pid, 0) / 1024:.0f} MB "
              f"(benchmark's own RLIMIT_AS cap {cap >> 20} MB); host MemAvailable "
              f"{available_before / 1024:.0f} MB before, lowest {watch.min_available_kb / 1024:.0f} MB during")
    return row, worker


# --- main -----------------------------------------------------------------------------------------


def image_limit_text() -> str:
    """The image-size setting item 6 is checked against, if today's Settings has one."""
    fields = Settings.model_fields
    for name in sorted(fields):
        if "image" in name and (name.endswith("_bytes") or name.endswith("_mb")):
            value = fields[name].default
            size_mb = value / (1 << 20) if name.endswith("_bytes") else value
            return f"growth <= 2 x {name} = {2 * size_mb:.0f} MB"
    return "growth <= 2 x largest allowed image (no image-size setting yet)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=3_000_000, help="entries claimed by the zip64 end records")
    parser.add_argument("--body-mb", type=int, default=300, help="size of the oversized bodies (MB)")
    parser.add_argument("--limit-mb", type=int, default=256, help="worker_memory_limit_mb, if the settings know it")
    parser.add_argument("--grow-max-mb", type=int, default=1024, help="the growing execute stops here by itself")
    parser.add_argument("--daemon-cap-mb", type=int, default=8192, help="RLIMIT_AS of the daemon (host safety)")
    parser.add_argument("--skip", action="append", default=[], choices=["1", "6", "8"], help="skip an item")
    args = parser.parse_args(argv)

    fields = Settings.model_fields
    limit_mb = args.limit_mb if "worker_memory_limit_mb" in fields else None
    config: dict[str, Any] = {"execute_timeout_ms": 120000, "max_retries": 0, "log_level": "warning"}
    if limit_mb is not None:
        config["worker_memory_limit_mb"] = limit_mb
    with tempfile.TemporaryDirectory(prefix="pv-containment-") as tmp:
        work = Path(tmp)
        config["uv_cache_dir"] = str(work / "uv-cache")
        daemon = start_daemon(work / "root", config, args.daemon_cap_mb)
        try:
            install_and_activate(daemon, work)
            print(f"daemon pid {daemon.proc.pid} at {daemon.url}; RSS "
                  f"{status_kb(daemon.proc.pid).get('VmRSS', 0) / 1024:.0f} MB after install and activate")
            rows: list[Row] = []
            notes: list[str] = []
            image_limit = image_limit_text()
            attacks: list[tuple[str, Callable[[Daemon], Row]]] = [
                ("1", lambda d: zip64_attack(d, work, args.entries)),
                ("6", lambda d: json_body_attack(d, args.body_mb, image_limit)),
                ("6", lambda d: png_trailer_attack(d, args.body_mb, image_limit)),
            ]
            for item, attack in attacks:
                if item not in args.skip:
                    rows.append(attack(daemon))
                    daemon = _restarted_if_dead(daemon, config, args.daemon_cap_mb)
            if "8" not in args.skip:
                row, worker = grow_attack(daemon, limit_mb, args.grow_max_mb)
                rows.append(row)
                notes.append(worker)
            alive = daemon.proc.poll() is None
        finally:
            daemon.stop()
    _print_table(rows)
    for note in notes:
        print(f"item 8: {note}")
    print(f"daemon still running after the attacks: {'yes' if alive else 'NO'}")
    return 0


def _restarted_if_dead(daemon: Daemon, config: dict[str, Any], cap_mb: int) -> Daemon:
    """A daemon an attack killed is started again on the same root, so later attacks still run."""
    if daemon.proc.poll() is None:
        return daemon
    print(f"{daemon.death()}; starting it again for the next attacks")
    return start_daemon(daemon.root, config, cap_mb)


def _print_table(rows: list[Row]) -> None:
    headers = ("attack", "answer", "RSS before", "peak", "growth", "checked against")
    cells = [(r.attack, r.answer, f"{r.before_mb:.0f} MB", f"{r.peak_mb:.0f} MB", f"{r.growth_mb:+.0f} MB", r.limit)
             for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    for line in (headers, tuple("-" * w for w in widths), *cells):
        print("  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
