"""What a sandbox mechanism is: probe it, wrap a worker's command line in it, report what it protects.

One module per mechanism (``bubblewrap``, ``none``) implements ``Sandbox``; ``selection`` picks the
first that works on this machine, in a fixed fallback order, once per daemon.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

NetworkMode = Literal["isolated", "allowed", "host"]


@dataclass(frozen=True)
class Probe:
    """Whether a mechanism can be used here, and why not when it cannot."""

    available: bool
    reason: str = ""


@dataclass(frozen=True)
class BoxRequest:
    """Everything a mechanism needs to know to box one worker process.

    ``package_dir`` and ``python`` (the venv's interpreter) are shown read-only, with the venv and the
    Python installation it was made from; ``work_dir`` is the worker's private folder (its
    ``PROC_SHM_DIR``, holding its segment folder), shown read-write. ``hidden`` paths (the runtime
    root) must stay invisible even when they lie under a folder shown for another reason.
    """

    name: str
    version: str
    package_dir: Path
    python: Path
    work_dir: Path
    hidden: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Protections:
    """Which protections are in force for a worker, for ``status``/``show`` and the start-up log."""

    mechanism: str
    filesystem: bool = False  # private view: own version, venv, Python, system libraries; nothing else
    processes: bool = False  # own pid namespace: no other process (the daemon's) visible
    network: NetworkMode = "host"
    user: str = "the daemon's user"
    separate_user: bool = False
    no_new_privileges: bool = False
    capabilities_dropped: bool = False
    seccomp: bool = False
    devices: tuple[str, ...] = ()
    reason: str = ""  # why nothing (or less) is applied, when that is the case

    @property
    def any(self) -> bool:
        return self.filesystem or self.processes or self.network != "host" or self.separate_user

    def summary(self) -> str:
        """One line naming what is in force (or why nothing is)."""
        if not self.any:
            return f"none ({self.reason})" if self.reason else "none"
        parts = [name for name, on in (("filesystem", self.filesystem), ("processes", self.processes),
                                      ("no-new-privileges", self.no_new_privileges),
                                      ("no capabilities", self.capabilities_dropped),
                                      ("seccomp", self.seccomp)) if on]
        parts.append("network " + {"isolated": "off", "allowed": "allowed", "host": "shared"}[self.network])
        parts.append(f"user {self.user}")
        if self.devices:
            parts.append("devices " + " ".join(self.devices))
        return f"{self.mechanism}: " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["devices"] = list(self.devices)
        out["summary"] = self.summary()
        return out


@dataclass(frozen=True)
class BoxedCommand:
    """A worker command ready to spawn: its argv and environment, where the runner must put that
    worker's image segments (None: the shared default folder), and what protects it."""

    argv: list[str]
    env: dict[str, str]
    segment_dir: Path | None
    protections: Protections
    notes: list[str] = field(default_factory=list)


class Sandbox(ABC):
    """One sandboxing mechanism."""

    #: Name shown in status and logs.
    name: str = "sandbox"

    @abstractmethod
    def probe(self) -> Probe:
        """Can this mechanism box a worker on this machine, as this user? (Cheap after the first call.)"""

    @abstractmethod
    def protections(self, request: BoxRequest) -> Protections:
        """What ``wrap`` applies to ``request``'s worker."""

    @abstractmethod
    def wrap(self, argv: Sequence[str], env: Mapping[str, str], request: BoxRequest) -> BoxedCommand:
        """The command that runs ``argv`` with ``env`` inside this mechanism's box.

        Prepares what the box needs on disk (the worker's segment folder). Raises RunnerError
        SANDBOX_UNAVAILABLE when the box cannot be applied and running unboxed is not allowed.
        """

    @abstractmethod
    def segment_dir(self, work_dir: Path) -> Path | None:
        """Where the runner puts the image segments of the worker whose private folder is ``work_dir``
        (None: the shared default). Must agree with what ``wrap`` told the worker."""
