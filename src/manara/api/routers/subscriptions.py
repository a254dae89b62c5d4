"""/api/v1/subscriptions: webhooks for the tenant's events (dataset commits, pipeline runs, quarantine).

`POST` answers the subscription with its signing `secret`, shown only then; deliveries carry
`X-Manara-Signature: sha256=HMAC(secret, timestamp + "." + body)` (see `manara.connect.bus`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from manara.api.deps import get_principal, get_workspace
from manara.connect import bus
from manara.govern.principal import Principal
from manara.workspace import Workspace

router = APIRouter(tags=["events"])
Ws = Annotated[Workspace, Depends(get_workspace)]
Caller = Annotated[Principal, Depends(get_principal)]


class SubscriptionIn(BaseModel):
    url: str = Field(description="the webhook: an http(s) URL the egress allow-list permits")
    events: list[str] = Field(description=f"event types or patterns: {', '.join(bus.EVENT_TYPES)}, '*'")


@router.post("/subscriptions", status_code=201)
def create(body: SubscriptionIn, ws: Ws, caller: Caller) -> dict[str, Any]:
    return bus.create_subscription(ws, caller, body.url, body.events)


@router.get("/subscriptions")
def list_(ws: Ws, caller: Caller) -> list[dict[str, Any]]:
    return bus.list_subscriptions(ws, caller)


@router.delete("/subscriptions/{sub_id}", status_code=204)
def delete(sub_id: str, ws: Ws, caller: Caller) -> Response:
    bus.delete_subscription(ws, caller, sub_id)
    return Response(status_code=204)


@router.get("/subscriptions/{sub_id}/deliveries")
def deliveries(
    sub_id: str, ws: Ws, caller: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> list[dict[str, Any]]:
    return bus.subscription_deliveries(ws, caller, sub_id, limit)
