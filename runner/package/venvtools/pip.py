"""The fallback tool: virtualenv creates the venv, the venv's own pip installs from the package's wheels."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ..venv import run_step, venv_python
from .base import VenvTool
from .scripts import relocate_scripts


class PipTool(VenvTool):
    """virtualenv + pip, offline (``--no-download``, ``--no-index``)."""

    name = "pip"
    compiles_bytecode = True

    def create_argv(self, interpreter: str, venv_dir: Path) -> list[str]:
        # virtualenv (a runner dependency) rather than the target's own ``-m venv``: it works for
        # interpreters without ensurepip (Debian's python3 without python3-venv) and seeds pip from
        # the wheels it embeds, offline. Its cache lives under the root, not in a home folder.
        return [sys.executable, "-m", "virtualenv", "--quiet", "--no-download", "--no-periodic-update",
                "--app-data", str(self.settings.layout.virtualenv_app_data), "--python", interpreter,
                str(venv_dir)]

    def install(self, venv_dir: Path, wheels: Sequence[Path], wheels_dir: Path, requirements_file: Path) -> None:
        argv = [str(venv_python(venv_dir)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                "--no-input", "--no-index", "--find-links", str(wheels_dir), "-r", str(requirements_file)]
        run_step(argv, self.settings.pip_timeout_s, "installing the wheels with pip", self.env)
        # pip names the venv's python where it is now, in staging: publishing moves it.
        relocate_scripts(venv_dir, str(venv_python(venv_dir)))
