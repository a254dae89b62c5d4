"""Request-scoped dependencies: the workspace and the calling principal."""

from __future__ import annotations

from fastapi import Request

from manara.errors import Unauthenticated
from manara.govern import audit, identity
from manara.govern.principal import Principal
from manara.meta.db import session_scope
from manara.workspace import Workspace


def get_workspace(request: Request) -> Workspace:
    ws: Workspace = request.app.state.workspace
    return ws


def get_principal(request: Request) -> Principal:
    """Resolve `Authorization: Bearer <token>`; failures are audited and answered with 401."""
    ws = get_workspace(request)
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    try:
        if not header:
            raise Unauthenticated("send an API token as 'Authorization: Bearer <token>'")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        with session_scope(ws.engine) as s:
            principal = identity.authenticate(s, secret.strip())
    except Unauthenticated as e:
        audit.write(
            ws.engine,
            audit.EventFields(
                "anonymous",
                "auth.denied",
                outcome="denied",
                target=f"{request.method} {request.url.path}",
                detail={"reason": e.detail, "client": request.client.host if request.client else None},
            ),
        )
        raise
    request.state.principal = principal
    return principal
