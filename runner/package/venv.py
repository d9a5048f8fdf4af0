"""Steps of building a package's venv offline: running a tool with a deadline, its environment, checks.

The tools themselves (uv, or virtualenv + pip as the fallback) are in ``venvtools/``. Every step has a
deadline; a failing or late step is RunnerError 2005 with the tail of the tool's output.

Venvs hold absolute paths (console-script shebangs, ``pyvenv.cfg`` ``home``). The runner only ever runs
``venv/bin/python -m ...``; Python finds its venv from the location of that executable (``pyvenv.cfg``
next to ``bin/``), so a venv built in staging keeps working after the staging folder is renamed into
``deployed/``. ``check_relocated`` proves that after the rename.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..config import Settings
from ..errors import PackageErrorCode, RunnerError

log = logging.getLogger(__name__)

TAIL_LINES = 40
_CHECK_TIMEOUT_S = 30.0
_REAP_TIMEOUT_S = 30.0


def venv_python(venv_dir: Path) -> Path:
    return venv_dir / "bin" / "python"


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class PendingStep:
    """An install step started in the background (its own process group); ``finish`` waits for it
    within the deadline counted from the start, ``cancel`` kills it. Lets the installer overlap a step
    with others (the venv is created while the package is extracted)."""

    def __init__(self, argv: Sequence[str], timeout_s: float, what: str, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.what = what
        self.timeout_s = timeout_s
        self._deadline = time.monotonic() + timeout_s
        try:
            self._proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          stdin=subprocess.DEVNULL, env=dict(env) if env is not None else None,
                                          cwd=cwd, start_new_session=True)
        except OSError as exc:
            raise RunnerError(PackageErrorCode.INSTALL_FAILED, f"{what}: cannot start {self.argv[0]}: {exc}",
                              step=what, command=self.argv) from exc

    def finish(self) -> str:
        """Wait for the step; returns its stdout, or raises 2005 (failed, or late: killed)."""
        proc = self._proc
        try:
            out, err = proc.communicate(timeout=max(0.0, self._deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            raise RunnerError(PackageErrorCode.INSTALL_FAILED,
                              f"{self.what} did not finish within {self.timeout_s:g}s (raise venv_timeout_s/"
                              "pip_timeout_s if the machine is slow)", step=self.what, timeout_s=self.timeout_s,
                              stderr_tail=_tail(err.decode("utf-8", "replace"))) from None
        except BaseException:
            self.cancel()
            raise
        stdout = out.decode("utf-8", "replace")
        stderr = err.decode("utf-8", "replace")
        if proc.returncode != 0:
            tail = _tail(stderr) or _tail(stdout)
            raise RunnerError(PackageErrorCode.INSTALL_FAILED,
                              f"{self.what} failed (exit code {proc.returncode}): "
                              f"{tail.splitlines()[-1] if tail else ''}",
                              step=self.what, exit_code=proc.returncode, stderr_tail=tail)
        return stdout

    def kill(self) -> None:
        """SIGKILL the step's process group without reaping it (the thread in ``finish`` does that)."""
        _kill_group(self._proc)

    def cancel(self) -> None:
        """Kill the step's whole process group (no grandchild keeps running) and reap it."""
        if self._proc.returncode is None:
            _kill_group(self._proc)
        try:
            self._proc.communicate(timeout=_REAP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("%s (pid %d) did not end after SIGKILL", self.what, self._proc.pid)


def run_step(argv: Sequence[str], timeout_s: float, what: str, env: Mapping[str, str] | None = None,
             cwd: Path | None = None) -> str:
    """Run one install step with a deadline; returns stdout."""
    return PendingStep(argv, timeout_s, what, env, cwd).finish()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def tool_environment(settings: Settings) -> dict[str, str]:
    """Environment of uv/pip: the daemon's (``settings.inherited_environment``) without anything that could
    point them at an index or another Python, plus no network, no user config, the runner's uv cache."""
    env = {k: v for k, v in settings.inherited_environment.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
                        "PIP_FIND_LINKS", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS")}
    env.update({
        "UV_CACHE_DIR": str(settings.uv_cache),
        "UV_OFFLINE": "1",
        "UV_NO_CONFIG": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "PYTHONNOUSERSITE": "1",
    })
    return env


def check_relocated(venv_dir: Path, env: Mapping[str, str]) -> None:
    """Prove the venv works from where it now is: its python reports ``sys.prefix`` == ``venv_dir``."""
    out = run_step([str(venv_python(venv_dir)), "-c", "import sys; print(sys.prefix)"], _CHECK_TIMEOUT_S,
                   "checking the published venv", env)
    prefix = out.strip().splitlines()[-1] if out.strip() else ""
    if os.path.realpath(prefix) != os.path.realpath(venv_dir):
        raise RunnerError(PackageErrorCode.INSTALL_FAILED,
                          f"the venv does not work after publishing: its python reports prefix {prefix!r}, "
                          f"expected {venv_dir}", step="publishing")
