"""Liveness, readiness and Prometheus metrics (no token needed: they reveal no data)."""

from __future__ import annotations

import tempfile

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from manara import __version__
from manara.api.errors import problem_response

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok", "version": __version__}


@router.get("/readyz", response_model=None)
def readyz(request: Request) -> JSONResponse:
    """Ready to serve: the metadata database answers and the warehouse is writable."""
    ws = request.app.state.workspace
    checks: dict[str, str] = {}
    try:
        with ws.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as e:  # report, don't crash: this endpoint exists to say what is wrong
        checks["database"] = f"failed: {type(e).__name__}"
    try:
        with tempfile.NamedTemporaryFile(dir=ws.settings.warehouse_path):
            pass
        checks["warehouse"] = "ok"
    except OSError as e:
        checks["warehouse"] = f"failed: {e.strerror}"
    if all(v == "ok" for v in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    return problem_response(
        503,
        {
            "type": "https://manara.ma/problems/not-ready",
            "title": "Not ready",
            "status": 503,
            "detail": ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok"),
            "checks": checks,
        },
    )


@router.get("/metrics")
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
