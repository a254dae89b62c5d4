"""Request-scoped dependencies: the workspace and the calling principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from manara.errors import Unauthenticated
from manara.govern import audit, identity
from manara.govern.principal import Principal
from manara.meta.db import session_scope
from manara.workspace import Workspace


def get_workspace(request: Request) -> Workspace:
    ws: Workspace = request.app.state.workspace
    return ws


# Declares the scheme in OpenAPI (the docs page's "Authorize" button); the header is parsed below
# so that every failure gets its own problem+json answer.
bearer_scheme = HTTPBearer(auto_error=False, description="an API token: `manara token create`")


def get_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
) -> Principal:
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
