"""The seccomp filter of boxed workers: system calls no algorithm needs fail with EPERM.

Built with ``pyseccomp`` (ctypes bindings of the system's libseccomp, the library behind Docker's and
Flatpak's filters) and exported as the compiled BPF program bubblewrap loads (``--seccomp FD``). The
program is written once per content into ``<root>/.sandbox/`` (the box never shows the root).

Blocked: mounting and namespace games (``mount``, ``pivot_root``, ``unshare``, ``setns``, ``clone``
with ``CLONE_NEWUSER``; ``clone3`` answers ENOSYS so the C library falls back to ``clone``), tracing
(``ptrace``), kernel modules, reboot and kexec, swap, the kernel keyring, BPF, perf events,
userfaultfd, clock setting and a few legacy calls. Everything else is allowed.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from runner.store.atomic import write_bytes_atomic

#: Answer EPERM: a denial the algorithm can handle, never a crash.
BLOCKED_SYSCALLS = (
    "mount", "umount2", "pivot_root", "unshare", "setns", "fsopen", "fsmount", "fsconfig", "fspick",
    "move_mount", "open_tree", "mount_setattr", "ptrace", "process_vm_readv", "process_vm_writev",
    "init_module", "finit_module", "delete_module", "reboot", "kexec_load", "kexec_file_load", "swapon",
    "swapoff", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "open_by_handle_at", "syslog", "acct", "quotactl", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "iopl", "ioperm", "vhangup", "lookup_dcookie", "nfsservctl",
)
CLONE_NEWUSER = 0x10000000


@dataclass(frozen=True)
class SeccompFilter:
    """Where the compiled filter is (None when it cannot be built here) and why not."""

    path: Path | None
    reason: str = ""


def _compile() -> bytes:
    import pyseccomp as sc  # loads libseccomp.so.2 (Debian: libseccomp2); OSError when it is missing

    rules = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in BLOCKED_SYSCALLS:
        try:
            rules.add_rule(sc.ERRNO(errno.EPERM), name)
        except (OSError, ValueError, RuntimeError):
            continue  # a call this architecture does not have (iopl on arm64...)
    rules.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    rules.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
    with tempfile.TemporaryFile() as out:
        rules.export_bpf(out)
        out.seek(0)
        return out.read()


@functools.lru_cache(maxsize=4)
def seccomp_filter(folder: Path) -> SeccompFilter:
    """The compiled filter in ``folder`` (written there if missing). Cached: it never changes."""
    try:
        program = _compile()
    except (ImportError, OSError, RuntimeError, ValueError) as exc:
        return SeccompFilter(None, f"no seccomp filter: libseccomp is not usable here ({exc})")
    path = folder / f"seccomp-{hashlib.sha256(program).hexdigest()[:16]}.bpf"
    try:
        if not path.is_file() or path.read_bytes() != program:
            folder.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(path, program)
    except OSError as exc:
        return SeccompFilter(None, f"no seccomp filter: cannot write {path}: {exc}")
    return SeccompFilter(path)
