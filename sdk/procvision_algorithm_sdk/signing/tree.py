"""The one hashing configuration signer and verifier share, and unpacking a package zip to sign it.

Every file counts: git files are hashed like any other (model-signing skips them by default) and the
only path left out is the signature itself, so nothing can be added to a signed package unnoticed.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from pathlib import Path
from typing import Any

CHUNK = 1024 * 1024


def hashing_config(signature_rel: str) -> Any:
    """model-signing's hashing config: SHA-256 per file, no symlinks, only ``signature_rel`` ignored."""
    from model_signing import hashing

    return (hashing.Config()
            .use_file_serialization(hashing_algorithm="sha256", allow_symlinks=False)
            .set_ignored_paths(paths=[signature_rel], ignore_git_paths=False))


def file_digests(tree: Path, signature_rel: str) -> dict[str, str]:
    """``{relative path: sha256 hex}`` of every file of ``tree`` the signature covers."""
    manifest = hashing_config(signature_rel).hash(tree)
    return {rd.identifier: rd.digest.digest_hex for rd in manifest.resource_descriptors()}


def unpack(zf: zipfile.ZipFile, dest: Path) -> None:
    """Extract a zip the author is signing; refuses names that escape ``dest`` and links."""
    for info in zf.infolist():
        name = info.filename
        parts = name.split("/")
        mode = (info.external_attr >> 16) & 0o170000
        drive = len(name) > 1 and name[1] == ":"
        if not name or name.startswith(("/", "\\")) or "\\" in name or ".." in parts or drive:
            raise ValueError(f"unsafe entry name {name!r} in the zip")
        if mode == stat.S_IFLNK:
            raise ValueError(f"{name!r} is a symbolic link; package zips hold regular files only")
        target = dest.joinpath(*[p for p in parts if p])
        if name.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(target, "xb") as out:
            shutil.copyfileobj(src, out, CHUNK)


def rewrite_with(zip_path: Path, member: str, data: bytes, output: Path) -> None:
    """Write ``output``: every entry of ``zip_path`` except ``member``, then ``member`` with ``data``.

    Written to a temporary file beside ``output`` and renamed, so a failure leaves ``output`` as it was."""
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(tmp, "w") as dst:
            for info in src.infolist():
                if info.filename == member:
                    continue
                with src.open(info) as handle:
                    dst.writestr(info, handle.read(), compress_type=info.compress_type)
            sig = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
            sig.create_system = 3
            sig.external_attr = 0o100644 << 16
            dst.writestr(sig, data, compress_type=zipfile.ZIP_DEFLATED)
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()
