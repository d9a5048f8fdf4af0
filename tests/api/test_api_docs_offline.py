"""/docs works in a browser on a station with no network: public, assets served by the daemon, an
Authorize button (the bearer scheme in the spec), and every data route still needs the token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.api.support import RunningServer, start_server

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("docs") / "root")
    yield srv
    srv.stop()


def test_docs_page_and_every_asset_load_without_token_or_network(server: RunningServer) -> None:
    with server.client(token=None) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        html = page.text
        # Nothing on the page points off the daemon: no CDN, no online validator.
        assert "http://" not in html and "https://" not in html and "//cdn" not in html
        assets = ASSET.findall(html)
        assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
        for asset in assets:
            assert not urlsplit(asset).netloc, asset
            response = client.get(asset)
            assert response.status_code == 200, asset
            assert len(response.content) > 0
        assert "'/openapi.json'" in html
        assert client.get("/openapi.json").status_code == 200


def test_spec_declares_the_bearer_scheme_on_every_data_route(server: RunningServer) -> None:
    with server.client(token=None) as client:
        spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["bearerAuth"][
            "description"]}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if path == "/livez":
                assert "security" not in operation
            else:
                assert operation.get("security") == [{"bearerAuth": []}], f"{method.upper()} {path}"


def test_data_routes_stay_closed_while_the_docs_are_open(server: RunningServer) -> None:
    with server.client(token=None) as client:
        spec = client.get("/openapi.json").json()
        for path, item in spec["paths"].items():
            if path == "/livez" or "get" not in item or "{" in path:
                continue
            assert client.get(path).status_code == 401, path
