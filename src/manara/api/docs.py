"""Offline interactive API docs (Swagger UI served from vendored files, no CDN).

The app must be created with ``docs_url=None, redoc_url=None,
openapi_url="/api/v1/openapi.json"``; :func:`install_docs` then serves
Swagger UI at ``/api/v1/docs`` using the assets vendored in
``manara/api/static/swagger-ui`` (swagger-ui-dist, see its VERSION file).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_UI_DIR = Path(__file__).resolve().parent / "static" / "swagger-ui"

OPENAPI_URL = "/api/v1/openapi.json"
DOCS_URL = "/api/v1/docs"
OAUTH2_REDIRECT_URL = "/api/v1/docs/oauth2-redirect"
STATIC_URL = "/api/v1/static/swagger-ui"


def install_docs(app: FastAPI) -> None:
    """Mount the vendored Swagger UI assets and add the /api/v1/docs routes."""
    app.mount(STATIC_URL, StaticFiles(directory=SWAGGER_UI_DIR), name="swagger-ui-static")

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title="Manara API",
            swagger_js_url=f"{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_URL}/favicon-32x32.png",
            oauth2_redirect_url=OAUTH2_REDIRECT_URL,
            # The default validator badge calls validator.swagger.io: keep it offline.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
