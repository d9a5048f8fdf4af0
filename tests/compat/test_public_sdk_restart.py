"""A station restarts: the daemon comes back on the same root and its public-SDK versions serve again
(workers restarted from the bindings in ``active/``, readiness confirmed per dialect)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.support import install, start_server
from tests.compat.conftest import EXECUTE_ONLY, PHASE
from tests.support.public_packages import EXECUTE_ONLY_SDK, PHASE_SDK, expected_facts, png_bytes, sample_image

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_public_versions_serve_again_after_a_daemon_restart(tmp_path: Path, compat_zips: dict[str, Path],
                                                             compat_uv_cache: Path) -> None:
    image, guide = sample_image(seed=91), sample_image(seed=92)
    for first in (True, False):
        server = start_server(tmp_path / "root", uv_cache_dir=compat_uv_cache)
        client = server.client()
        try:
            if first:
                for key, (name, version, pid) in ((PHASE_SDK, PHASE), (EXECUTE_ONLY_SDK, EXECUTE_ONLY)):
                    assert install(client, compat_zips[key])["state"] == "succeeded"
                    response = client.post("/algorithms/activate", json={"name": name, "version": version,
                                                                          "pids": [pid]})
                    assert response.status_code == 200, response.text
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            phase = client.post("/execute", data={"pid": PHASE[2]},
                                files={"image": ("a.png", png_bytes(image), "image/png")}).json()
            assert phase["status"] == "OK" and phase["served_by"]["dialect"] == "public-phase", phase
            assert phase["data"]["debug"]["pixels"] == expected_facts(image)
            execute_only = client.post("/execute", data={"pid": EXECUTE_ONLY[2], "step_desc": "after restart"},
                                       files={"image": ("a.png", png_bytes(image), "image/png"),
                                              "guide_image": ("g.png", png_bytes(guide), "image/png")}).json()
            assert execute_only["status"] == "OK", execute_only
            assert execute_only["data"]["debug"]["guide"] == expected_facts(guide)
        finally:
            client.close()
            server.stop()
