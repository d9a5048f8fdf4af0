"""System packages the test suite needs on the machine, installed when missing (CI is a fresh Debian
machine where the suite runs as root).

``ensure_bubblewrap`` makes sure ``bwrap`` exists: the worker sandbox tests box real workers with it.
Run by ``python -m tests.support.wheels`` (``./dev test`` does that before pytest).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

APT_UPDATE_TIMEOUT_S = 300.0
APT_INSTALL_TIMEOUT_S = 600.0


def _apt(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(["apt-get", *args], capture_output=True, text=True, timeout=timeout, check=False, env=env)


def ensure_bubblewrap() -> str | None:
    """The path of ``bwrap``, installing the Debian package ``bubblewrap`` first if needed and possible.

    Returns None (and says why on stderr) when it is missing and cannot be installed here (not root,
    no apt-get, no package source): the sandbox tests then fail with that reason.
    """
    found = shutil.which("bwrap")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print("bubblewrap is missing and cannot be installed here (needs root and apt-get); "
              "install the Debian package 'bubblewrap'", file=sys.stderr)
        return None
    try:
        install = _apt(["install", "-y", "--no-install-recommends", "bubblewrap"], APT_INSTALL_TIMEOUT_S)
        if install.returncode != 0:  # a fresh machine has no package lists yet
            _apt(["update"], APT_UPDATE_TIMEOUT_S)
            install = _apt(["install", "-y", "--no-install-recommends", "bubblewrap"], APT_INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        print(f"installing bubblewrap timed out: {exc}", file=sys.stderr)
        return None
    if install.returncode != 0:
        print(f"installing bubblewrap failed: {install.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return shutil.which("bwrap")


if __name__ == "__main__":
    print(ensure_bubblewrap() or "bubblewrap: not available")
