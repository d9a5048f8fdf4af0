"""`procvision-runner validate ZIP` runs the SDK's `validate --zip` checks under the same names (plus
the station's own), so a package that cannot import fails validation, not only the install."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from procvision_algorithm_sdk.cli.main import main as sdk_main
from runner.cli import exitcodes
from runner.cli.main import main
from tests.api.support import NAME, PIDS, RunningServer, make_zip, start_server
from tests.support.packages import algorithm_files, build_package, manifest_for


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("cli-validate") / "root")
    yield srv
    srv.stop()


def _runner_validate(server: RunningServer, zip_path: Path) -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["validate", str(zip_path), "--json", "--url", server.url, "--root", str(server.settings.root)],
                out=out, err=err)
    return code, json.loads(out.getvalue()), err.getvalue()


def _sdk_validate(zip_path: Path) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    code = sdk_main(["validate", "--zip", str(zip_path), "--json"], out=out, err=io.StringIO())
    return code, json.loads(out.getvalue())


def test_runner_and_sdk_name_their_checks_alike(server: RunningServer, tmp_path: Path) -> None:
    good = make_zip(tmp_path / "good")
    code, runner_report, err = _runner_validate(server, good)
    assert code == 0, (err, runner_report)
    sdk_code, sdk_report = _sdk_validate(good)
    assert sdk_code == 0, sdk_report
    sdk_names = [c["name"] for c in sdk_report["checks"]]
    runner_names = [c["name"] for c in runner_report["checks"]]
    assert runner_names[:len(sdk_names)] == sdk_names, (runner_names, sdk_names)
    assert set(runner_names) - set(sdk_names) == {"station_python", "station_wheels"}
    assert {"entry_point", "imports"} <= set(sdk_names)


def test_a_package_that_cannot_import_fails_runner_validate(server: RunningServer, tmp_path: Path) -> None:
    manifest = manifest_for(name=NAME, version="1.0.0", pids=PIDS)
    files = algorithm_files(manifest)
    files["algo/main.py"] = "import not_a_module_anyone_ships\n" + files["algo/main.py"]
    broken = build_package(tmp_path / "broken", manifest=manifest, files=files)
    code, report, _ = _runner_validate(server, broken)
    imports = next(c for c in report["checks"] if c["name"] == "imports")
    assert imports["result"] == "FAIL" and "not_a_module_anyone_ships" in imports["message"], imports
    assert imports["code"] == "2010" and code == exitcodes.exit_code_for("2010")
    assert report["summary"]["status"] == "FAIL"
    # The human table shows the same finding.
    out, err = io.StringIO(), io.StringIO()
    main(["validate", str(broken), "--url", server.url, "--root", str(server.settings.root)], out=out, err=err)
    assert "imports" in out.getvalue() and "FAIL" in out.getvalue()
