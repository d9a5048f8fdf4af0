"""Rollback, like activate and switch, refuses under trust_mode require to go back to a version whose
signer is no longer trusted, and moves no pid when it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.support import install, make_zip, start_server
from tests.support.signing import make_key, sign_with_key

pytestmark = pytest.mark.slow


def test_rollback_to_a_version_whose_signer_was_removed_is_refused(tmp_path: Path) -> None:
    old_key = make_key(tmp_path / "keys", "old-line")
    new_key = make_key(tmp_path / "keys", "new-line")
    srv = start_server(tmp_path / "root", trust_mode="require")
    try:
        with srv.client() as client:
            for key in (old_key, new_key):
                assert client.post("/trust", json={"pem": key.public.read_text()}).status_code == 200
            old = install(client, sign_with_key(make_zip(tmp_path / "v1", version="1.0.0"), old_key))
            new = install(client, sign_with_key(make_zip(tmp_path / "v2", version="1.1.0"), new_key))
            assert old["state"] == new["state"] == "succeeded", (old, new)
            activated = client.post("/algorithms/activate", json={"name": "api_algo", "version": "1.0.0",
                                                                  "pids": ["P001"]})
            assert activated.status_code == 200, activated.text
            switched = client.post("/algorithms/switch", json={"name": "api_algo", "version": "1.1.0",
                                                               "pids": ["P001"]})
            assert switched.status_code == 200, switched.text

            assert client.delete(f"/trust/{old_key.fingerprint[:12]}").status_code == 200
            refused = client.post("/algorithms/rollback", json={"pids": ["P001"]})
            assert refused.status_code == 409, refused.text
            assert refused.json()["code"] == "2035" and old_key.fingerprint in refused.json()["detail"]
            assert client.get("/algorithms/active").json()["P001"]["version"] == "1.1.0"

            # Trusted again, the same rollback goes through.
            assert client.post("/trust", json={"pem": old_key.public.read_text()}).status_code == 200
            rolled = client.post("/algorithms/rollback", json={"pids": ["P001"]})
            assert rolled.status_code == 200, rolled.text
            assert client.get("/algorithms/active").json()["P001"]["version"] == "1.0.0"
    finally:
        srv.stop()
