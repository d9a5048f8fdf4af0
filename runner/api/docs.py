"""The API's own documentation, served by the daemon itself: stations have no network.

``/openapi.json`` and ``/docs`` (Swagger UI) answer without the token: they describe the API and
hold no data, and a browser cannot send a bearer header to open them. Swagger UI's JavaScript and
CSS come from the ``fastapi-offline`` package (its static folder) under ``/docs/static``, so the
page loads nothing from a CDN. The bearer scheme is declared in the spec (see ``auth.BEARER``), so
the page has an Authorize button and every data route shows the lock.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

#: Where the Swagger UI assets are served from.
STATIC_PATH = "/docs/static"
ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"


def mount_docs(app: FastAPI, title: str) -> None:
    """Add ``/openapi.json``, ``/docs`` and the Swagger UI assets to ``app`` (all public)."""
    app.mount(STATIC_PATH, StaticFiles(directory=ASSETS), name="docs-static")

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_schema() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title=title,
            swagger_js_url=f"{STATIC_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_PATH}/favicon.png",
            # No online validator badge (it would call out to the internet); keep the token
            # entered with Authorize across reloads.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True})
