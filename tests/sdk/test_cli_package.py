"""``procvision-cli package`` and ``validate --zip`` with real zips and real wheels (offline)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from procvision_algorithm_sdk.cli.main import main
from procvision_algorithm_sdk.wheel_builder import build_sdk_wheel
from tests.support import wheels as wheel_cache

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example-algorithm"


@pytest.fixture(scope="module")
def cache() -> Path:
    return wheel_cache.ensure()


def package(project: Path, out: Path, cache: Path, *extra: str) -> tuple[int, str, str]:
    o, e = io.StringIO(), io.StringIO()
    code = main(["package", str(project), "-o", str(out), "--offline", "--wheels-from", str(cache), *extra],
                out=o, err=e)
    return code, o.getvalue(), e.getvalue()


def validate_zip(path: Path) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    code = main(["validate", "--zip", str(path), "--json"], out=out, err=io.StringIO())
    return code, json.loads(out.getvalue())


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in report["checks"] if c["name"] == name)


def copy_example(dest: Path) -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", "dist"))
    return dest


def test_package_example_passes_validate_zip(tmp_path: Path, cache: Path) -> None:
    project = copy_example(tmp_path / "proj")
    # Things that must never be packaged.
    (project / "__pycache__").mkdir()
    (project / "__pycache__" / "x.pyc").write_bytes(b"junk")
    (project / ".git").mkdir()
    (project / ".git" / "HEAD").write_text("ref")
    (project / "myvenv").mkdir()
    (project / "myvenv" / "pyvenv.cfg").write_text("home = /usr")
    (project / "old-v0.9-offline.zip").write_bytes(b"PK")
    code, out, err = package(project, tmp_path / "out", cache, "--python-version", "3.11", "--platform",
                             "manylinux_2_28_x86_64")
    assert code == 0, err
    zpath = Path(out.strip())
    assert zpath.name == "example-defect-detector-v1.0.0-offline.zip"
    with zipfile.ZipFile(zpath) as zf:
        names = zf.namelist()
        env = json.loads(zf.read(".procvision_env.json"))
        reqs = zf.read("requirements.txt").decode().split()
    assert names == sorted(names)
    assert "manifest.json" in names and "defect_detector/algorithm.py" in names
    assert not [n for n in names if "__pycache__" in n or n.startswith((".git/", "myvenv/")) or n.endswith(".zip")]
    wheels = [n for n in names if n.startswith("wheels/")]
    assert any(n.startswith("wheels/numpy-") for n in wheels)
    assert any(n.startswith("wheels/procvision_algorithm_sdk-") for n in wheels)
    assert env == {"python_version": "3.11", "abi": "cp311", "implementation": "cp",
                   "wheels_platform": "manylinux_2_28_x86_64"}
    assert "numpy>=1.21" in reqs and any(r.startswith("procvision-algorithm-sdk==") for r in reqs)
    code, report = validate_zip(zpath)
    assert code == 0, report
    assert "numpy-" in check(report, "dependencies")["message"]


def test_package_is_deterministic(tmp_path: Path, cache: Path) -> None:
    project = copy_example(tmp_path / "proj")
    first = Path(package(project, tmp_path / "a", cache)[1].strip())
    second = Path(package(project, tmp_path / "b", cache)[1].strip())
    assert first.name == second.name
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest(), \
        differing_entries(first, second)


def differing_entries(a: Path, b: Path) -> list[str]:
    """Names whose bytes differ (the SDK wheel differs if someone edits the SDK between the builds)."""
    with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
        names = sorted(set(za.namelist()) | set(zb.namelist()))
        return [n for n in names if n not in za.namelist() or n not in zb.namelist() or za.read(n) != zb.read(n)]


def test_package_default_output_and_repackage(tmp_path: Path, cache: Path) -> None:
    project = copy_example(tmp_path / "proj")
    first = Path(package(project, project / "dist", cache)[1].strip())
    kept = tmp_path / "first.zip"
    shutil.copy(first, kept)
    o, e = io.StringIO(), io.StringIO()
    assert main(["package", str(project), "--offline", "--wheels-from", str(cache)], out=o, err=e) == 0, e.getvalue()
    assert Path(o.getvalue().strip()) == first
    assert first.read_bytes() == kept.read_bytes(), differing_entries(kept, first)


def test_package_fails_clearly_when_a_wheel_is_unavailable(tmp_path: Path, cache: Path) -> None:
    project = copy_example(tmp_path / "proj")
    (project / "requirements.txt").write_text("numpy\nno-such-package-procvision-test==1.0\n")
    code, _out, err = package(project, tmp_path / "out", cache)
    assert code == 1
    assert "pip download failed" in err and "no-such-package-procvision-test" in err
    assert not list((tmp_path / "out").glob("*.zip"))


def test_package_rejects_target_outside_python_requires(tmp_path: Path, cache: Path) -> None:
    project = copy_example(tmp_path / "proj")
    manifest = json.loads((project / "manifest.json").read_text())
    manifest["python_requires"] = ">=3.12"
    (project / "manifest.json").write_text(json.dumps(manifest))
    code, _out, err = package(project, tmp_path / "out", cache, "--python-version", "3.11")
    assert code == 1 and "requires Python '>=3.12'" in err and "3.11" in err
    assert "in a worker process" not in err, "a check of the manifest fails before any worker starts"


# --- validate --zip on hand-built archives ----------------------------------------------------------


def make_wheel(folder: Path, name: str, version: str, tag: str, requires: tuple[str, ...] = (),
               requires_python: str | None = None) -> Path:
    """A real (tiny) wheel: a module and dist-info METADATA with Requires-Dist lines."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    path = folder / f"{dist}-{version}-{tag}.whl"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        meta.append(f"Requires-Python: {requires_python}")
    meta += [f"Requires-Dist: {r}" for r in requires]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{dist}/__init__.py", "")
        zf.writestr(f"{dist}-{version}.dist-info/METADATA", "\n".join(meta) + "\n")
        zf.writestr(f"{dist}-{version}.dist-info/WHEEL", f"Wheel-Version: 1.0\nTag: {tag}\n")
    return path


