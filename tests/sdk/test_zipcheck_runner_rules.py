"""``procvision-cli validate --zip`` refuses what the runner refuses: the same archive rules (end
records, names, overlapping entries) and the same requirement-line rules, with ``--hash`` checked."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

from procvision_algorithm_sdk.cli.main import main
from tests.support.crafted_zips import empty_entries_zip, quoted_overlap_bomb
from tests.support.packages import build_package, hostile_zip, runtime_wheels, valid_entries


def _validate(path: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    out = io.StringIO()
    code = main(["validate", "--zip", str(path), "--json"], out=out, err=io.StringIO())
    return code, {c["name"]: c for c in json.loads(out.getvalue())["checks"]}


def test_claimed_entry_count_is_refused_from_the_end_records(tmp_path: Path) -> None:
    code, checks = _validate(empty_entries_zip(tmp_path / "claims.zip", 3, claimed=3_000_000))
    assert code == 1 and checks["zip_open"]["result"] == "FAIL"
    assert "claims 3000000 entries" in checks["zip_open"]["message"]


def test_overlapping_entries_are_refused(tmp_path: Path) -> None:
    code, checks = _validate(quoted_overlap_bomb(tmp_path / "bomb.zip", files=50, kernel_bytes=100_000))
    assert code == 1 and "overlaps entry 'f00001'" in checks["zip_layout"]["message"]


def test_over_long_component_is_refused(tmp_path: Path) -> None:
    path = hostile_zip(tmp_path / "long.zip", [*valid_entries(), ("assets/" + "x" * 300, b"x")])
    code, checks = _validate(path)
    assert code == 1 and "path component" in checks["zip_layout"]["message"]


def test_index_option_line_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = build_package(tmp_path / "src", requirements="procvision-algorithm-sdk\n--extra-index-url https://x.invalid\n")
    code, checks = _validate(path)
    assert code == 1 and checks["requirements"]["result"] == "FAIL"
    assert "line 2" in checks["requirements"]["message"] and "'--extra-index-url'" in checks["requirements"]["message"]


def test_pinned_hashes_are_checked(tmp_path: Path) -> None:
    good = hashlib.sha256(runtime_wheels()[0].read_bytes()).hexdigest()
    ok = build_package(tmp_path / "ok", requirements=f"procvision-algorithm-sdk\nnumpy --hash=sha256:{good}\n")
    code, checks = _validate(ok)
    assert code == 0, checks
    bad = build_package(tmp_path / "bad", requirements=f"procvision-algorithm-sdk\nnumpy --hash=sha256:{'0' * 64}\n")
    code, checks = _validate(bad)
    assert code == 1 and "does not match the hash pinned for numpy" in checks["dependencies"]["message"]
    assert "requirements.txt line 2" in checks["dependencies"]["message"]


def test_bundled_wheel_claiming_millions_of_entries_is_reported(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    evil = empty_entries_zip(tmp_path / "w" / "evil-1.0-py3-none-any.whl", 3, claimed=3_000_000)
    path = build_package(tmp_path / "src", wheels=[*runtime_wheels(), evil],
                         requirements="procvision-algorithm-sdk\nnumpy\nevil\n")
    code, checks = _validate(path)
    assert code == 1 and "claims 3000000 entries" in checks["dependencies"]["message"]
