"""Play an offline station: run inside ``unshare -n`` (a network namespace with only loopback).

``python -m tests.support.offline_station BUNDLE_DIR PREFIX ROOT WORK [INSTALL_ARGS...]`` brings
loopback up, proves that nothing outside the machine is reachable, then does what an integrator
does: ``install.sh``, start ``serve`` with a systemd-style NOTIFY_SOCKET, install the bundled
example package, activate and execute it through the installed CLI, and stop the daemon with
SIGTERM. It prints one JSON object with what it saw (the test asserts on it) and exits 0 even when
a step fails, so the test can show which step and its output.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.support.waiting import wait_until

STEP_TIMEOUT_S = 300.0
URL_LINE = re.compile(r"serving (http://\S+)")


def run(cmd: list[str], timeout: float = STEP_TIMEOUT_S, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    # Away from the checkout: nothing may come from the repository's own files, only the install.
    kwargs.setdefault("cwd", "/")
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                          check=False, **kwargs)


def network_is_gone() -> dict[str, Any]:
    """Try a public address; inside the namespace the kernel answers 'network unreachable'."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        code = sock.connect_ex(("1.1.1.1", 443))
    routes = run(["ip", "-o", "link"], timeout=10).stdout
    return {"connect_errno": code, "links": [line.split(":")[1].strip() for line in routes.splitlines()]}


def receive(sock: socket.socket, messages: list[str], stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return
        messages.append(data.decode("utf-8", "replace"))


def docs_assets(url: str) -> dict[str, int]:
    """Status of /docs and of every asset it references, fetched without a token (as a browser)."""
    import urllib.error
    import urllib.request

    def status(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(url + path, timeout=30) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, ""

    code, html = status("/docs")
    found = {"/docs": code}
    for asset in re.findall(r"""(?:src|href)=["']([^"']+)["']""", html):
        found[asset] = status(asset)[0] if asset.startswith("/") else -1
    return found


def main(bundle: Path, prefix: Path, root: Path, work: Path, install_args: list[str]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    up = run(["ip", "link", "set", "lo", "up"], timeout=10)
    report["lo_up"] = up.returncode
    report["network"] = network_is_gone()

    install = run(["bash", str(bundle / "install.sh"), "--prefix", str(prefix), "--root", str(root), *install_args])
    report["install"] = {"code": install.returncode, "out": install.stdout[-3000:], "err": install.stderr[-3000:]}
    if install.returncode != 0:
        return report
    cli = str(prefix / "bin" / "procvision-runner")

    notify_path = work / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    messages: list[str] = []
    stop = threading.Event()
    threading.Thread(target=receive, args=(notify, messages, stop), daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROCVISION_RUNNER_", "PYTHON"))}
    env.update(NOTIFY_SOCKET=str(notify_path), WATCHDOG_USEC="1000000")
    serve = subprocess.Popen([cli, "serve", "--port", "0", "--no-watch"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=work)
    out_lines: list[str] = []
    err_lines: list[str] = []
    for stream, sink in ((serve.stdout, out_lines), (serve.stderr, err_lines)):
        threading.Thread(target=lambda s=stream, k=sink: [k.append(x.rstrip("\n")) for x in s], daemon=True).start()
    try:

        def served_url() -> str | None:
            return next((m.group(1) for line in out_lines if (m := URL_LINE.search(line))), None)

        # READY=1 and the URL line travel separately (the notify socket, stdout through a reader
        # thread): wait for both, or for the daemon to end.
        wait_until(lambda: (any("READY=1" in m for m in messages) and served_url()) or serve.poll() is not None,
                   120, fail=False)
        ready = any("READY=1" in m for m in messages)
        url = served_url()
        report["serve"] = {"ready": ready and serve.poll() is None, "url": url}
        if not url:
            return report
        report["docs"] = docs_assets(url)
        example = sorted((prefix / "current" / "share" / "example").glob("*.zip"))[0]
        base = [cli, "--url", url]
        steps = {
            "status_before": base + ["list"],
            "install_example": base + ["install", str(example)],
            "activate": base + ["activate", "example-defect-detector", "1.0.0", "--pid", "A01"],
        }
        for key, cmd in steps.items():
            proc = run(cmd)
            report[key] = {"code": proc.returncode, "out": proc.stdout[-2000:], "err": proc.stderr[-2000:]}
            if proc.returncode != 0:
                return report
        import numpy as np

        image = work / "plate.npy"
        pixels = np.full((120, 160, 3), 200, dtype=np.uint8)
        pixels[50:65, 70:90] = 20
        np.save(image, pixels)
        proc = run(base + ["--json", "execute", "--pid", "A01", "--image", str(image)])
        report["execute"] = {"code": proc.returncode, "out": proc.stdout[-4000:], "err": proc.stderr[-2000:]}
        report["watchdog_pings"] = sum(m.count("WATCHDOG=1") for m in messages)
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
        try:
            report["stop_code"] = serve.wait(90)
        except subprocess.TimeoutExpired:
            serve.kill()
            report["stop_code"] = "killed after 90 s"
        # The report says whether STOPPING=1 came; a missing one is for the test to judge, not a crash here.
        wait_until(lambda: any("STOPPING=1" in m for m in messages), 5, fail=False)
        stop.set()
        notify.close()
        report["notify"] = messages[:3] + [m for m in messages if "STOPPING" in m]
        report["serve_stderr"] = err_lines[-30:]
    return report


if __name__ == "__main__":
    bundle_dir, prefix_dir, root_dir, work_dir = (Path(a) for a in sys.argv[1:5])
    print(json.dumps(main(bundle_dir, prefix_dir, root_dir, work_dir, sys.argv[5:])))
