"""The station bundle installs and serves with the network really gone (``unshare -n``).

One bundle build (from the wheel cache ``./dev test`` fills), one install inside a network namespace
with only loopback, ``serve`` with a NOTIFY_SOCKET, the bundled example installed, activated and
executed through the installed CLI, a clean SIGTERM stop. Then, on the same prefix: the rendered
systemd unit passes ``systemd-analyze verify``, a broken upgrade leaves the old install working, and a
good one switches versions while keeping the root.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.wheels import BUNDLE_PLATFORM, REPO, ensure_runner_wheels

pytestmark = pytest.mark.slow
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def _unshare_works() -> str | None:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare or ip is not installed"
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, text=True,
                           timeout=30, check=False)
    if probe.returncode != 0:
        return f"unshare -n is not permitted here ({probe.stderr.strip()}); the test needs root or CAP_SYS_ADMIN"
    return None


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = _unshare_works()
    if reason:
        pytest.skip(reason)
    wheels = ensure_runner_wheels()
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run([sys.executable, str(REPO / "packaging" / "bundle" / "build.py"), "--python", PYTHON,
                            "--platform", BUNDLE_PLATFORM, "--wheels-from", str(wheels), "--offline",
                            "--out", str(out)], capture_output=True, text=True, timeout=600, check=False)
    assert build.returncode == 0, build.stderr
    tarball = Path(build.stdout.strip().splitlines()[-1])
    assert tarball.name == f"procvision-runner-1.0.0-py{PYTHON}-{BUNDLE_PLATFORM}.tar.gz"
    unpacked = tmp_path_factory.mktemp("station")
    with tarfile.open(tarball) as tar:
        tar.extractall(unpacked, filter="tar")
    (top,) = unpacked.iterdir()
    names = {p.name for p in (top / "wheels").iterdir()}
    assert any(n.startswith("procvision_runner-1.0.0-") for n in names)
    assert any(n.startswith("procvision_algorithm_sdk-1.0.0-") for n in names)
    assert any(n.startswith("uv-") for n in names)
    assert (top / "systemd" / "procvision-runner.service").is_file()
    assert (top / "SHA256SUMS").is_file() and (top / "doc" / "operations.md").is_file()
    return top


def _install(bundle: Path, prefix: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["unshare", "-n", "bash", str(bundle / "install.sh"), "--prefix", str(prefix), *args],
                          capture_output=True, text=True, timeout=600, check=False)


def test_bundle_installs_serves_and_executes_with_no_network(bundle_dir: Path, tmp_path: Path) -> None:
    prefix, root, units = tmp_path / "opt", tmp_path / "var-lib", tmp_path / "units"
    env = {**os.environ, "PROCVISION_SYSTEMD_UNIT_DIR": str(units)}
    proc = subprocess.run(["unshare", "-n", sys.executable, "-m", "tests.support.offline_station", str(bundle_dir),
                           str(prefix), str(root), str(tmp_path), "--systemd", "--user", getpass.getuser()],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    detail = json.dumps(report, indent=1)[-6000:]
    assert report["network"]["connect_errno"] != 0 and report["network"]["links"] == ["lo"], detail
    assert report["install"]["code"] == 0, detail
    assert "procvision-runner serve" in report["install"]["out"] or "systemctl" in report["install"]["out"]
    assert report["serve"]["ready"], detail
    # The API docs open in a browser with the network gone: the page and every asset it names.
    assert len(report["docs"]) >= 3 and set(report["docs"].values()) == {200}, detail
    assert report["install_example"]["code"] == 0, detail
    assert report["activate"]["code"] == 0, detail
    assert report["execute"]["code"] == 0, detail
    result = json.loads(report["execute"]["out"])
    assert result, detail
    assert report["stop_code"] == 0, detail
    assert report["notify"][0].startswith("READY=1"), detail
    assert any(m.startswith("STOPPING=1") for m in report["notify"]), detail
    assert (root / ".token").is_file()

    # The unit the installer rendered names this prefix, root and user, and systemd accepts it.
    unit = units / "procvision-runner.service"
    text = unit.read_text()
    assert f"ExecStart={prefix}/bin/procvision-runner serve" in text
    assert f"ReadWritePaths={root}" in text
    assert f"Documentation=file:{prefix}/current/share/doc/operations.md" in text
    assert (prefix / "current" / "share" / "doc" / "operations.md").is_file()
    python_home = os.path.realpath(sys.executable).startswith(("/root/", "/home/"))
    assert ("ProtectHome=read-only" if python_home else "ProtectHome=yes") in text
    check = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=120,
                           check=False)
    assert check.returncode == 0 and unit.name not in check.stderr, check.stderr

    # A broken upgrade (a wheel missing) fails before the switch: the old install keeps working.
    current = os.readlink(prefix / "current")
    broken = tmp_path / "broken-bundle"
    shutil.copytree(bundle_dir, broken)
    victim = next((broken / "wheels").glob("fastapi-*.whl"))
    victim.unlink()
    sums = broken / "SHA256SUMS"
    sums.write_text("".join(line + "\n" for line in sums.read_text().splitlines() if victim.name not in line))
    failed = _install(broken, prefix)
    assert failed.returncode != 0
    assert "still runs" in failed.stderr, failed.stderr
    assert os.readlink(prefix / "current") == current
    assert len(list((prefix / "versions").iterdir())) == 1
    version = subprocess.run([str(prefix / "bin" / "procvision-runner"), "--version"], capture_output=True, text=True,
                             timeout=60, check=False)
    assert version.stdout.strip() == "procvision-runner 1.0.0"

    # Running it again upgrades in place and keeps the root named in the config.
    config = (prefix / "etc" / "runner_config.json").read_text()
    again = _install(bundle_dir, prefix)
    assert again.returncode == 0, again.stderr
    assert os.readlink(prefix / "current") != current
    assert (prefix / "etc" / "runner_config.json").read_text() == config
    assert json.loads(config)["root"] == str(root)
    assert (root / ".token").is_file()
    assert len(list((prefix / "versions").iterdir())) == 2


def test_install_names_the_python_it_needs(bundle_dir: Path, tmp_path: Path) -> None:
    fake = tmp_path / "python-wrong"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    proc = _install(bundle_dir, tmp_path / "opt", "--python", str(fake))
    assert proc.returncode != 0
    assert f"is not Python {PYTHON}" in proc.stderr
    assert not (tmp_path / "opt" / "current").exists()