MANIFEST = {"name": "z-algo", "version": "2.0.0", "entry_point": "zalgo.algo:Algo", "supported_pids": ["P1"]}
ENV = {"python_version": "3.11", "abi": "cp311", "implementation": "cp", "wheels_platform": "manylinux2014_x86_64"}


def make_zip(path: Path, wheels: list[Path], requirements: str, *, prefix: str = "", manifest: Any = MANIFEST,
             env: Any = ENV, wheels_prefix: str = "", extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        if manifest is not None:
            zf.writestr(prefix + "manifest.json", json.dumps(manifest))
        zf.writestr(prefix + "zalgo/algo.py", "class Algo: ...\n")
        zf.writestr(prefix + "requirements.txt", requirements)
        if env is not None:
            zf.writestr(prefix + ".procvision_env.json", json.dumps(env))
        for w in wheels:
            zf.write(w, f"{wheels_prefix}wheels/{w.name}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


@pytest.fixture()
def sdk_wheel(tmp_path: Path) -> Path:
    return build_sdk_wheel(tmp_path / "sdkw")


SDK_REQ = "procvision-algorithm-sdk\n"


def test_zip_with_fitting_wheels_passes(tmp_path: Path, sdk_wheel: Path) -> None:
    numpy = make_wheel(tmp_path / "w", "numpy", "1.26.4", "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64")
    zpath = make_zip(tmp_path / "ok.zip", [sdk_wheel, numpy], "numpy>=1.21\n" + SDK_REQ)
    code, report = validate_zip(zpath)
    assert code == 0, report
    assert "manylinux2014_x86_64" in check(report, "target")["message"]


def test_missing_wheel_for_a_requirement_is_named(tmp_path: Path, sdk_wheel: Path) -> None:
    numpy = make_wheel(tmp_path / "w", "numpy", "1.26.4", "cp311-cp311-manylinux2014_x86_64")
    zpath = make_zip(tmp_path / "z.zip", [sdk_wheel, numpy], "numpy\nopencv-python-headless>=4\n" + SDK_REQ)
    code, report = validate_zip(zpath)
    assert code == 1
    msg = check(report, "dependencies")["message"]
    assert "opencv-python-headless" in msg and "no wheel" in msg


def test_wheel_for_the_wrong_python_names_wheel_and_target(tmp_path: Path, sdk_wheel: Path) -> None:
    numpy = make_wheel(tmp_path / "w", "numpy", "1.26.4", "cp312-cp312-manylinux2014_x86_64")
    zpath = make_zip(tmp_path / "z.zip", [sdk_wheel, numpy], "numpy\n" + SDK_REQ)
    code, report = validate_zip(zpath)
    assert code == 1
    msg = check(report, "dependencies")["message"]
    assert "numpy-1.26.4-cp312-cp312-manylinux2014_x86_64.whl" in msg
    assert "Python 3.11" in msg and "cp311" in msg


def test_wheel_for_a_newer_glibc_than_the_target_fails(tmp_path: Path, sdk_wheel: Path) -> None:
    numpy = make_wheel(tmp_path / "w", "numpy", "2.0.0", "cp311-cp311-manylinux_2_28_x86_64")
    code, report = validate_zip(make_zip(tmp_path / "z.zip", [sdk_wheel, numpy], "numpy\n" + SDK_REQ))
    assert code == 1 and "manylinux_2_28_x86_64" in check(report, "dependencies")["message"]


def test_transitive_dependencies_and_markers(tmp_path: Path, sdk_wheel: Path) -> None:
    app = make_wheel(tmp_path / "w", "appdep", "1.0", "py3-none-any",
                     requires=("helper>=2", 'winonly; sys_platform == "win32"', 'extraonly; extra == "gui"'))
    helper_old = make_wheel(tmp_path / "w", "helper", "1.5", "py3-none-any")
    zpath = make_zip(tmp_path / "z.zip", [sdk_wheel, app, helper_old], "appdep\n" + SDK_REQ)
    code, report = validate_zip(zpath)
    assert code == 1
    msg = check(report, "dependencies")["message"]
    assert "helper>=2" in msg and "appdep-1.0-py3-none-any.whl" in msg and "1.5" in msg
    assert "winonly" not in msg and "extraonly" not in msg
    helper = make_wheel(tmp_path / "w2", "helper", "2.1", "py3-none-any")
    # The SDK wheel itself requires numpy, so a package without numpy is incomplete.
    numpy = make_wheel(tmp_path / "w2", "numpy", "1.26.4", "cp311-cp311-manylinux2014_x86_64")
    code, report = validate_zip(make_zip(tmp_path / "z2.zip", [sdk_wheel, app, helper], "appdep\n" + SDK_REQ))
    assert code == 1 and "numpy>=1.21 (needed by procvision_algorithm_sdk-" in check(report, "dependencies")["message"]
    code, report = validate_zip(make_zip(tmp_path / "z2.zip", [sdk_wheel, app, helper, numpy], "appdep\n" + SDK_REQ))
    assert code == 0, report
    # Asking for the extra pulls in its dependency, which is not bundled.
    code, report = validate_zip(make_zip(tmp_path / "z3.zip", [sdk_wheel, app, helper, numpy],
                                         "appdep[gui]\n" + SDK_REQ))
    assert code == 1 and "extraonly" in check(report, "dependencies")["message"]


def test_wheel_requires_python_is_checked(tmp_path: Path, sdk_wheel: Path) -> None:
    lib = make_wheel(tmp_path / "w", "newlib", "3.0", "py3-none-any", requires_python=">=3.12")
    code, report = validate_zip(make_zip(tmp_path / "z.zip", [sdk_wheel, lib], "newlib\n" + SDK_REQ))
    assert code == 1 and "requires Python >=3.12" in check(report, "dependencies")["message"]


def test_no_manifest(tmp_path: Path, sdk_wheel: Path) -> None:
    code, report = validate_zip(make_zip(tmp_path / "z.zip", [sdk_wheel], SDK_REQ, manifest=None))
    assert code == 1
    assert check(report, "manifest")["result"] == "FAIL"
    assert "no manifest.json" in check(report, "manifest")["message"]


def test_public_layout_with_top_folder_and_root_wheels(tmp_path: Path, sdk_wheel: Path) -> None:
    numpy = make_wheel(tmp_path / "w", "numpy", "1.26.4", "cp311-cp311-manylinux2014_x86_64")
    zpath = make_zip(tmp_path / "z.zip", [sdk_wheel, numpy], "numpy\n" + SDK_REQ, prefix="z-algo/")
    code, report = validate_zip(zpath)
    assert code == 0, report
    assert "z-algo/" in check(report, "manifest")["message"]
    # wheels/ beside the nested manifest is accepted as well
    zpath = make_zip(tmp_path / "z2.zip", [sdk_wheel, numpy], "numpy\n" + SDK_REQ, prefix="z-algo/",
                     wheels_prefix="z-algo/")
    assert validate_zip(zpath)[0] == 0


def test_unsafe_entries_are_rejected(tmp_path: Path, sdk_wheel: Path) -> None:
    zpath = make_zip(tmp_path / "z.zip", [sdk_wheel], SDK_REQ, extra={"../evil.py": b"x", "/abs.txt": b"y"})
    code, report = validate_zip(zpath)
    assert code == 1
    msg = check(report, "zip_layout")["message"]
    assert "../evil.py" in msg and "/abs.txt" in msg


def test_requirements_missing_sdk_or_file(tmp_path: Path, sdk_wheel: Path) -> None:
    numpy = make_wheel(tmp_path / "w", "numpy", "1.26.4", "cp311-cp311-manylinux2014_x86_64")
    code, report = validate_zip(make_zip(tmp_path / "z.zip", [sdk_wheel, numpy], "numpy\n"))
    assert code == 1 and "procvision-algorithm-sdk" in check(report, "dependencies")["message"]
    with zipfile.ZipFile(tmp_path / "noreq.zip", "w") as zf:
        zf.writestr("manifest.json", json.dumps(MANIFEST))
        zf.write(numpy, f"wheels/{numpy.name}")
    code, report = validate_zip(tmp_path / "noreq.zip")
    assert code == 1 and check(report, "requirements")["result"] == "FAIL"


def test_target_from_running_interpreter_when_env_file_absent(tmp_path: Path, sdk_wheel: Path) -> None:
    code, report = validate_zip(make_zip(tmp_path / "z.zip", [sdk_wheel], SDK_REQ + "numpy\n", env=None))
    # numpy is not bundled; the check still ran against this interpreter's tags.
    assert code == 1
    assert "running interpreter" in check(report, "target")["message"]
    assert "no wheel for numpy" in check(report, "dependencies")["message"]


def test_python_requires_against_target(tmp_path: Path, sdk_wheel: Path) -> None:
    manifest = dict(MANIFEST, python_requires=">=3.12")
    code, report = validate_zip(make_zip(tmp_path / "z.zip", [sdk_wheel], SDK_REQ, manifest=manifest))
    assert code == 1
    assert "3.11" in check(report, "python_requires")["message"]


def test_not_a_zip(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip at all")
    code, report = validate_zip(bad)
    assert code == 1 and check(report, "zip_open")["result"] == "FAIL"


def test_clear_message_when_packaging_is_missing(tmp_path: Path, sdk_wheel: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    zpath = make_zip(tmp_path / "z.zip", [sdk_wheel], SDK_REQ)
    for name in list(sys.modules):
        if name == "packaging" or name.startswith("packaging.") or name == "procvision_algorithm_sdk.cli.targets":
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "packaging", None)  # makes "import packaging" raise ImportError
    err = io.StringIO()
    assert main(["validate", "--zip", str(zpath)], out=io.StringIO(), err=err) == 1
    assert "pip install 'procvision-algorithm-sdk[cli]'" in err.getvalue()
    err = io.StringIO()
    assert main(["package", str(EXAMPLE), "-o", str(tmp_path)], out=io.StringIO(), err=err) == 1
    assert "packaging" in err.getvalue() and not list(tmp_path.glob("*-offline.zip"))
    assert "in a worker process" not in err.getvalue(), "a missing library fails before any worker starts"


@pytest.mark.slow
def test_packaged_zip_installs_offline_and_passes_full_validation(tmp_path: Path, cache: Path) -> None:
    """The zip installs with nothing but its own wheels, and the installed SDK runs the worker."""
    import subprocess
    import sys

    code, out, err = package(copy_example(tmp_path / "proj"), tmp_path / "out", cache)
    assert code == 0, err
    root = tmp_path / "installed"
    with zipfile.ZipFile(out.strip()) as zf:
        zf.extractall(root)
    uv = [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "venv", "-q", "--python", sys.executable, str(root / "venv")], check=True, timeout=120)
    py = root / "venv" / "bin" / "python"
    subprocess.run([*uv, "pip", "install", "-q", "--python", str(py), "--offline", "--no-index",
                    "--find-links", str(root / "wheels"), "-r", str(root / "requirements.txt")],
                   check=True, timeout=300, cwd=root)
    proc = subprocess.run([str(py), "-m", "procvision_algorithm_sdk.cli.main", "validate", ".", "--full", "--json"],
                          capture_output=True, text=True, timeout=180, cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["summary"]["status"] == "PASS"
    where = subprocess.run([str(py), "-c", "import procvision_algorithm_sdk as m; print(m.__file__)"],
                           capture_output=True, text=True, timeout=60, check=True).stdout
    assert str(root / "venv") in where  # the worker used the bundled SDK, not the dev checkout


def test_public_packager_zip_with_real_public_sdk_wheels(tmp_path: Path, cache: Path) -> None:
    """The public packager's layout: <project>/ with requirements.sanitized.txt, wheels/ and env at the root."""
    public = wheel_cache.PUBLIC_SDK / "0.0.7"
    wheels = sorted(public.glob("*.whl"))
    assert any(w.name.startswith("procvision_algorithm_sdk-0.0.7") for w in wheels)
    zpath = tmp_path / "pub.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("z-algo/manifest.json", json.dumps(MANIFEST))
        zf.writestr("z-algo/zalgo/algo.py", "class Algo: ...\n")
        zf.writestr("z-algo/requirements.sanitized.txt", "procvision_algorithm_sdk==0.0.7\nnumpy\n")
        zf.writestr(".procvision_env.json", json.dumps(dict(ENV, wheels_platform="manylinux_2_28_x86_64")))
        for w in wheels:
            zf.write(w, f"wheels/{w.name}")
    code, report = validate_zip(zpath)
    assert code == 0, report
    assert "z-algo/requirements.sanitized.txt" in check(report, "requirements")["message"]
    assert "procvision_algorithm_sdk-0.0.7" in check(report, "dependencies")["message"]


def test_package_replaces_the_projects_sdk_pin(tmp_path: Path, cache: Path) -> None:
    project = copy_example(tmp_path / "proj")
    (project / "requirements.txt").write_text("procvision_algorithm_sdk==0.0.7\nnumpy>=1.21  # arrays\n")
    code, out, err = package(project, tmp_path / "out", cache)
    assert code == 0, err
    with zipfile.ZipFile(out.strip()) as zf:
        reqs = zf.read("requirements.txt").decode().splitlines()
    assert reqs[0] == "numpy>=1.21"
    assert reqs[1].startswith("procvision-algorithm-sdk==") and "0.0.7" not in reqs[1]
