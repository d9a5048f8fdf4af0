"""Finding 8 end to end: ``procvision-runner activate --memory-limit-mb`` gives a version its own
worker memory limit, ``show`` reports it and how it is enforced, and an ``execute`` that allocates
without bound is answered ``502 / 1018 memory_limit_exceeded`` while the daemon keeps serving."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx

from runner.cli.main import main
from runner.supervision.containment import choose_containment
from tests.api.support import NAME, install, png_bytes, start_server
from tests.support.algorithms import algorithm_info, memory_hog
from tests.support.packages import build_package, manifest_for

#: Allocates without end once asked (``hog``): only the version's memory limit stops it.
SOURCE = memory_hog(algorithm_info(NAME, pids=("P001",)), until_stopped=True)


def cli(url: str, root: Path, *argv: str) -> Any:
    out, err = io.StringIO(), io.StringIO()
    code = main([*argv, "--url", url, "--root", str(root), "--json"], out=out, err=err)
    assert code == 0, err.getvalue()
    return json.loads(out.getvalue())


def test_activate_with_a_memory_limit_and_go_over_it(tmp_path: Path) -> None:
    zip_path = build_package(tmp_path / "pkg", manifest=manifest_for(name=NAME, version="1.0.0", pids=("P001",)),
                             files={"algo/__init__.py": "", "algo/main.py": SOURCE})
    server = start_server(tmp_path / "root")
    try:
        root = server.settings.root
        with server.client() as client:
            assert install(client, zip_path)["state"] == "succeeded"
            bad = client.post("/algorithms/activate", json={"name": NAME, "version": "1.0.0", "pids": ["P001"],
                                                            "memory_limit_mb": -5})
            assert bad.status_code == 422 and bad.json()["code"] == "2013"

            # Not running yet: show says what its workers would get (the setting).
            before = cli(server.url, root, "show", NAME, "1.0.0")
            assert before["workers"] is None and before["memory_limit"]["limit_mb"] == 4096

            done = cli(server.url, root, "activate", NAME, "1.0.0", "--pid", "P001", "--memory-limit-mb", "320")
            assert done["active"]["P001"]["memory_limit_mb"] == 320
            limit = cli(server.url, root, "show", NAME, "1.0.0")["workers"]["memory_limit"]
            _, expected = choose_containment("auto", 320)
            assert limit["limit_mb"] == 320 and limit["mechanism"] == expected.mechanism and limit["enforced"]
            text = io.StringIO()
            assert main(["show", NAME, "1.0.0", "--url", server.url, "--root", str(root)], out=text,
                        err=io.StringIO()) == 0
            assert f"320 MB per worker ({expected.mechanism}" in text.getvalue()

            def execute(params: str) -> httpx.Response:
                return client.post("/execute", data={"pid": "P001", "user_params": params, "timeout_ms": "60000"},
                                   files={"image": ("a.png", png_bytes(), "image/png")})

            over = execute('{"hog": true}')
            assert over.status_code == 502, over.text
            problem = over.json()
            assert problem["code"] == "1018" and problem["name"] == "memory_limit_exceeded", problem
            assert "320 MB" in problem["detail"]
            # The worker was replaced; the next call is served.
            again = execute("{}")
            assert again.status_code == 200 and again.json()["status"] == "OK", again.text
    finally:
        server.stop()
