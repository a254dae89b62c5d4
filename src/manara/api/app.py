"""The FastAPI app factory: wiring only; the work is in the service functions it calls."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import RedirectResponse

from manara import __version__
from manara.api.docs import DOCS_URL, OPENAPI_URL, install_docs
from manara.api.errors import install_error_handlers
from manara.api.metrics import ApiMetrics
from manara.api.routers import (
    audit,
    collections,
    datasets,
    health,
    openai,
    pipelines,
    sql,
    subscriptions,
    tokens,
)
from manara.config import Settings
from manara.govern.audit import request_id_var
from manara.workspace import Workspace

API_PREFIX = "/api/v1"


def create_app(settings: Settings, workspace: Workspace | None = None) -> FastAPI:
    app = FastAPI(
        title="Manara API",
        version=__version__,
        description="Sovereign data & AI hub: datasets, safe SQL, document collections, multilingual search and "
        "cited answers, OpenAI-compatible embeddings, tokens and audit. "
        "Authenticate with `Authorization: Bearer <token>`.",
        openapi_url=OPENAPI_URL,
        docs_url=None,
        redoc_url=None,
    )
    app.state.workspace = workspace or Workspace.open(settings)
    app.state.metrics = ApiMetrics(app.state.workspace.engine)
    install_error_handlers(app)
    install_docs(app)

    api = APIRouter(prefix=API_PREFIX)
    for module in (datasets, sql, tokens, audit, collections, pipelines, subscriptions):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(openai.router)
    app.include_router(health.router)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(DOCS_URL)

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        rid = rid[:64]
        request.state.request_id = rid
        token = request_id_var.set(rid)
        started = time.perf_counter()
        try:
            response = await call_next(request)
        finally:
            request_id_var.reset(token)
        path = _route_label(request)
        metrics: ApiMetrics = app.state.metrics
        metrics.requests.labels(request.method, path, str(response.status_code)).inc()
        metrics.latency.labels(request.method, path).observe(time.perf_counter() - started)
        response.headers["X-Request-ID"] = rid
        return response

    return app


def _route_label(request: Request) -> str:
    """The route template (bounded label cardinality); routers included under /api/v1 report it whole."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    if path is None:
        return "unmatched"
    if request.url.path.startswith(API_PREFIX + "/") and not path.startswith(API_PREFIX):
        return API_PREFIX + path
    return str(path)
