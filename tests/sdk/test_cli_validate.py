"""``procvision-cli init`` and ``validate`` (in-process and --full), one broken project per check."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from procvision_algorithm_sdk.cli.main import main
from tests.support.algorithms import algorithm_source

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example-algorithm"

#: A project's algorithm that passes every check; each test breaks one thing in it.
GOOD = algorithm_source(
    class_name="Algo", sdk_names=["read_image_from_shared_memory"], prelude='PIDS = ["P1", "P2"]',
    info='''{"name": "t-algo", "version": "1.0.0", "supported_pids": PIDS,
                "steps": [{"index": 1, "name": "only", "params": [
                    {"key": "limit", "type": "float", "default": 100.0, "min": 0, "max": 255}]}]}''',
    pre_execute='''
        image = read_image_from_shared_memory(shared_mem_id, image_meta)
        session.set("mean", float(image.mean()))
        return {"status": "OK", "message": "measured", "data": {}}
    ''',
    execute='''
        mean = session.get("mean")
        if mean is None:
            return {"status": "ERROR", "error_code": "1004", "message": "pre_execute did not run"}
        if mean < user_params["limit"]:
            return {"status": "OK", "data": {"result_status": "NG", "ng_reason": "dark",
                                             "defect_rects": [{"x": 0, "y": 0, "width": 5, "height": 5}]}}
        return {"status": "OK", "data": {"result_status": "OK", "defect_rects": []}}
    ''')


def make_project(root: Path, source: str = GOOD, manifest: Any = None, requirements: str | None = "numpy\n",
                 package: str = "talgo") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / package).mkdir(exist_ok=True)
    (root / package / "__init__.py").write_text("")
    (root / package / "algo.py").write_text(textwrap.dedent(source))
    if manifest is None:
        manifest = {"name": "t-algo", "version": "1.0.0", "entry_point": f"{package}.algo:Algo",
                    "supported_pids": ["P1", "P2"]}
    if manifest is not False:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        (root / "manifest.json").write_text(text)
    if requirements is not None:
        (root / "requirements.txt").write_text(requirements)
    return root


def validate(*args: str) -> tuple[int, dict[str, Any]]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["validate", *args, "--json"], out=out, err=err)
    return code, (json.loads(out.getvalue()) if out.getvalue() else {"error": err.getvalue()})


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [c for c in report["checks"] if c["name"] == name]
    assert matches, f"no check {name!r} in {[c['name'] for c in report['checks']]}"
    return matches[0]


def test_good_project_passes(tmp_path: Path) -> None:
    code, report = validate(str(make_project(tmp_path / "p")))
    assert code == 0, report
    assert report["summary"] == {"status": "PASS", "passed": report["summary"]["passed"], "failed": 0}
    names = [c["name"] for c in report["checks"]]
    assert names == ["manifest", "requirements", "entry_import", "base_class", "setup", "get_info",
                     "info_matches_manifest", "pre_execute[step 1]", "execute[step 1]", "teardown"]
    # The synthetic image is brighter than the default limit, so the smoke verdict is OK.
    assert check(report, "execute[step 1]")["message"] == "OK"


def test_table_output_and_exit_code(tmp_path: Path) -> None:
    out = io.StringIO()
    assert main(["validate", str(make_project(tmp_path / "p"))], out=out, err=io.StringIO()) == 0
    text = out.getvalue()
    assert "PASS  manifest" in text and text.rstrip().splitlines()[-1].startswith("PASS: 10 passed, 0 failed")


def test_missing_manifest(tmp_path: Path) -> None:
    code, report = validate(str(make_project(tmp_path / "p", manifest=False)))
    assert code == 1 and report["summary"]["status"] == "FAIL"
    assert check(report, "manifest")["result"] == "FAIL"
    assert "not found" in check(report, "manifest")["message"]
    assert check(report, "entry_import")["result"] == "SKIP"


@pytest.mark.parametrize("manifest, field", [
    ({"name": "t-algo", "version": "1.0.0", "supported_pids": ["P1"]}, "entry_point"),
    ({"name": "t-algo", "version": "1.0.0", "entry_point": "talgo.algo:Algo", "supported_pids": "P1"},
     "supported_pids"),
    ({"name": "t algo!", "version": "1.0.0", "entry_point": "talgo.algo:Algo", "supported_pids": ["P1"]}, "name"),
    ("{not json", ""),
])
def test_invalid_manifest_names_the_field(tmp_path: Path, manifest: Any, field: str) -> None:
    code, report = validate(str(make_project(tmp_path / "p", manifest=manifest)))
    assert code == 1
    msg = check(report, "manifest")["message"]
    assert check(report, "manifest")["result"] == "FAIL"
    assert field in msg if field else "JSON" in msg


def test_missing_requirements_is_a_note_not_a_failure(tmp_path: Path) -> None:
    # The public SDK's own examples ship no requirements.txt; package then bundles the SDK only.
    code, report = validate(str(make_project(tmp_path / "p", requirements=None)))
    assert code == 0
    assert check(report, "requirements")["result"] == "SKIP" and report["summary"]["status"] == "PASS"
    assert check(report, "execute[step 1]")["result"] == "PASS"  # the other checks still ran


def test_entry_module_that_fails_to_import(tmp_path: Path) -> None:
    code, report = validate(str(make_project(tmp_path / "p", source="import not_a_real_module_xyz\n")))
    assert code == 1
    c = check(report, "entry_import")
    assert c["result"] == "FAIL" and "not_a_real_module_xyz" in c["message"]


def test_entry_class_missing(tmp_path: Path) -> None:
    code, report = validate(str(make_project(tmp_path / "p", source=GOOD.replace("class Algo(", "class Other("))))
    assert code == 1
    c = check(report, "entry_import")
    assert c["result"] == "FAIL" and "'Algo'" in c["message"]


def test_not_a_base_algorithm(tmp_path: Path) -> None:
    source = GOOD.replace("class Algo(BaseAlgorithm):", "class Algo:")
    code, report = validate(str(make_project(tmp_path / "p", source=source)))
    assert code == 1 and "BaseAlgorithm" in check(report, "base_class")["message"]


def test_abstract_method_missing(tmp_path: Path) -> None:
    source = GOOD.replace("def execute(", "def not_execute(")
    code, report = validate(str(make_project(tmp_path / "p", source=source)))
    assert code == 1
    c = check(report, "base_class")
    assert c["result"] == "FAIL" and "execute" in c["message"]


def test_get_info_schema_error(tmp_path: Path) -> None:
    source = GOOD.replace('"type": "float"', '"type": "double"')
    code, report = validate(str(make_project(tmp_path / "p", source=source)))
    assert code == 1
    c = check(report, "get_info")
    assert c["result"] == "FAIL" and "steps[0].params[0].type" in c["message"]


def test_supported_pids_disagree_with_manifest(tmp_path: Path) -> None:
    source = GOOD.replace('PIDS = ["P1", "P2"]', 'PIDS = ["P1", "P3"]')
    code, report = validate(str(make_project(tmp_path / "p", source=source)))
    assert code == 1
    c = check(report, "info_matches_manifest")
    assert c["result"] == "FAIL" and "supported_pids" in c["message"] and "P3" in c["message"]
    assert check(report, "get_info")["result"] == "PASS"


def test_manifest_steps_disagree_with_get_info(tmp_path: Path) -> None:
    manifest = {"name": "t-algo", "version": "1.0.0", "entry_point": "talgo.algo:Algo",
                "supported_pids": ["P1", "P2"], "steps": [{"index": 1, "name": "other"}]}
    code, report = validate(str(make_project(tmp_path / "p", manifest=manifest)))
    assert code == 1 and "steps" in check(report, "info_matches_manifest")["message"]


@pytest.mark.parametrize("replacement, expected", [
    ('"defect_rects": [{"x": 0, "y": 0, "width": 5, "height": 5}]',
     "data.defect_rects: has 21 rectangles; at most 20 allowed"),
    ('"ng_reason": "dark",', "data.ng_reason"),
    ('"width": 5,', "data.defect_rects[0].width: is required"),
])
def test_execute_result_schema_errors(tmp_path: Path, replacement: str, expected: str) -> None:
    source = GOOD.replace("user_params[\"limit\"]", "1000")  # always NG
    if "21" in expected:
        source = source.replace(replacement, '"defect_rects": [{"x": i, "y": 0, "width": 5, "height": 5} '
                                             'for i in range(21)]')
    else:
        source = source.replace(replacement, "")
    code, report = validate(str(make_project(tmp_path / "p", source=source)))
    assert code == 1
    c = check(report, "execute[step 1]")
    assert c["result"] == "FAIL" and expected in c["message"], c


def test_execute_raising_is_reported(tmp_path: Path) -> None:
    source = GOOD.replace("mean = session.get(\"mean\")", "raise RuntimeError('boom in execute')")
    code, report = validate(str(make_project(tmp_path / "p", source=source)))
    assert code == 1
    c = check(report, "execute[step 1]")
    assert "RuntimeError: boom in execute" in c["message"] and "algo.py" in c["message"]


def test_pre_execute_error_status_fails(tmp_path: Path) -> None:
    source = GOOD.replace('return {"status": "OK", "message": "measured", "data": {}}',
                         'return {"status": "ERROR", "error_code": "1002", "message": "cannot see the part"}')
    code, report = validate(str(make_project(tmp_path / "p", source=source)))
    assert code == 1
    c = check(report, "pre_execute[step 1]")
    assert c["result"] == "FAIL" and "1002" in c["message"] and "cannot see the part" in c["message"]


def test_pid_option(tmp_path: Path) -> None:
    project = str(make_project(tmp_path / "p"))
    assert validate(project, "--pid", "P2")[0] == 0
    code, report = validate(project, "--pid", "NOPE")
    assert code == 1 and "NOPE" in check(report, "smoke_pid")["message"]


def test_image_option_runs_the_smoke_on_that_image(tmp_path: Path) -> None:
    dark = tmp_path / "dark.npy"
    np.save(dark, np.full((48, 64, 3), 20, dtype=np.uint8))
    code, report = validate(str(make_project(tmp_path / "p")), "--image", str(dark))
    assert code == 0
    assert check(report, "execute[step 1]")["message"].startswith("NG: dark")


def test_algorithm_print_does_not_corrupt_json_report(tmp_path: Path) -> None:
    source = "print('hello from import')\n" + GOOD.replace(
        "mean = session.get(\"mean\")", "print('debug in execute'); mean = session.get(\"mean\")")
    code, report = validate(str(make_project(tmp_path / "p", source=source)))  # parses stdout as JSON
    assert code == 0, report


def test_two_projects_with_the_same_module_name_do_not_mix(tmp_path: Path) -> None:
    good = make_project(tmp_path / "a")
    bad = make_project(tmp_path / "b", source=GOOD.replace('PIDS = ["P1", "P2"]', 'PIDS = ["X"]'))
    assert validate(str(good))[0] == 0
    assert validate(str(bad))[0] == 1
    assert validate(str(good))[0] == 0


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    err = io.StringIO()
    assert main(["validate", str(tmp_path / "missing")], out=io.StringIO(), err=err) == 2
    assert "project folder not found" in err.getvalue()
    assert main(["validate", str(tmp_path), "--full", "--zip", "x.zip"], out=io.StringIO(), err=io.StringIO()) == 2
    assert main(["validate", str(tmp_path), "--image", str(tmp_path / "no.png")], out=io.StringIO(),
                err=io.StringIO()) == 2
    assert main(["frobnicate"], out=io.StringIO(), err=io.StringIO()) == 2
    assert main([], out=io.StringIO(), err=io.StringIO()) == 2


def test_init_then_validate_passes(tmp_path: Path) -> None:
    out = io.StringIO()
    target = tmp_path / "new"
    assert main(["init", "my-first.algo", "-d", str(target), "--pids", "A01,B-7"], out=out, err=io.StringIO()) == 0
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["supported_pids"] == ["A01", "B-7"] and manifest["name"] == "my-first.algo"
    assert (target / "requirements.txt").read_text().strip() == "numpy"
    assert (target / "README.md").exists()
    code, report = validate(str(target))
    assert code == 0, report
    # init refuses to overwrite, and rejects bad names
    assert main(["init", "x", "-d", str(target)], out=io.StringIO(), err=io.StringIO()) == 2
    assert main(["init", "bad name", "-d", str(tmp_path / "other")], out=io.StringIO(), err=io.StringIO()) == 2


def test_init_project_passes_full_validation(tmp_path: Path) -> None:
    target = tmp_path / "full"
    assert main(["init", "full-algo", "-d", str(target)], out=io.StringIO(), err=io.StringIO()) == 0
    code, report = validate(str(target), "--full")
    assert code == 0, report


def test_full_mode_on_the_example(tmp_path: Path) -> None:
    code, report = validate(str(EXAMPLE), "--full", "--pid", "A02")
    assert code == 0, report
    names = [c["name"] for c in report["checks"]]
    assert names[:3] == ["manifest", "requirements", "adapter_start"]
    assert "pre_execute[step 2]" in names and names[-1] == "adapter_shutdown"
    assert "pv:sessions:v1" in check(report, "adapter_start")["message"]


def test_full_mode_reports_import_failure_from_the_worker(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", source="raise ImportError('missing vendor library libfoo')\n")
    code, report = validate(str(project), "--full", "--timeout", "30")
    assert code == 1
    c = check(report, "adapter_start")
    assert c["result"] == "FAIL" and "libfoo" in c["message"]


def test_full_mode_reports_schema_errors_from_the_worker(tmp_path: Path) -> None:
    source = GOOD.replace("user_params[\"limit\"]", "1000").replace('"ng_reason": "dark",', "")
    code, report = validate(str(make_project(tmp_path / "p", source=source)), "--full")
    assert code == 1
    assert "data.ng_reason" in check(report, "execute[step 1]")["message"]
    assert check(report, "adapter_shutdown")["result"] == "PASS"


def test_full_mode_hung_execute_times_out_and_worker_is_killed(tmp_path: Path) -> None:
    source = "import time\n" + GOOD.replace("mean = session.get(\"mean\")",
                                              "time.sleep(120); mean = session.get(\"mean\")")
    code, report = validate(str(make_project(tmp_path / "p", source=source)), "--full", "--timeout", "3")
    assert code == 1
    c = check(report, "execute[step 1]")
    assert c["result"] == "FAIL" and "within 3.000s" in c["message"] and "1005" in c["message"]
    assert check(report, "adapter_shutdown")["result"] == "SKIP"


def test_package_name_clashing_with_an_installed_module(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", package="numpy",
                           manifest={"name": "t-algo", "version": "1.0.0", "entry_point": "numpy.algo:Algo",
                                     "supported_pids": ["P1", "P2"]})
    code, report = validate(str(project))
    assert code == 1
    c = check(report, "entry_import")
    assert c["result"] == "FAIL" and "'numpy' is already used" in c["message"]
    import numpy

    assert hasattr(numpy, "ndarray")  # the real numpy was left alone


def test_example_in_process_with_a_defect_image(tmp_path: Path) -> None:
    img = np.full((600, 800, 3), 185, dtype=np.uint8)
    img[200:230, 300:340] = 25
    path = tmp_path / "defect.npy"
    np.save(path, img)
    code, report = validate(str(EXAMPLE), "--image", str(path), "--pid", "A02")
    assert code == 0, report
    assert check(report, "execute[step 1]")["message"] == "OK"
    assert check(report, "execute[step 2]")["message"].startswith("NG: 1 dark defect(s)")
