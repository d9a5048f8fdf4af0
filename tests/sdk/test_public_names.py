"""Every name code written against the public SDK (either era) imports exists, with its signature."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import procvision_algorithm_sdk as sdk
from procvision_algorithm_sdk import cli, protocol, shared_memory

from .conftest import clean_env, write_algo

PUBLIC_TOP_LEVEL = ["BaseAlgorithm", "Session", "read_image_from_shared_memory", "write_image_array_to_shared_memory",
                    "StructuredLogger", "Diagnostics", "RecoverableError", "FatalError", "GPUOutOfMemoryError",
                    "ProgramError"]
#: Signatures of the public functions whose parameters did not change between the eras.
PUBLIC_SIGNATURES = {
    cli.validate: ["project", "manifest", "zip_path"],
    cli.validate_adapter: ["project", "entry", "tail_logs"],
    cli.package: ["project", "output", "requirements", "auto_freeze", "wheels_platform", "python_version",
                  "implementation", "abi", "skip_download", "embed_python", "python_runtime",
                  "runtime_python_version", "runtime_abi"],
    shared_memory.read_image_from_shared_memory: ["shared_mem_id", "image_meta"],
    shared_memory.write_image_array_to_shared_memory: ["shared_mem_id", "image_array"],
    shared_memory.dev_write_image_to_shared_memory: ["shared_mem_id", "image_bytes"],
    shared_memory.dev_clear_shared_memory: ["shared_mem_id"],
}


def test_top_level_and_cli_names_exist_and_are_callables() -> None:
    for name in PUBLIC_TOP_LEVEL:
        assert name in sdk.__all__ and getattr(sdk, name) is not None
    for name in ("main", "validate", "run", "package", "init_project", "validate_adapter", "run_adapter"):
        assert inspect.isfunction(getattr(cli, name)), name
    # Importing the command modules by their dotted names does not rebind the functions.
    import procvision_algorithm_sdk.cli.main  # noqa: F401
    import procvision_algorithm_sdk.cli.package  # noqa: F401
    import procvision_algorithm_sdk.cli.run  # noqa: F401
    import procvision_algorithm_sdk.cli.validate  # noqa: F401

    assert inspect.isfunction(cli.validate) and inspect.isfunction(cli.run) and inspect.isfunction(cli.main)



def test_public_main_exits_with_the_command_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and "procvision-cli" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        cli.main(["validate", "/nonexistent/project/folder"])
    assert exc.value.code == 2


@pytest.mark.parametrize("func", list(PUBLIC_SIGNATURES), ids=lambda f: f.__name__)
def test_public_signatures(func: object) -> None:
    params = list(inspect.signature(func).parameters)  # type: ignore[arg-type]
    assert params == PUBLIC_SIGNATURES[func]  # type: ignore[index]


def test_error_classes_are_exceptions_with_public_names() -> None:
    for name in ("RecoverableError", "FatalError", "GPUOutOfMemoryError", "ProgramError"):
        cls = getattr(sdk, name)
        assert issubclass(cls, Exception)
        with pytest.raises(cls):
            raise cls("boom")


def test_dev_ids_follow_the_public_sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROC_SHM_DIR", str(tmp_path))
    meta = {"width": 8, "height": 6}
    # Nothing written: a black image of the meta's size; no size: None.
    assert shared_memory.read_image_from_shared_memory("dev-shm:never", meta).shape == (6, 8, 3)
    assert shared_memory.read_image_from_shared_memory("dev-shm:never", {}) is None
    # Undecodable bytes read as black too.
    shared_memory.dev_write_image_to_shared_memory("dev-shm:bad", b"\x00invalid")
    assert not shared_memory.read_image_from_shared_memory("dev-shm:bad", meta).any()
    # The latest write wins, whatever its kind; a mono float array is converted on read.
    shared_memory.write_image_array_to_shared_memory("dev-shm:x", np.full((6, 8), 7.0))
    out = shared_memory.read_image_from_shared_memory("dev-shm:x", meta)
    assert out.dtype == np.uint8 and out.shape == (6, 8, 3) and int(out[0, 0, 2]) == 7
    assert (tmp_path / "dev-shm_x.npy").is_file()
    shared_memory.dev_clear_shared_memory("dev-shm:x")
    assert not (tmp_path / "dev-shm_x.npy").exists()
    assert not shared_memory.read_image_from_shared_memory("dev-shm:x", meta).any()


def test_dev_image_written_here_is_read_by_another_process(tmp_path: Path) -> None:
    from PIL import Image

    env = dict(os.environ, PROC_SHM_DIR=str(tmp_path))
    png = tmp_path / "src.png"
    Image.fromarray(np.full((4, 5, 3), (10, 20, 30), dtype=np.uint8)).save(png)
    code = ("import sys; from procvision_algorithm_sdk.shared_memory import dev_write_image_to_shared_memory as w; "
            "w('dev-shm:p', open(sys.argv[1], 'rb').read())")
    subprocess.run([sys.executable, "-c", code, str(png)], env=env, check=True, timeout=60)
    read = ("from procvision_algorithm_sdk.shared_memory import read_image_from_shared_memory as r; "
            "print(r('dev-shm:p', {'width': 5, 'height': 4})[0, 0].tolist())")
    out = subprocess.run([sys.executable, "-c", read], env=env, check=True, timeout=60, capture_output=True, text=True)
    assert json.loads(out.stdout) == [10, 20, 30]


def test_runner_ids_stay_strict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from procvision_algorithm_sdk.errors import ProcVisionError

    monkeypatch.setenv("PROC_SHM_DIR", str(tmp_path))
    for shm_id in ("pvshm-" + "0" * 32, "pvimg-" + "1" * 32):
        with pytest.raises(ProcVisionError) as exc:
            shared_memory.read_image_from_shared_memory(shm_id, {"width": 4, "height": 4})
        assert exc.value.error_code == "1007"


def test_procvision_adapter_script_and_environment(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("procvision-adapter")
    assert script.is_file(), "the procvision-adapter console script is installed with the SDK"
    folder = write_algo(tmp_path / "pkg", manifest_entry="algo:Algo")
    env = clean_env({"PROC_ALGO_ROOT": str(folder), "PROC_LOG_LEVEL": "debug", "PROC_HEARTBEAT_INTERVAL_MS": "250",
                     "PROC_HEARTBEAT_GRACE_MS": "not-a-number"})
    proc = subprocess.Popen([str(script)], cwd=str(tmp_path), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        hello = protocol.read_frame(proc.stdout, 1 << 20)
        assert hello["type"] == "hello" and hello["entry_point"] == "algo:Algo"
        protocol.write_frame(proc.stdin, {"type": "shutdown"}, 1 << 20)
        proc.stdin.flush()
        assert protocol.read_frame(proc.stdout, 1 << 20)["type"] == "shutdown"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        _, stderr = proc.communicate(timeout=10)
    text = stderr.decode()
    assert "PROC_HEARTBEAT_GRACE_MS is not an integer" in text and '"log_level": "debug"' in text
