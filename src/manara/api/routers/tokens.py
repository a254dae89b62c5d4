"""/api/v1/tokens: create, list and revoke API tokens of the caller's tenant."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import select

from manara.api.deps import get_principal, get_workspace
from manara.errors import Forbidden, NotFound
from manara.govern import identity
from manara.govern.principal import Principal
from manara.meta.db import session_scope
from manara.meta.models import DEFAULT_CLEARANCE, ApiToken, Classification, Role, Tenant, User
from manara.workspace import Workspace

router = APIRouter(prefix="/tokens", tags=["tokens"])
Ws = Annotated[Workspace, Depends(get_workspace)]
Caller = Annotated[Principal, Depends(get_principal)]


class TokenRequest(BaseModel):
    name: str = Field(..., min_length=1, max_length=255)
    role: Role = Role.viewer
    clearance: Classification | None = Field(
        None,
        description="highest classification the token may read; default: the role's, capped by the caller's",
    )
    expires_days: float | None = Field(
        90, gt=0, le=3650, description="lifetime; null for no expiry (admins only)"
    )


def _visible(principal: Principal, tok: ApiToken) -> bool:
    return principal.role is Role.admin or (
        principal.user_id is not None and tok.user_id == principal.user_id
    )


@router.get("")
def list_tokens(ws: Ws, principal: Caller) -> list[dict[str, Any]]:
    """Admins see the tenant's tokens; others see their own. Secrets are never returned."""
    with session_scope(ws.engine) as s:
        tenant = s.get_one(Tenant, principal.tenant_id)
        return [
            identity.token_info(t)
            for t in identity.list_tokens(s, tenant, principal.actor)
            if _visible(principal, t)
        ]


@router.post("", status_code=201)
def create_token(body: TokenRequest, ws: Ws, principal: Caller) -> dict[str, Any]:
    """A new token for the caller's user, with a role no higher than the caller's. The secret is shown once."""
    if not principal.role.at_least(body.role):
        raise Forbidden(f"a '{principal.role.value}' token cannot create a '{body.role.value}' token")
    if body.clearance and not principal.may_read(body.clearance):
        raise Forbidden(
            f"a token cleared for '{principal.effective_clearance.value}' cannot create one cleared for "
            f"'{body.clearance.value}'"
        )
    if body.expires_days is None and principal.role is not Role.admin:
        raise Forbidden("only admins may create tokens that never expire")
    with session_scope(ws.engine) as s:
        tenant = s.get_one(Tenant, principal.tenant_id)
        user = s.get(User, principal.user_id) if principal.user_id else None
        issued = identity.create_token(
            s, tenant, role=body.role, name=body.name, actor=principal.actor, user=user,
            expires_in=timedelta(days=body.expires_days) if body.expires_days else None,
            clearance=body.clearance or _capped_default(principal, body.role),
        )  # fmt: skip
        return {**identity.token_info(issued.token), "secret": issued.secret}


def _capped_default(principal: Principal, role: Role) -> Classification | None:
    """A token never reads more than the token that made it: cap the role's default clearance."""
    default = DEFAULT_CLEARANCE[role]
    return principal.effective_clearance if not principal.may_read(default) else None


@router.delete("/{token_id}")
def revoke_token(token_id: str, ws: Ws, principal: Caller) -> dict[str, Any]:
    """Revoke a token (admins: any of the tenant's; others: their own)."""
    with session_scope(ws.engine) as s:
        tenant = s.get_one(Tenant, principal.tenant_id)
        tok = s.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.tenant_id == tenant.id))
        if tok is None or not _visible(principal, tok):
            raise NotFound(f"token '{token_id}' does not exist")
        return identity.token_info(identity.revoke_token(s, tenant, token_id, principal.actor))
