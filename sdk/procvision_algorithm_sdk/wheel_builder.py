"""Build a wheel of this SDK from the files it is running from.

Algorithm packages must carry the SDK they were written with, and a project with the same name exists
on the public index, so the packager never downloads it: it writes the wheel itself from the
installed package. The output is deterministic (fixed timestamps, sorted entries), so packaging the
same project twice gives byte-identical zips.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

DIST_NAME = "procvision-algorithm-sdk"
WHEEL_NAME = "procvision_algorithm_sdk"
REQUIRES_PYTHON = ">=3.9"
REQUIRES_DIST = ["numpy>=1.21", 'pillow>=9.0; extra == "images"', 'packaging>=22.0; extra == "cli"']
_EPOCH = (1980, 1, 1, 0, 0, 0)


def sdk_version() -> str:
    """The version of the SDK that is running."""
    from importlib import metadata

    try:
        return metadata.version(DIST_NAME)
    except metadata.PackageNotFoundError:
        from . import __version__

        return str(__version__)


def _package_files() -> list[tuple[str, bytes]]:
    root = Path(__file__).resolve().parent
    files = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        arcname = f"{WHEEL_NAME}/{path.relative_to(root).as_posix()}"
        files.append((arcname, path.read_bytes()))
    return files


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def wheel_filename(version: str | None = None) -> str:
    return f"{WHEEL_NAME}-{version or sdk_version()}-py3-none-any.whl"


def build_sdk_wheel(dest_dir: str | Path) -> Path:
    """Write ``procvision_algorithm_sdk-<version>-py3-none-any.whl`` into ``dest_dir``; return its path."""
    version = sdk_version()
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    dist_info = f"{WHEEL_NAME}-{version}.dist-info"
    metadata_lines = [
        "Metadata-Version: 2.1",
        f"Name: {DIST_NAME}",
        f"Version: {version}",
        "Summary: SDK for writing, checking and packaging ProcVision industrial-vision algorithms",
        f"Requires-Python: {REQUIRES_PYTHON}",
        "Provides-Extra: images",
        "Provides-Extra: cli",
        *[f"Requires-Dist: {req}" for req in REQUIRES_DIST],
    ]
    entries = _package_files()
    entries.append((f"{dist_info}/METADATA", ("\n".join(metadata_lines) + "\n").encode()))
    entries.append((f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: procvision-cli\n"
                                         b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
    entries.append((f"{dist_info}/entry_points.txt",
                    b"[console_scripts]\nprocvision-cli = procvision_algorithm_sdk.cli.main:main\n"
                    b"procvision-adapter = procvision_algorithm_sdk.adapter.__main__:main\n"))
    record_lines = [f"{name},{_record_hash(data)},{len(data)}" for name, data in entries]
    record_lines.append(f"{dist_info}/RECORD,,")
    entries.append((f"{dist_info}/RECORD", ("\n".join(record_lines) + "\n").encode()))
    target = dest / wheel_filename(version)
    tmp = target.with_suffix(".whl.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    tmp.replace(target)
    return target
