"""Choosing how worker memory is bounded on this machine.

Tried in order: a cgroup v2 child (needs the memory controller delegated to the daemon's cgroup),
a cgroup v1 memory child (needs the v1 memory hierarchy and the right to create a folder in the
daemon's own memory cgroup), ``RLIMIT_DATA`` (always there; per process, less exact), and none.
Each one rejected gets its reason in the report, so ``status`` says why the one in force was chosen.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from .base import CGROUP_V1, CGROUP_V2, MECHANISMS, NONE, RLIMIT_DATA, Containment, ContainmentReport
from .cgroup_v1 import CgroupV1Containment
from .cgroup_v2 import CgroupV2Containment
from .rlimit import RlimitContainment
from .unlimited import NoContainment


class Unusable(Exception):
    """A mechanism cannot be used here; the message says why."""


@dataclass(frozen=True)
class Mount:
    root: str
    point: Path
    fstype: str
    options: frozenset[str]


def read_mounts(mountinfo: Path) -> list[Mount]:
    """The mounts of ``/proc/<pid>/mountinfo`` (root, mount point, fs type, super options)."""
    mounts: list[Mount] = []
    for line in mountinfo.read_text(encoding="utf-8", errors="replace").splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        point = fields[4].replace("\\040", " ")
        mounts.append(Mount(fields[3], Path(point), tail[0], frozenset(tail[2].split(","))))
    return mounts


def read_cgroups(cgroup_file: Path) -> dict[str, str]:
    """Controller (``""`` for the v2 hierarchy) -> the process's cgroup path, from /proc/<pid>/cgroup."""
    paths: dict[str, str] = {}
    for line in cgroup_file.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            paths[controller] = parts[2]
    return paths


def _folder(mount: Mount, own: str) -> Path:
    # In a container the mount's root can be the cgroup itself: take the part below it.
    rel = own[len(mount.root):] if mount.root != "/" and own.startswith(mount.root) else own
    return mount.point / rel.lstrip("/")


def _try_child(folder: Path, control_file: str) -> None:
    # Unique per call, not per process: two installs' smoke tests may probe at the same moment, and
    # a shared name made one of them see EEXIST and fall back to a weaker mechanism.
    probe = folder / f"procvision-probe-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    try:
        probe.mkdir()
    except OSError as exc:
        raise Unusable(f"cannot create a cgroup under {folder}: {exc.strerror or exc}") from exc
    try:
        if not (probe / control_file).exists():
            raise Unusable(f"a cgroup under {folder} has no {control_file}")
    finally:
        try:
            probe.rmdir()
        except OSError as exc:
            raise Unusable(f"cannot remove the probe cgroup {probe}: {exc.strerror or exc}") from exc


def probe_v2(mounts: list[Mount], cgroups: dict[str, str]) -> CgroupV2Containment:
    """cgroup v2 allows no processes in a cgroup whose children get controllers, so worker cgroups
    go under the daemon's own cgroup only if the daemon is not in it itself (never, in practice);
    else under its parent, which is the delegated root when the daemon was put in a leaf of it
    (systemd ``Delegate=yes`` with ``DelegateSubgroup=``)."""
    mount = next((m for m in mounts if m.fstype == "cgroup2"), None)
    if mount is None or "" not in cgroups:
        raise Unusable("no cgroup2 hierarchy is mounted")
    own = _folder(mount, cgroups[""])
    reasons: list[str] = []
    for folder in (own, own.parent) if own != mount.point else (own,):
        try:
            return _probe_v2_parent(folder)
        except Unusable as exc:
            reasons.append(str(exc))
    raise Unusable("; ".join(reasons))


def _probe_v2_parent(folder: Path) -> CgroupV2Containment:
    try:
        available = (folder / "cgroup.controllers").read_text(encoding="ascii").split()
    except OSError as exc:
        raise Unusable(f"cannot read {folder / 'cgroup.controllers'}: {exc.strerror or exc}") from exc
    if "memory" not in available:
        raise Unusable(f"the memory controller is not available in cgroup2 at {folder} "
                       "(bound to cgroup v1, or not delegated to the daemon)")
    control = folder / "cgroup.subtree_control"
    try:
        if "memory" not in control.read_text(encoding="ascii").split():
            control.write_text("+memory", encoding="ascii")
    except OSError as exc:
        raise Unusable(f"cannot enable the memory controller for children of {folder}: {exc.strerror or exc} "
                       "(run the daemon in a leaf of a delegated cgroup: systemd Delegate=yes and "
                       "DelegateSubgroup=runner)") from exc
    _try_child(folder, "memory.max")
    return CgroupV2Containment(folder, f"memory cgroups (v2) under {folder}")


def probe_v1(mounts: list[Mount], cgroups: dict[str, str]) -> CgroupV1Containment:
    mount = next((m for m in mounts if m.fstype == "cgroup" and "memory" in m.options), None)
    if mount is None or "memory" not in cgroups:
        raise Unusable("no cgroup v1 memory hierarchy is mounted")
    folder = _folder(mount, cgroups["memory"])
    _try_child(folder, "memory.limit_in_bytes")
    return CgroupV1Containment(folder, f"memory cgroups (v1) under {folder}")


def choose_containment(preferred: str, limit_mb: int, proc_self: Path = Path("/proc/self")
                       ) -> tuple[Containment, ContainmentReport]:
    """The first usable mechanism (``preferred`` first unless it is ``auto``) and the report of why.

    ``proc_self`` is where the process's ``cgroup`` and ``mountinfo`` are read (tests point it
    elsewhere).
    """
    order = list(MECHANISMS)
    if preferred in order:
        order.remove(preferred)
        order.insert(0, preferred)
    rejected: list[tuple[str, str]] = []
    try:
        mounts = read_mounts(proc_self / "mountinfo")
        cgroups = read_cgroups(proc_self / "cgroup")
    except OSError as exc:
        mounts, cgroups = [], {}
        rejected.append(("cgroup", f"cannot read {proc_self}: {exc.strerror or exc}"))
    for name in order:
        try:
            chosen = _build(name, mounts, cgroups, limit_mb, preferred)
        except Unusable as exc:
            rejected.append((name, str(exc)))
            continue
        return chosen, ContainmentReport(chosen.name, chosen.reason, limit_mb, tuple(rejected))
    raise AssertionError("the 'none' mechanism is always usable")  # pragma: no cover


def _build(name: str, mounts: list[Mount], cgroups: dict[str, str], limit_mb: int, preferred: str
           ) -> Containment:
    if name == CGROUP_V2:
        return probe_v2(mounts, cgroups)
    if name == CGROUP_V1:
        return probe_v1(mounts, cgroups)
    if name == RLIMIT_DATA:
        return RlimitContainment("RLIMIT_DATA per worker process (no memory cgroup can be created here)"
                                 if preferred != RLIMIT_DATA else "RLIMIT_DATA per worker process (chosen "
                                 "by worker_memory_mechanism)")
    assert name == NONE
    why = "worker_memory_mechanism is none" if preferred == NONE else "no mechanism is usable"
    return NoContainment(f"{why}; workers have no memory limit" if limit_mb > 0 else
                         "worker_memory_limit_mb is 0; workers have no memory limit")
