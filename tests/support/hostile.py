"""A hostile algorithm: from import and from ``execute`` it tries everything a worker must not do, and
records the outcome of each attempt instead of failing (a denial is the algorithm's problem).

Its targets (paths, pids, ports) come from ``targets.json`` next to its source, written by the test.
``execute`` answers status OK with ``data.attempts = {"import": {...}, "execute": {...}}``, each
attempt as ``{"denied": bool, "how": str}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.algorithms import algorithm_source

#: Attempts that every box must deny.
FORBIDDEN = ("read_token", "read_token_env", "write_registry", "write_active", "read_other_version", "read_trust_keys",
             "map_other_segment", "list_other_segments", "signal_daemon", "read_daemon_proc", "connect_api",
             "connect_outside", "write_package", "write_system", "setuid_root", "new_user_namespace", "ptrace_child")
#: Attempts only the seccomp filter stops (an unprivileged process may do both without one).
SECCOMP_ONLY = ("new_user_namespace", "ptrace_child")
#: Attempts that must work inside the box (it is a box, not a broken process).
ALLOWED = ("write_scratch",)

#: What the algorithm does at import: the attempts, then one round of them.
ATTEMPTS_SOURCE = r'''
T = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "targets.json")))


def read_token():
    return open(T["token"]).read()


def read_token_env():
    found = [k for k, v in os.environ.items() if T["token_value"] in v]
    if not found:
        raise PermissionError("the token is in no environment variable")
    return found


def write_registry():
    with open(T["registry"], "a") as fh:  # appending nothing proves write access, damages nothing
        fh.write("")


def write_active():
    path = os.path.join(T["active"], "hostile.json")
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    os.unlink(path)


def read_other_version():
    return open(T["other_manifest"]).read()


def read_trust_keys():
    return open(T["trust_key"]).read()


def map_other_segment():
    fd = os.open(T["other_segment"], os.O_RDONLY)
    try:
        return len(mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ))
    finally:
        os.close(fd)


def list_other_segments():
    return os.listdir(T["other_segment_dir"])


def signal_daemon():
    os.kill(T["daemon_pid"], 0)


def read_daemon_proc():
    return open("/proc/%d/environ" % T["daemon_pid"], "rb").read()[:10]


def connect_api():
    socket.create_connection(("127.0.0.1", T["api_port"]), timeout=2).close()


def connect_outside():
    socket.create_connection((T["outside_host"], 80), timeout=2).close()


def write_package():
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "planted.py"), "w") as fh:
        fh.write("x = 1\n")


def write_system():
    with open(T["system_file"], "w") as fh:
        fh.write("x")


def setuid_root():
    out = subprocess.run([T["setuid_binary"]], capture_output=True, text=True, timeout=10).stdout
    if "euid=0" in out or out.startswith("uid=0("):
        return out
    raise PermissionError("setuid bit had no effect: " + out.strip())


_LIBC = ctypes.CDLL(None, use_errno=True)


def _in_child(action):
    """Run ``action`` in a forked child (so nothing it changes sticks to the worker); True if it worked."""
    child = os.fork()
    if child == 0:
        try:
            os._exit(0 if action() == 0 else 1)
        finally:
            os._exit(2)
    return os.waitpid(child, 0)[1] == 0


def new_user_namespace():
    if not _in_child(lambda: _LIBC.unshare(0x10000000)):  # CLONE_NEWUSER
        raise PermissionError("unshare(CLONE_NEWUSER) failed")


def ptrace_child():
    child = os.fork()
    if child == 0:
        time.sleep(5)
        os._exit(0)
    try:
        if _LIBC.ptrace(16, child, None, None) != 0:  # PTRACE_ATTACH
            raise PermissionError("ptrace attach failed: errno %d" % ctypes.get_errno())
        os.waitpid(child, 0)  # stopped by the attach
        _LIBC.ptrace(17, child, None, None)  # PTRACE_DETACH
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)


def write_scratch():
    with tempfile.NamedTemporaryFile(dir=tempfile.gettempdir()) as fh:
        fh.write(b"scratch")
        return fh.name


ATTEMPTS = [read_token, read_token_env, write_registry, write_active, read_other_version, read_trust_keys,
            map_other_segment, list_other_segments, signal_daemon, read_daemon_proc, connect_api, connect_outside,
            write_package, write_system, setuid_root, new_user_namespace, ptrace_child, write_scratch]


def attempt_all():
    outcomes = {}
    for attempt in ATTEMPTS:
        try:
            result = attempt()
        except BaseException as exc:  # recorded: the call must go on
            outcomes[attempt.__name__] = {"denied": True, "how": "%s: %s" % (type(exc).__name__, exc)}
        else:
            outcomes[attempt.__name__] = {"denied": False, "how": repr(result)[:200]}
    return outcomes


AT_IMPORT = attempt_all()
'''

SOURCE = algorithm_source(
    imports="""
        import ctypes
        import json
        import mmap
        import os
        import socket
        import subprocess
        import tempfile
        import time
    """,
    prelude=ATTEMPTS_SOURCE, class_name="Algo",
    info={"name": "hostile", "version": "1.0.0", "description": "tries to escape", "supported_pids": ["P1"],
          "steps": [{"index": 1, "name": "escape", "params": []}]},
    execute="""
        return {"status": "OK", "data": {"result_status": "OK", "defect_rects": [],
                                         "attempts": {"import": AT_IMPORT, "execute": attempt_all()}}}
    """)


def targets_json(**targets: Any) -> str:
    """The targets file's text."""
    return json.dumps({key: str(value) if isinstance(value, Path) else value for key, value in targets.items()})
