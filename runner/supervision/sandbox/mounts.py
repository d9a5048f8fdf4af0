"""The filesystem a boxed worker sees, as bubblewrap options: an empty root with only what it needs.

Read-only: the system folders (``/usr`` and the ``/lib*``, ``/bin`` links), a few ``/etc`` files the C
library and Python read, the worker's package folder, venv and Python installation. Read-write: its
private folder (images, segments) and private tmpfs scratch (``/tmp``, also its HOME). ``/proc`` is
the box's own (its pid namespace), ``/dev`` a minimal one plus configured devices. Everything else
(the runtime root with the token, registry, active bindings, trust keys, other versions) is absent.
"""

from __future__ import annotations

import functools
import glob
import os
from pathlib import Path

#: System folders shown read-only (a symlink, as on merged-/usr systems, is recreated as a symlink).
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: /etc entries the dynamic loader, the C library and Python read. No secrets (no shadow, no keys).
ETC_ENTRIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "alternatives",
               "nsswitch.conf", "passwd", "group", "hosts", "host.conf", "mime.types", "os-release")
#: What name resolution and TLS need, shown only to versions allowed on the network.
NETWORK_ETC_ENTRIES = ("resolv.conf", "gai.conf", "ssl", "ca-certificates", "ca-certificates.conf", "pki")
#: The worker's scratch (TMPDIR and HOME): a tmpfs private to the box.
SCRATCH = Path("/tmp")


def _under(path: Path, folder: Path) -> bool:
    # Plain string comparison: Path.parents is slow, and this runs on every worker start.
    inner, outer = str(path), str(folder).rstrip("/")
    return inner == outer or inner.startswith(outer + "/") or outer == ""


class MountPlan:
    """Builds bubblewrap's filesystem options in order, creating parent folders (mode 0755) as needed."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self._binds: list[Path] = []  # folders shown from the host: everything under them exists
        self._made: set[Path] = {Path("/")}  # folders that exist in the box (mount points, created dirs)

    def _parents(self, path: Path) -> None:
        for parent in reversed(path.parents):
            if parent in self._made or any(_under(parent, b) for b in self._binds):
                continue
            self.args += ["--perms", "0755", "--dir", str(parent)]
            self._made.add(parent)

    def covered(self, path: Path) -> bool:
        """Is ``path`` already shown through an earlier bind?"""
        return any(_under(path, b) for b in self._binds)

    def bind(self, path: Path, *, writable: bool = False, source: Path | None = None) -> None:
        """Show host folder or file ``source`` (default: ``path`` itself) at ``path``."""
        self._parents(path)
        self.args += ["--bind" if writable else "--ro-bind", str(source or path), str(path)]
        self._binds.append(path)
        self._made.add(path)

    def symlink(self, target: str, path: Path) -> None:
        self._parents(path)
        self.args += ["--symlink", target, str(path)]
        self._made.add(path)

    def tmpfs(self, path: Path, mode: str = "0755") -> None:
        self._parents(path)
        self.args += ["--perms", mode, "--tmpfs", str(path)]
        self._made.add(path)
        # Hiding a bound folder: its content is gone, so folders under it must be made again.
        self._binds = [b for b in self._binds if not _under(b, path)]
        self._made = {m for m in self._made if not _under(m, path) or m == path}

    def special(self, option: str, path: Path) -> None:
        self._parents(path)
        self.args += [option, str(path)]
        self._made.add(path)

    def device(self, path: Path) -> None:
        self._parents(path)
        self.args += ["--dev-bind", str(path), str(path)]
        self._made.add(path)


def system_plan(network: bool) -> MountPlan:
    """A new plan holding the system mounts (computed once per process: they do not change)."""
    args, binds, made = _system_state(network)
    plan = MountPlan()
    plan.args, plan._binds, plan._made = list(args), list(binds), set(made)
    return plan


@functools.lru_cache(maxsize=2)
def _system_state(network: bool) -> tuple[tuple[str, ...], tuple[Path, ...], frozenset[Path]]:
    plan = MountPlan()
    system_mounts(plan, network)
    return tuple(plan.args), tuple(plan._binds), frozenset(plan._made)


def system_mounts(plan: MountPlan, network: bool) -> None:
    """System folders, /etc entries, /proc, /dev with a private /dev/shm, and the /tmp scratch."""
    for name in SYSTEM_PATHS:
        path = Path(name)
        if path.is_symlink():
            plan.symlink(os.readlink(path), path)
        elif path.is_dir():
            plan.bind(path)
    for entry in ETC_ENTRIES + (NETWORK_ETC_ENTRIES if network else ()):
        path = Path("/etc") / entry
        if path.exists():
            # A link (localtime, resolv.conf) may point outside what the box shows: show its target here.
            plan.bind(path, source=Path(os.path.realpath(path)))
    plan.special("--proc", Path("/proc"))
    plan.special("--dev", Path("/dev"))
    plan.tmpfs(Path("/dev/shm"), "1777")
    plan.tmpfs(SCRATCH, "1777")


def device_paths(patterns: list[str]) -> list[Path]:
    """Existing device nodes matching the configured paths or globs, sorted."""
    found: set[Path] = set()
    for pattern in patterns:
        found.update(Path(p) for p in glob.glob(pattern) if Path(p).exists())
    return sorted(found)


def nested_last(paths: list[Path]) -> list[Path]:
    """``paths`` with folders inside another listed folder dropped, parents first."""
    kept: list[Path] = []
    for path in sorted(set(paths), key=lambda p: (len(p.parts), str(p))):
        if not any(_under(path, k) for k in kept):
            kept.append(path)
    return kept
