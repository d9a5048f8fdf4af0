"""`procvision-cli package` validates the project first (a project that cannot import is not
packaged; --no-validate skips that), and `validate --zip` finds the same problem in a zip."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from procvision_algorithm_sdk.cli.init import init_project
from procvision_algorithm_sdk.cli.main import main
from tests.support import wheels as wheel_cache


@pytest.fixture(scope="module")
def cache() -> Path:
    return wheel_cache.ensure()


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _check(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in report["checks"] if c["name"] == name)


def test_a_project_that_cannot_import_is_not_packaged(tmp_path: Path, cache: Path) -> None:
    project = init_project("broken_algo", tmp_path / "broken_algo", ["B01"])
    algorithm = project / "broken_algo" / "algorithm.py"
    source = algorithm.read_text()
    assert "import numpy as np\n" in source
    algorithm.write_text(source.replace("import numpy as np\n",
                                        "import numpy as np\nimport not_a_module_anyone_ships\n"))
    dist = tmp_path / "dist"

    code, out, err = _cli("package", str(project), "-o", str(dist), "--offline", "--wheels-from", str(cache))
    assert code == 1 and out == ""
    assert "not_a_module_anyone_ships" in err and "--no-validate" in err, err
    assert not list(dist.glob("*.zip")) if dist.exists() else True

    code, out, err = _cli("package", str(project), "-o", str(dist), "--offline", "--wheels-from", str(cache),
                          "--no-validate")
    assert code == 0, err
    zip_path = Path(out.strip())
    assert zip_path.is_file() and "validating" not in err

    code, out, _ = _cli("validate", "--zip", str(zip_path), "--json")
    report = json.loads(out)
    assert code == 1
    imports = _check(report, "imports")
    assert imports["result"] == "FAIL" and "not_a_module_anyone_ships" in imports["message"], imports
    assert "broken_algo/algorithm.py" in imports["message"]
    assert _check(report, "entry_point")["result"] == "PASS"


def test_validate_zip_names_a_missing_entry_point_class(tmp_path: Path, cache: Path) -> None:
    project = init_project("typo_algo", tmp_path / "typo_algo", ["B01"])
    manifest = json.loads((project / "manifest.json").read_text())
    manifest["entry_point"] = manifest["entry_point"] + "Typo"
    (project / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = _cli("package", str(project), "-o", str(tmp_path / "dist"), "--offline", "--wheels-from",
                          str(cache), "--no-validate")
    assert code == 0, err
    code, out, _ = _cli("validate", "--zip", out.strip(), "--json")
    entry = _check(json.loads(out), "entry_point")
    assert code == 1 and entry["result"] == "FAIL" and "Typo" in entry["message"], entry


def test_a_valid_project_is_validated_then_packaged(tmp_path: Path, cache: Path) -> None:
    """Only what importing the entry point imports counts: a test file's pytest, an import under
    TYPE_CHECKING or in a try block are no missing requirement."""
    project = init_project("good_algo", tmp_path / "good_algo", ["B01"])
    (project / "tests").mkdir()
    (project / "tests" / "test_algo.py").write_text("import pytest\n")
    algorithm = project / "good_algo" / "algorithm.py"
    algorithm.write_text(algorithm.read_text().replace(
        "import numpy as np\n",
        "import numpy as np\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import cv2\n"
        "try:\n    import scipy\nexcept ImportError:\n    scipy = None\nfrom . import helpers\n"))
    (project / "good_algo" / "helpers.py").write_text("import json\n")
    code, out, err = _cli("package", str(project), "-o", str(tmp_path / "dist"), "--offline", "--wheels-from",
                          str(cache))
    assert code == 0, err
    assert "validating" in err and Path(out.strip()).is_file()
    code, out, _ = _cli("validate", "--zip", out.strip(), "--json")
    report = json.loads(out)
    imports = _check(report, "imports")
    assert code == 0 and imports["result"] == "PASS", report
    assert "3 module(s)" in imports["message"], imports  # good_algo, .algorithm, .helpers
