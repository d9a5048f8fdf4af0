"""Build a package's venv offline from its bundled wheels: uv when available, pip as the fallback.

uv: ``python -m uv venv --python X venv`` then ``uv pip install --offline --no-index --find-links wheels
-r reqs`` with ``UV_CACHE_DIR`` = settings.uv_cache, so versions sharing wheels link them from the cache
in a fraction of a second. pip: ``virtualenv --python X venv`` then ``venv/bin/python -m pip install --no-index
--find-links wheels -r reqs``. Every step has a deadline; a failing or late step is RunnerError 2005
with the tail of the tool's output.

Venvs hold absolute paths (console-script shebangs, ``pyvenv.cfg`` ``home``). The runner only ever runs
``venv/bin/python -m ...``; Python finds its venv from the location of that executable (``pyvenv.cfg``
next to ``bin/``), so a venv built in staging keeps working after the staging folder is renamed into
``deployed/``. ``check_relocated`` proves that after the rename.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..config import Settings
from ..errors import PackageErrorCode, RunnerError

TAIL_LINES = 40
_CHECK_TIMEOUT_S = 30.0


def choose_tool(settings: Settings) -> str:
    """"uv" or "pip" for this install (``installer`` setting; auto = uv if it is installed)."""
    if settings.installer == "pip":
        return "pip"
    has_uv = importlib.util.find_spec("uv") is not None
    if settings.installer == "uv" and not has_uv:
        raise RunnerError(PackageErrorCode.INSTALL_FAILED,
                          "installer is set to 'uv' but uv is not installed next to the runner; install it "
                          "or set installer to 'auto' or 'pip'")
    return "uv" if has_uv else "pip"


def venv_python(venv_dir: Path) -> Path:
    return venv_dir / "bin" / "python"


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_step(argv: Sequence[str], timeout_s: float, what: str, env: Mapping[str, str] | None = None,
             cwd: Path | None = None) -> str:
    """Run one install step with a deadline; returns stdout. The whole process group is killed on
    timeout so no grandchild keeps running."""
    try:
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True)
    except OSError as exc:
        raise RunnerError(PackageErrorCode.INSTALL_FAILED, f"{what}: cannot start {argv[0]}: {exc}",
                          step=what, command=list(argv)) from exc
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        raise RunnerError(PackageErrorCode.INSTALL_FAILED,
                          f"{what} did not finish within {timeout_s:g}s (raise venv_timeout_s/pip_timeout_s "
                          "if the machine is slow)", step=what, timeout_s=timeout_s,
                          stderr_tail=_tail(err.decode("utf-8", "replace"))) from None
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    stdout = out.decode("utf-8", "replace")
    stderr = err.decode("utf-8", "replace")
    if proc.returncode != 0:
        tail = _tail(stderr) or _tail(stdout)
        raise RunnerError(PackageErrorCode.INSTALL_FAILED,
                          f"{what} failed (exit code {proc.returncode}): {tail.splitlines()[-1] if tail else ''}",
                          step=what, exit_code=proc.returncode, stderr_tail=tail)
    return stdout


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def tool_environment(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """Environment of uv/pip: no network, no user config, the shared uv cache."""
    env = {k: v for k, v in base.items()
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


def create_venv(settings: Settings, tool: str, interpreter: str, venv_dir: Path, env: Mapping[str, str]) -> None:
    """Create an empty venv at ``venv_dir`` for ``interpreter``."""
    if tool == "uv":
        argv = [sys.executable, "-m", "uv", "venv", "--quiet", "--python", interpreter, "--no-project", str(venv_dir)]
    else:
        # virtualenv (a runner dependency) rather than the target's own ``-m venv``: it works for
        # interpreters without ensurepip (Debian's python3 without python3-venv) and seeds pip from
        # the wheels it embeds, offline. Its cache lives under the root, not in a home folder.
        argv = [sys.executable, "-m", "virtualenv", "--quiet", "--no-download", "--no-periodic-update",
                "--app-data", str(settings.layout.virtualenv_app_data), "--python", interpreter, str(venv_dir)]
    run_step(argv, settings.venv_timeout_s, f"creating the venv with {tool}", env)
    if not venv_python(venv_dir).exists():
        raise RunnerError(PackageErrorCode.INSTALL_FAILED, f"{tool} reported success but {venv_python(venv_dir)} "
                          "does not exist", step="creating venv")


def wheelhouse_links(wheelhouse: Path, wheels: Sequence[Path]) -> list[Path]:
    """Hard-link each wheel into ``wheelhouse/<sha256>/<file name>`` (content-addressed, created once)
    and return those folders, to be used as find-links.

    uv keys its cache of local wheels by their path and mtime: a wheel found at the same stable path as
    in an earlier install is linked from the cache instead of being unpacked again (numpy: ~0.7 s).
    """
    folders = []
    for wheel in wheels:
        digest = hashlib.sha256()
        with open(wheel, "rb") as handle:
            for chunk in iter(lambda: handle.read(1024 * 1024), b""):
                digest.update(chunk)
        folder = wheelhouse / digest.hexdigest()[:40]
        target = folder / wheel.name
        if not target.exists():
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{wheel.name}.{os.getpid()}.tmp"
            tmp.unlink(missing_ok=True)
            try:
                os.link(wheel, tmp)
            except OSError:
                shutil.copyfile(wheel, tmp)  # another filesystem: a copy is as good
            os.replace(tmp, target)
        elif not os.path.samefile(target, wheel):
            # Same content already linked by another version: share its inode (one copy on disk, and the
            # link count tells recover() when no version uses it any more).
            tmp = wheel.with_name(f".{wheel.name}.{os.getpid()}.tmp")
            try:
                os.link(target, tmp)
                os.replace(tmp, wheel)
            except OSError:
                tmp.unlink(missing_ok=True)  # another filesystem: keep the package's own copy
        folders.append(folder)
    return folders


def install_requirements(settings: Settings, tool: str, venv_dir: Path, find_links: Sequence[Path],
                         requirements_file: Path, env: Mapping[str, str]) -> None:
    """Install ``requirements_file`` into the venv from the ``find_links`` folders only (never an index)."""
    python = str(venv_python(venv_dir))
    links = [arg for folder in find_links for arg in ("--find-links", str(folder))]
    if tool == "uv":
        argv = [sys.executable, "-m", "uv", "pip", "install", "--quiet", "--python", python, "--offline",
                "--no-index", *links, "-r", str(requirements_file)]
    else:
        argv = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
                "--no-index", *links, "-r", str(requirements_file)]
    run_step(argv, settings.pip_timeout_s, f"installing the wheels with {tool}", env)


def check_relocated(venv_dir: Path, env: Mapping[str, str]) -> None:
    """Prove the venv works from where it now is: its python reports ``sys.prefix`` == ``venv_dir``."""
    out = run_step([str(venv_python(venv_dir)), "-c", "import sys; print(sys.prefix)"], _CHECK_TIMEOUT_S,
                   "checking the published venv", env)
    prefix = out.strip().splitlines()[-1] if out.strip() else ""
    if os.path.realpath(prefix) != os.path.realpath(venv_dir):
        raise RunnerError(PackageErrorCode.INSTALL_FAILED,
                          f"the venv does not work after publishing: its python reports prefix {prefix!r}, "
                          f"expected {venv_dir}", step="publishing")
