"""What every venv tool does: create an empty venv (startable in the background), install pinned wheels."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

from ...config import Settings
from ...errors import PackageErrorCode, RunnerError
from ..venv import PendingStep, venv_python


class PendingVenv:
    """A venv being created in the background; ``finish`` waits for it and checks its interpreter."""

    def __init__(self, step: PendingStep, venv_dir: Path, tool: str) -> None:
        self._step = step
        self.venv_dir = venv_dir
        self.tool = tool

    def finish(self) -> None:
        self._step.finish()
        if not venv_python(self.venv_dir).exists():
            raise RunnerError(PackageErrorCode.INSTALL_FAILED, f"{self.tool} reported success but "
                              f"{venv_python(self.venv_dir)} does not exist", step="creating venv")

    def cancel(self) -> None:
        self._step.cancel()


class VenvTool(ABC):
    """Builds venvs offline for one install. ``env`` is the tools' environment (``venv.tool_environment``)."""

    #: Recorded in the registry as ``installer``.
    name: str
    #: Does ``install`` leave ``.pyc`` files (pip: yes; uv: no, the runner compiles them afterwards)?
    compiles_bytecode: bool

    def __init__(self, settings: Settings, env: Mapping[str, str]) -> None:
        self.settings = settings
        self.env = dict(env)

    @abstractmethod
    def create_argv(self, interpreter: str, venv_dir: Path) -> list[str]:
        """The command that creates an empty venv for ``interpreter`` at ``venv_dir``."""

    def start_venv(self, interpreter: str, venv_dir: Path, timeout_s: float | None = None) -> PendingVenv:
        """Start creating the venv; nothing of the package runs, so this may overlap the extraction.
        Its deadline is ``timeout_s`` (default: the ``venv_timeout_s`` setting)."""
        deadline_s = self.settings.venv_timeout_s if timeout_s is None else timeout_s
        step = PendingStep(self.create_argv(interpreter, venv_dir), deadline_s, f"creating the venv with {self.name}",
                           self.env)
        return PendingVenv(step, venv_dir, self.name)

    def warm_up(self, interpreter: str, scratch_dir: Path, timeout_s: float) -> None:
        """Fill the tool's own caches for ``interpreter`` by creating a throwaway venv at ``scratch_dir``
        (the caller removes it): uv caches what it learns about an interpreter, virtualenv its seed
        wheels, so the first real install does not pay for that. 2005 if the venv cannot be made
        within ``timeout_s``."""
        self.start_venv(interpreter, scratch_dir, timeout_s).finish()

    @abstractmethod
    def install(self, venv_dir: Path, wheels: Sequence[Path], wheels_dir: Path, requirements_file: Path) -> None:
        """Install ``requirements_file`` (exact pins) into the venv from the bundled wheels only, never an
        index. ``wheels`` are the chosen wheel files (all inside ``wheels_dir``, the package's folder)."""
