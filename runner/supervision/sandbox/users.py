"""The unprivileged user boxed workers run as, when the daemon can switch users (it runs as root)."""

from __future__ import annotations

import pwd
from dataclasses import dataclass

#: Used when the configured user name has no passwd entry. Python needs none (HOME is set for it),
#: and a number no account uses owns nothing on the machine.
FALLBACK_ID = 64999


@dataclass(frozen=True)
class WorkerUser:
    """The uid/gid a boxed worker gets, and how to name it to people."""

    uid: int
    gid: int
    label: str


def resolve_worker_user(setting: str) -> WorkerUser:
    """``setting`` (a user name or a numeric uid) as ids; a missing name falls back to FALLBACK_ID."""
    if setting.isdigit():
        uid = int(setting)
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            return WorkerUser(uid, uid, f"uid {uid}")
        return WorkerUser(uid, entry.pw_gid, f"{entry.pw_name} (uid {uid})")
    try:
        entry = pwd.getpwnam(setting)
    except KeyError:
        return WorkerUser(FALLBACK_ID, FALLBACK_ID, f"uid {FALLBACK_ID} (no user {setting!r} on this machine)")
    if entry.pw_uid == 0:
        # A name that maps to uid 0 would undo the switch; the fixed id keeps the worker unprivileged.
        return WorkerUser(FALLBACK_ID, FALLBACK_ID, f"uid {FALLBACK_ID} ({setting!r} is root)")
    return WorkerUser(entry.pw_uid, entry.pw_gid, f"{setting} (uid {entry.pw_uid})")
