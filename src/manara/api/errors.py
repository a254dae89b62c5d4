"""Every error leaves the API as `application/problem+json` (RFC 9457) with a stable `type`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from manara.errors import ManaraError, Unauthenticated

PROBLEM = "application/problem+json"
log = logging.getLogger("manara.api")


def problem_response(
    status: int, body: dict[str, object], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ManaraError)
    async def manara_error(request: Request, exc: ManaraError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Bearer realm="manara"'} if isinstance(exc, Unauthenticated) else None
        body = exc.problem(instance=request.url.path)
        body["request_id"] = getattr(request.state, "request_id", None)
        return problem_response(exc.status, body, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        return problem_response(
            422,
            {
                "type": "https://manara.ma/problems/validation-error",
                "title": "Invalid request",
                "status": 422,
                "detail": f"{'.'.join(first['loc'])}: {first['msg']}",
                "errors": errors,
                "instance": request.url.path,
            },
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, f"http-{exc.status_code}")
        return problem_response(
            exc.status_code,
            {
                "type": f"https://manara.ma/problems/{slug}",
                "title": str(exc.detail) if exc.status_code != 404 else "Not found",
                "status": exc.status_code,
                "detail": str(exc.detail),
                "instance": request.url.path,
            },
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(
            500,
            {
                "type": "https://manara.ma/problems/internal-error",
                "title": "Internal error",
                "status": 500,
                "detail": "the server failed to handle this request; the error is logged with its request id",
                "request_id": getattr(request.state, "request_id", None),
                "instance": request.url.path,
            },
        )
