"""The unit in packaging/systemd passes systemd-analyze verify and keeps the settings the daemon relies on."""

from __future__ import annotations

import getpass
import grp
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.wheels import REPO

UNIT = REPO / "packaging" / "systemd" / "procvision-runner.service"


def _directives() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found[key] = value
    return found


def test_unit_is_notify_with_watchdog_and_hardening() -> None:
    d = _directives()
    assert d["Type"] == "notify" and d["NotifyAccess"] == "main" and int(d["WatchdogSec"]) > 0
    assert d["ExecStart"] == "/opt/procvision-runner/bin/procvision-runner serve"
    assert d["NoNewPrivileges"] == "yes" and d["ProtectSystem"] == "strict" and d["PrivateTmp"] == "yes"
    assert d["ReadWritePaths"] == "/var/lib/procvision" == d["WorkingDirectory"]
    assert set(d["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert d["KillMode"] == "mixed"
    assert set(d["RestartPreventExitStatus"].split()) == {"2", "22", "26"}


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    # verify insists that ExecStart exists and is executable: point the unit at a real prefix.
    prefix, root = tmp_path / "opt", tmp_path / "var"
    (prefix / "bin").mkdir(parents=True)
    root.mkdir()
    exe = prefix / "bin" / "procvision-runner"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    user = getpass.getuser()
    group = grp.getgrgid(os.getgid()).gr_name
    text = (UNIT.read_text().replace("/opt/procvision-runner", str(prefix)).replace("/var/lib/procvision", str(root))
            .replace("User=procvision", f"User={user}").replace("Group=procvision", f"Group={group}"))
    unit = tmp_path / "procvision-runner.service"
    unit.write_text(text)
    check = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120, check=False)
    # An unknown or misspelt directive is only a warning (exit 0): no line may name the unit.
    assert check.returncode == 0 and unit.name not in check.stderr, check.stderr
    broken = tmp_path / "broken.service"
    broken.write_text(text.replace("NoNewPrivileges=", "NoNewPrivilegs="))
    check = subprocess.run([analyze, "verify", str(broken)], capture_output=True, text=True, timeout=120, check=False)
    assert "NoNewPrivilegs" in check.stderr  # the check above would catch a typo
