"""README.md's runner flow works as written: its "Using the runner" block is read from the README and
run, command by command, against a daemon started the way `./dev serve` starts it (the quick start:
the example installed, signed and bound to its pids).

Only what a fresh machine would differ in is set from outside: the daemon's port (free port instead of
8765, through PROCVISION_RUNNER_PORT, which the CLI reads like the daemon does) and, since tests run
offline, pip reads the wheel cache instead of the package registry (PIP_NO_INDEX / PIP_FIND_LINKS).
"""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from runner.cli.quickstart import Quickstart
from runner.config import Settings
from runner.daemon import Daemon
from tests.support import wheels
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
BIN = Path(sys.executable).parent
COMMANDS = ("procvision-cli", "procvision-runner")


def runner_flow(readme: str) -> list[list[str]]:
    """The commands of the first ```bash block under "## Using the runner", comments stripped."""
    section = readme.split("## Using the runner", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "README.md's 'Using the runner' section has no ```bash block"
    commands = [shlex.split(line, comments=True) for line in match.group(1).splitlines()]
    return [argv for argv in commands if argv]


def test_the_flow_uses_only_the_two_clis() -> None:
    flow = runner_flow(README.read_text(encoding="utf-8"))
    assert len(flow) >= 10
    assert all(argv[0] in COMMANDS for argv in flow), [argv[0] for argv in flow]


@pytest.mark.slow
def test_readme_runner_flow_runs_as_written(tmp_path: Path) -> None:
    flow = runner_flow(README.read_text(encoding="utf-8"))
    workdir = tmp_path / "repo"  # stands in for the repository folder `./dev serve` runs in
    workdir.mkdir()
    out = io.StringIO()
    quick = Quickstart(out=out, cache=workdir / ".cache" / "quickstart", test_wheels=wheels.ensure())
    settings = Settings.load(None, root=workdir / "algorithms", port=0, watch_drop_folder=False)
    daemon = Daemon(settings, before_serve=quick.prepare)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: daemon.listening.is_set() or not thread.is_alive(), 600, "the quick start to serve")
        assert daemon.listening.is_set(), out.getvalue()
        port = str(daemon.url).rsplit(":", 1)[1]
        # A fresh shell: none of the runner's settings from this environment, only the port.
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PROCVISION_RUNNER_")}
        env.update(PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PROCVISION_RUNNER_PORT=port,
                   PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels.CACHE))
        outputs: list[str] = []
        for argv in flow:
            proc = subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=workdir, env=env, capture_output=True,
                                  text=True, timeout=900, stdin=subprocess.DEVNULL)
            assert proc.returncode == 0, f"{shlex.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            outputs.append(proc.stdout)
        said = dict(zip((shlex.join(a) for a in flow), outputs, strict=True))
        assert "B01: my_algo 0.1.0 -> 0.2.0" in said["procvision-runner switch my_algo 0.2.0 --pid B01"]
        assert "B01: my_algo 0.2.0 -> 0.1.0" in said["procvision-runner rollback --pid B01"]
        executed = said["procvision-runner execute --pid B01 --image .cache/quickstart/sample.png"]
        assert "my_algo 0.1.0" in executed and "OK" in executed
    finally:
        daemon.request_stop()
        thread.join(180)
