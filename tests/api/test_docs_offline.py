"""The interactive API docs must work offline: no CDN URL, every asset served locally."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from manara.api.docs import install_docs


def _client() -> TestClient:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url="/api/v1/openapi.json")

    @app.get("/api/v1/ping")
    def ping() -> dict[str, str]:
        return {"status": "ok"}

    install_docs(app)
    return TestClient(app)


def test_docs_page_references_only_local_assets() -> None:
    client = _client()
    resp = client.get("/api/v1/docs")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    html = resp.text

    # No absolute URL in any script or link tag.
    tags = re.findall(r"<(?:script|link)\b[^>]*>", html, flags=re.IGNORECASE)
    assert tags, "expected script/link tags in the Swagger UI page"
    for tag in tags:
        assert "http://" not in tag.lower() and "https://" not in tag.lower(), tag
    # Nor anywhere else in the page (e.g. a CDN URL in the inline script).
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html
    assert '"validatorUrl": null' in html

    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html, flags=re.IGNORECASE)
    assert len(urls) >= 3, urls  # css, favicon, js
    for url in urls:
        assert url.startswith("/api/v1/") and not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0, url

    assert "/api/v1/openapi.json" in html


def test_openapi_and_oauth2_redirect() -> None:
    client = _client()
    spec = client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert "/api/v1/ping" in paths
    assert not any(p.startswith("/api/v1/docs") for p in paths)

    redirect = client.get("/api/v1/docs/oauth2-redirect")
    assert redirect.status_code == 200
    assert "text/html" in redirect.headers["content-type"]

    # FastAPI's default CDN-backed pages are off.
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404


def test_hub_openapi_declares_bearer_auth_on_data_routes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The docs page offers 'Authorize' because every data route declares the bearer scheme."""
    from fastapi.testclient import TestClient as Client

    from manara.api.app import create_app
    from manara.config import Settings
    from manara.workspace import init_workspace

    ws = init_workspace(Settings(home=tmp_path / "home")).workspace
    spec = Client(create_app(ws.settings, ws)).get("/api/v1/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert spec["paths"]["/api/v1/sql"]["post"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in spec["paths"]["/healthz"]["get"]
    ws.close()
