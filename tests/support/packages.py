"""Build real algorithm package zips for tests: source files + manifest + wheels.

``build_package`` writes a zip in one of three layouts:

* ``flat``: ``manifest.json``, sources, ``requirements.txt`` and ``wheels/`` at the archive root;
* ``folder``: everything inside one top folder ``<name>/`` (wheels in ``<name>/wheels/``);
* ``public``: what the public ``procvision-cli package`` writes: ``<project>/`` with the sources,
  ``requirements.txt`` and ``requirements.sanitized.txt`` and ``.procvision_env.json``, plus
  ``wheels/`` at the archive ROOT.

By default the package carries the SDK wheel built from this checkout (``build_sdk_wheel``) and the
numpy wheel for the running interpreter from ``.cache/wheels``. ``hostile_zip`` writes raw entries
(any name, any external_attr, any flags) for archive-safety tests.
"""

from __future__ import annotations

import json
import stat
import sys
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from procvision_algorithm_sdk.wheel_builder import build_sdk_wheel

from . import wheels as wheel_cache
from .algorithms import algorithm_source


def standard_algorithm(name: str = "demo_algo", version: str = "1.0.0", pids: Iterable[str] = ("P001",)) -> str:
    """The standard package algorithm on our SDK (module ``algo.main``, class ``Algorithm``).

    It judges the image's mean brightness (over 250 is NG) and reports ``debug`` (mean, shape,
    whether pre_execute ran in the session). ``user_params`` provoke every outcome through a real
    worker: ``say`` (a line on stderr, for the worker log), ``sleep_s`` (a slow call, for timeouts),
    ``crash`` (the process exits), ``fail`` (execute answers status ERROR with error_code 1003).
    """
    return algorithm_source(
        class_name="Algorithm", imports="import os\nimport sys\nimport time\n\nimport numpy as np",
        sdk_names=["read_image_from_shared_memory"],
        prelude=f"NAME = {name!r}\nVERSION = {version!r}\nPIDS = {list(pids)!r}",
        info='''{"name": NAME, "version": VERSION, "description": "test algorithm", "supported_pids": PIDS,
                "steps": [{"index": 1, "name": "inspect", "params": []}]}''',
        methods='''
            def _act(self, user_params):
                if user_params.get("say"):
                    sys.stderr.write(str(user_params["say"]) + "\\n")
                    sys.stderr.flush()
                if user_params.get("sleep_s"):
                    time.sleep(float(user_params["sleep_s"]))
                if user_params.get("crash"):
                    os._exit(3)
        ''',
        pre_execute='''
            self._act(user_params)
            session.set("pre_seen", True)
            return {"status": "OK", "message": "ready", "data": {}}
        ''',
        execute='''
            self._act(user_params)
            if user_params.get("fail"):
                return {"status": "ERROR", "message": "asked to fail", "error_code": "1003"}
            image = read_image_from_shared_memory(shared_mem_id, image_meta)
            arr = np.asarray(image)
            mean = float(arr.mean())
            debug = {"mean": mean, "shape": list(arr.shape), "pre_seen": bool(session.get("pre_seen", False))}
            if mean > 250:
                return {"status": "OK", "data": {"result_status": "NG", "ng_reason": "too bright",
                        "defect_rects": [{"x": 0, "y": 0, "width": 10, "height": 10}], "debug": debug}}
            return {"status": "OK", "data": {"result_status": "OK", "defect_rects": [], "debug": debug}}
        ''')


def manifest_for(name: str = "demo_algo", version: str = "1.0.0", pids: Iterable[str] = ("P001",),
                 **extra: Any) -> dict[str, Any]:
    """A valid manifest dict; ``extra`` adds or overrides keys."""
    manifest: dict[str, Any] = {"name": name, "version": version, "entry_point": "algo.main:Algorithm",
                                "supported_pids": list(pids), "description": "test algorithm",
                                "steps": [{"index": 1, "name": "inspect", "params": []}]}
    manifest.update(extra)
    return manifest


def algorithm_files(manifest: Mapping[str, Any], source: str | None = None) -> dict[str, str]:
    """Sources of the standard test algorithm (package ``algo``) for ``manifest``."""
    text = source if source is not None else standard_algorithm(
        manifest["name"], manifest["version"], manifest["supported_pids"])
    return {"algo/__init__.py": "", "algo/main.py": text}


