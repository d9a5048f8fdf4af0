"""A daemon that stops leaves no thread of its own running when ``Daemon.run`` returns.

Found under load: ``serve`` stopped right after it started exited with SIGABRT. The trust verifier's
background import (model-signing takes seconds to import on a busy machine) was still running as a
daemon thread when the interpreter finalized. The daemon now waits for it (bounded) before returning.
The check runs in a fresh interpreter, where that import has not happened yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_SCRIPT = """
import json, sys, threading
from pathlib import Path
from runner.config import Settings
from runner.daemon import Daemon

settings = Settings.load(None, root=Path(sys.argv[1]), port=0, host="127.0.0.1", watch_drop_folder=False,
                         trust_mode="warn")
daemon = Daemon(settings)
# Stop as soon as the daemon listens: the shortest life a daemon can have.
threading.Thread(target=lambda: (daemon.listening.wait(120), daemon.request_stop()), daemon=True).start()
code = daemon.run()
left = [t.name for t in threading.enumerate() if t is not threading.main_thread() and t.name != "stopper"]
print(json.dumps({"code": code, "threads": left}))
"""

REPO = Path(__file__).resolve().parents[2]


def test_threads_started_by_the_daemon_have_ended_when_run_returns(tmp_path: Path) -> None:
    script = _SCRIPT.replace("daemon=True).start()", "daemon=True, name=\"stopper\").start()")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "root")], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "threads": []}, done.stderr[-2000:]
