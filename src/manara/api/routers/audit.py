"""/api/v1/audit: the tenant's audit events (admins only), and chain verification."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from manara.api.deps import get_principal, get_workspace
from manara.govern import audit
from manara.govern.principal import Principal
from manara.meta.models import Role
from manara.workspace import Workspace

router = APIRouter(prefix="/audit", tags=["audit"])
Ws = Annotated[Workspace, Depends(get_workspace)]
Caller = Annotated[Principal, Depends(get_principal)]


@router.get("")
def list_events(
    ws: Ws,
    principal: Caller,
    actor: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    target: str | None = Query(None, description="prefix of the target"),
    since: datetime | None = None,
    until: datetime | None = None,
    before_seq: int | None = Query(
        None, description="page backwards: events older than this sequence number"
    ),
    limit: int = Query(100, ge=1, le=10_000),
) -> dict[str, Any]:
    """Newest first, filtered; only events of the caller's tenant."""
    principal.require(Role.admin, "reading the audit log")
    events = audit.query(
        ws.engine, tenant=principal.tenant, actor=actor, action=action, outcome=outcome, target=target,
        since=since, until=until, before_seq=before_seq, limit=limit,
    )  # fmt: skip
    audit.write(ws.engine, audit.EventFields(principal.actor, "audit.read", tenant=principal.tenant))
    return {"events": events, "next_before_seq": events[-1]["seq"] if len(events) == limit else None}


@router.get("/verify")
def verify_chain(ws: Ws, principal: Caller) -> dict[str, Any]:
    """Recompute the whole hash chain."""
    principal.require(Role.admin, "verifying the audit log")
    r = audit.verify(ws.engine)
    audit.write(
        ws.engine,
        audit.EventFields(
            principal.actor, "audit.verify", tenant=principal.tenant, outcome="ok" if r.ok else "broken",
            detail={"checked": r.checked, "first_broken_seq": r.first_broken_seq},
        ),
    )  # fmt: skip
    return {"ok": r.ok, "checked": r.checked, "first_broken_seq": r.first_broken_seq, "reason": r.reason}