def runtime_wheels(python_minor: str | None = None, names: Iterable[str] = ("numpy",)) -> list[Path]:
    """Cached third-party wheels for ``python_minor`` (default: the running interpreter)."""
    cache = wheel_cache.ensure()
    tag = "cp" + (python_minor or f"{sys.version_info.major}.{sys.version_info.minor}").replace(".", "")
    found = []
    for name in names:
        matches = sorted(cache.glob(f"{name}-*-{tag}-*.whl"))
        if not matches:
            raise FileNotFoundError(f"no cached {name} wheel for {tag} in {cache}; run python -m tests.support.wheels")
        found.append(matches[-1])
    return found


def sdk_wheel(dest: Path) -> Path:
    """The SDK wheel built from this checkout, into ``dest``."""
    return build_sdk_wheel(dest)


def build_package(
    dest: Path,
    *,
    manifest: Mapping[str, Any] | None = None,
    files: Mapping[str, str | bytes] | None = None,
    wheels: Iterable[Path] | None = None,
    with_sdk: bool = True,
    requirements: str | None = None,
    layout: str = "flat",
    zip_name: str | None = None,
    manifest_bytes: bytes | None = None,
    env_config: Mapping[str, Any] | None = None,
    executable: Iterable[str] = (),
) -> Path:
    """Write a package zip into the folder ``dest``; returns its path.

    ``manifest`` defaults to ``manifest_for()``; ``files`` to the standard algorithm; ``wheels`` to the
    cached numpy wheel. ``requirements`` is the requirements.txt text (default: the SDK and numpy);
    pass "" for an empty file. ``manifest_bytes`` replaces the manifest file verbatim (broken-manifest
    tests). ``executable`` lists source files that get mode 0755.
    """
    dest.mkdir(parents=True, exist_ok=True)
    mf = dict(manifest) if manifest is not None else manifest_for()
    sources = dict(files) if files is not None else algorithm_files(mf)
    wheel_paths = list(wheels) if wheels is not None else runtime_wheels()
    if with_sdk:
        wheel_paths.append(sdk_wheel(dest / ".sdk-wheel"))
    if requirements is None:
        requirements = "procvision-algorithm-sdk\nnumpy\n"
    name = str(mf.get("name", "pkg"))
    version = str(mf.get("version", "0"))
    target = dest / (zip_name or f"{name}-v{version}-offline.zip")
    if layout == "flat":
        base, wheel_base = "", "wheels/"
    elif layout == "folder":
        base, wheel_base = f"{name}/", f"{name}/wheels/"
    elif layout == "public":
        base, wheel_base = f"{name}/", "wheels/"
    else:
        raise ValueError(f"unknown layout {layout!r}")
    entries: list[tuple[str, bytes, int]] = []
    entries.append((f"{base}manifest.json",
                    manifest_bytes if manifest_bytes is not None else json.dumps(mf, indent=2).encode(), 0o644))
    for rel, content in sorted(sources.items()):
        data = content.encode() if isinstance(content, str) else content
        entries.append((f"{base}{rel}", data, 0o755 if rel in set(executable) else 0o644))
    if layout == "public":
        entries.append((f"{base}requirements.txt", requirements.encode(), 0o644))
        entries.append((f"{base}requirements.sanitized.txt", requirements.encode(), 0o644))
        cfg = dict(env_config) if env_config is not None else {
            "python_version": f"{sys.version_info.major}.{sys.version_info.minor}", "implementation": "cp",
            "abi": f"cp{sys.version_info.major}{sys.version_info.minor}", "wheels_platform": None}
        entries.append((f"{base}.procvision_env.json", json.dumps(cfg).encode(), 0o644))
    else:
        entries.append((f"{base}requirements.txt", requirements.encode(), 0o644))
        if env_config is not None:
            entries.append((f"{base}.procvision_env.json", json.dumps(dict(env_config)).encode(), 0o644))
    for wheel in wheel_paths:
        entries.append((f"{wheel_base}{wheel.name}", wheel.read_bytes(), 0o644))
    tmp = target.with_name(target.name + ".building")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arcname, data, mode in entries:
            info = zipfile.ZipInfo(arcname, date_time=(2024, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | mode) << 16
            # Wheels are already compressed: store them, as real packagers do.
            info.compress_type = zipfile.ZIP_STORED if arcname.endswith(".whl") else zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    tmp.replace(target)
    return target


def raw_entry(name: str, mode: int | None = stat.S_IFREG | 0o644, *, create_system: int = 3,
              compress: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    """A ZipInfo with exactly the given name and attributes (nothing normalised)."""
    info = zipfile.ZipInfo("placeholder", date_time=(2024, 1, 1, 0, 0, 0))
    info.filename = name
    info.orig_filename = name
    info.create_system = create_system
    info.external_attr = (mode << 16) if mode is not None else 0
    info.compress_type = compress
    return info


def hostile_zip(path: Path, entries: Iterable[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    """Write a zip with raw entries (for archive-safety tests); duplicates are allowed."""
    import warnings

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names: that is the point
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for entry, data in entries:
                info = raw_entry(entry) if isinstance(entry, str) else entry
                zf.writestr(info, data)
    return path


def valid_entries(manifest: Mapping[str, Any] | None = None) -> list[tuple[str, bytes]]:
    """Entries of a small, otherwise valid flat package without wheels (archive tests add one bad entry)."""
    mf = dict(manifest) if manifest is not None else manifest_for()
    entries = [("manifest.json", json.dumps(mf).encode())]
    entries += [(rel, text.encode()) for rel, text in algorithm_files(mf).items()]
    return entries


def make_wheel(dest: Path, name: str, version: str = "1.0", *, requires: Iterable[str] = (),
               tag: str = "py3-none-any", files: Mapping[str, str] | None = None,
               requires_python: str | None = None) -> Path:
    """A minimal real wheel (METADATA with Requires-Dist, WHEEL, RECORD) for dependency tests."""
    dest.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    info_dir = f"{dist}-{version}.dist-info"
    metadata = "\n".join(["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
                          *([f"Requires-Python: {requires_python}"] if requires_python else []),
                          *[f"Requires-Dist: {r}" for r in requires]]) + "\n"
    content = dict(files) if files is not None else {f"{dist}/__init__.py": f"VERSION = {version!r}\n"}
    content[f"{info_dir}/METADATA"] = metadata
    content[f"{info_dir}/WHEEL"] = f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
    record = "".join(f"{path},,\n" for path in content) + f"{info_dir}/RECORD,,\n"
    content[f"{info_dir}/RECORD"] = record
    path = dest / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arcname, text in content.items():
            zf.writestr(arcname, text)
    return path


def root_is_clean(root: Path) -> list[str]:
    """Problems that show a failed install left something behind (empty list when clean): any
    deployed file, any staging leftover, or an ``installed`` registry record."""
    problems = []
    deployed = root / "deployed"
    if deployed.exists():
        problems += [f"deployed: {p}" for p in deployed.rglob("*")]
    staging = root / ".staging"
    if staging.exists():
        problems += [f"staging: {p}" for p in staging.iterdir()]
    registry = root / "registry.json"
    if registry.exists():
        data = json.loads(registry.read_text())
        problems += [f"registry: {r['name']} {r['version']} {r['state']}" for r in data.get("versions", [])
                     if r.get("state") != "invalid"]
    return problems


def set_entry_flags(path: Path, entry_name: str, bits: int) -> None:
    """OR ``bits`` into an entry's general-purpose flags, in both its local and central headers
    (zipfile cannot write, e.g., the "encrypted" bit itself)."""
    data = bytearray(path.read_bytes())
    encoded = entry_name.encode()
    for sig, flag_at, name_len_at, header_len in ((b"PK\x03\x04", 6, 26, 30), (b"PK\x01\x02", 8, 28, 46)):
        start = 0
        while True:
            at = data.find(sig, start)
            if at < 0:
                break
            n = int.from_bytes(data[at + name_len_at:at + name_len_at + 2], "little")
            if data[at + header_len:at + header_len + n] == encoded:
                flags = int.from_bytes(data[at + flag_at:at + flag_at + 2], "little") | bits
                data[at + flag_at:at + flag_at + 2] = flags.to_bytes(2, "little")
            start = at + 4
    path.write_bytes(bytes(data))
