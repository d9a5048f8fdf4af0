"""Entry names a file system cannot hold (long components, long or very deep paths) are archive
problems: 2001 naming the entry, found by the archive check before anything is extracted."""

from __future__ import annotations

from pathlib import Path

import pytest

from procvision_algorithm_sdk.zipsafety import MAX_COMPONENT_BYTES, MAX_DEPTH, MAX_NAME_BYTES
from runner.config import Settings
from runner.errors import RunnerError
from runner.package import archive
from runner.package.installer import Installer
from runner.store.registry import Registry
from tests.support.packages import hostile_zip, root_is_clean, valid_entries

LONG_COMPONENT = "x" * (MAX_COMPONENT_BYTES + 1)
DEEP = "d/" * MAX_DEPTH + "f.txt"


@pytest.mark.parametrize(("name", "phrase"), [
    (f"demo_algo/{LONG_COMPONENT}.txt", "path component"),
    (f"assets/{'é' * 128}.png", "path component"),  # 256 UTF-8 bytes from 128 characters
    ("/".join(["seg" * 60] * 6) + "/f.txt", "-byte name"),
    (DEEP, "folders deep"),
    ("a/" * 2000 + "f", "-byte name"),
])
def test_unrepresentable_names_are_2001_in_the_archive_check(tmp_path: Path, name: str, phrase: str) -> None:
    path = hostile_zip(tmp_path / "names.zip", [*valid_entries(), (name, b"data")])
    settings = Settings(root=tmp_path / "root")
    installer = Installer(settings, Registry(settings.layout))
    stages: list[str] = []
    with pytest.raises(RunnerError) as caught:
        installer.install(path, progress=stages.append)
    err = caught.value
    assert err.code == "2001" and err.details["entry"] == name and err.details["check"] == "zip_safety"
    assert phrase in err.message
    assert stages == ["checking"] and root_is_clean(settings.layout.root) == []


def test_names_at_the_limits_extract(tmp_path: Path) -> None:
    at_limits = [
        ("c/" + "y" * MAX_COMPONENT_BYTES, b"long component"),
        ("e/" * (MAX_DEPTH - 1) + "f.txt", b"deep"),
        ("/".join(["n" * 200] * 5)[: MAX_NAME_BYTES - 4] + ".txt", b"long name"),
    ]
    path = hostile_zip(tmp_path / "ok.zip", at_limits)
    limits = archive.ArchiveLimits.from_settings(Settings(root=tmp_path / "root"))
    dest = tmp_path / "out"
    dest.mkdir()
    with archive.open_zip(path, limits) as zf:
        archive.extract(zf, archive.check_entries(zf, limits), dest, limits)
    for name, data in at_limits:
        assert (dest / name).read_bytes() == data
