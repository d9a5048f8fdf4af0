"""System packages the test suite needs on the machine, installed when missing (CI is a fresh Debian
machine where the suite runs as root).

``ensure_bubblewrap`` makes sure ``bwrap`` exists: the worker sandbox tests box real workers with it.
``ensure_chromium`` makes sure headless Chromium and its matching chromedriver exist: the console's
browser tests (tests/console/) drive them; their fixture calls it.
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


CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def ensure_chromium() -> tuple[str, str] | None:
    """The paths of ``chromium`` and ``chromedriver``, installing the Debian packages ``chromium`` and
    ``chromium-driver`` first if needed and possible (root and apt-get); None, with the reason on
    stderr, when they are missing and cannot be installed here."""
    def found() -> tuple[str, str] | None:
        browser = shutil.which("chromium") or (CHROMIUM if os.path.exists(CHROMIUM) else None)
        driver = shutil.which("chromedriver") or (CHROMEDRIVER if os.path.exists(CHROMEDRIVER) else None)
        return (browser, driver) if browser and driver else None

    present = found()
    if present:
        return present
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print("chromium / chromedriver are missing and cannot be installed here (needs root and apt-get); "
              "install the Debian packages 'chromium' and 'chromium-driver'", file=sys.stderr)
        return None
    packages = ["install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]
    try:
        install = _apt(packages, APT_INSTALL_TIMEOUT_S)
        if install.returncode != 0:  # a fresh machine has no package lists yet
            _apt(["update"], APT_UPDATE_TIMEOUT_S)
            install = _apt(packages, APT_INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        print(f"installing chromium timed out: {exc}", file=sys.stderr)
        return None
    if install.returncode != 0:
        print(f"installing chromium failed: {install.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return found()


if __name__ == "__main__":
    print(ensure_bubblewrap() or "bubblewrap: not available")
    print(ensure_chromium() or "chromium: not available")
