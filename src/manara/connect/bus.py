"""The event bus: outbox → subscriptions → signed webhook deliveries, retried and logged.

Events are written to the outbox by the audit log itself (`manara.govern.audit.PUBLISHED`), in the
same database transaction as the change they announce: a dataset commit, a pipeline run, a
quarantine. Nothing is announced that did not happen, and nothing that happened is missed.

The dispatcher (a thread of `manara up`; `dispatch_once()` in tests) turns each new outbox event
into one delivery per matching subscription of its tenant, then POSTs due deliveries:

    POST <subscription url>
    Content-Type: application/json
    X-Manara-Event: pipeline.run
    X-Manara-Delivery: <delivery id>
    X-Manara-Timestamp: 1763900000
    X-Manara-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

    {"id": 42, "type": "pipeline.run", "tenant": "…", "subject": "…", "outcome": "ok",
     "created_at": "…", "data": {…}}

A receiver checks the signature and the timestamp (replays). Any answer other than 2xx, or no
answer, is retried after 30 s, 1 min, 2 min… up to `MAX_ATTEMPTS`; every attempt is recorded.
Deliveries go out only to hosts the workspace's egress allow-list permits.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from manara.errors import BadRequest, NotFound
from manara.govern import audit
from manara.govern.principal import Principal
from manara.meta.db import session_scope
from manara.meta.models import Delivery, OutboxEvent, Role, Subscription, Tenant
from manara.workspace import Workspace

log = logging.getLogger("manara.bus")
MAX_ATTEMPTS = 8
BACKOFF = timedelta(seconds=30)
EVENT_TYPES = sorted(audit.PUBLISHED)


class SubscriptionNotFound(NotFound):
    type, title = "subscription-not-found", "Subscription not found"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


# --- subscriptions ------------------------------------------------------------------------------


def _sub_dict(row: Subscription, *, secret: bool = False) -> dict[str, Any]:
    out = {"id": row.id, "url": row.url, "events": json.loads(row.events), "active": row.active,
           "created_at": row.created_at, "created_by": row.created_by}  # fmt: skip
    return out | {"secret": row.secret} if secret else out


def create_subscription(ws: Workspace, principal: Principal, url: str, events: list[str]) -> dict[str, Any]:
    """A webhook subscription; the answer holds its signing secret, shown this once."""
    principal.require(Role.steward, "subscribing to events")
    if not url.startswith(("http://", "https://")):
        raise BadRequest(f"'{url}' is not an http(s) URL")
    if not events:
        raise BadRequest(f"name at least one event type or pattern: {', '.join(EVENT_TYPES)}, or '*'")
    unknown = [p for p in events if not any(fnmatch.fnmatchcase(t, p) for t in EVENT_TYPES)]
    if unknown:
        raise BadRequest(f"no event matches {', '.join(unknown)}: events are {', '.join(EVENT_TYPES)}")
    with session_scope(ws.engine) as s:
        row = Subscription(id=uuid.uuid4().hex, tenant_id=principal.tenant_id, url=url, events=json.dumps(events),
                           secret=secrets.token_urlsafe(32), created_by=principal.actor)  # fmt: skip
        s.add(row)
        s.flush()
        audit.record(
            s.connection(),
            audit.EventFields(principal.actor, "subscription.create", tenant=principal.tenant, target=row.id,
                              detail={"url": url, "events": events}, request_id=audit.request_id_var.get()),
        )  # fmt: skip
        return _sub_dict(row, secret=True)


def list_subscriptions(ws: Workspace, principal: Principal) -> list[dict[str, Any]]:
    principal.require(Role.steward, "reading subscriptions")
    with session_scope(ws.engine) as s:
        rows = s.scalars(select(Subscription).where(Subscription.tenant_id == principal.tenant_id)
                         .order_by(Subscription.created_at)).all()  # fmt: skip
        return [_sub_dict(r) for r in rows]


def _own(s: Any, principal: Principal, sub_id: str) -> Subscription:
    row = s.get(Subscription, sub_id)
    if row is None or row.tenant_id != principal.tenant_id:
        raise SubscriptionNotFound(f"subscription '{sub_id}' does not exist")
    return row  # type: ignore[no-any-return]


def delete_subscription(ws: Workspace, principal: Principal, sub_id: str) -> None:
    principal.require(Role.steward, "deleting a subscription")
    with session_scope(ws.engine) as s:
        s.delete(_own(s, principal, sub_id))
        audit.record(
            s.connection(),
            audit.EventFields(principal.actor, "subscription.delete", tenant=principal.tenant, target=sub_id,
                              request_id=audit.request_id_var.get()),
        )  # fmt: skip


def subscription_deliveries(
    ws: Workspace, principal: Principal, sub_id: str, limit: int = 50
) -> list[dict[str, Any]]:
    principal.require(Role.steward, "reading deliveries")
    with session_scope(ws.engine) as s:
        _own(s, principal, sub_id)
        rows = s.execute(
            select(Delivery, OutboxEvent.type).join(OutboxEvent, OutboxEvent.id == Delivery.event_id)
            .where(Delivery.subscription_id == sub_id).order_by(Delivery.id.desc()).limit(limit)
        ).all()  # fmt: skip
        return [
            {"id": d.id, "event_id": d.event_id, "event": t, "status": d.status, "attempts": d.attempts,
             "last_status": d.last_status, "last_error": d.last_error, "next_attempt_at": d.next_attempt_at,
             "delivered_at": d.delivered_at}
            for d, t in rows
        ]  # fmt: skip


# --- dispatching --------------------------------------------------------------------------------


class Dispatcher:
    def __init__(
        self,
        ws: Workspace,
        *,
        interval: float = 2.0,
        check_egress: Callable[[str], None] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.ws = ws
        self.interval = interval
        self.check_egress = check_egress
        self.client = httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def dispatch_once(self, now: datetime | None = None) -> dict[str, int]:
        """Fan new events out to subscriptions, then attempt every due delivery."""
        now = now or datetime.now(UTC)
        fanned = self._fan_out(now)
        delivered, failed = self._deliver(now)
        return {"events": fanned, "delivered": delivered, "failed": failed}

    def _fan_out(self, now: datetime) -> int:
        with session_scope(self.ws.engine) as s:
            events = s.scalars(select(OutboxEvent).where(OutboxEvent.dispatched_at.is_(None))
                               .order_by(OutboxEvent.id).limit(500)).all()  # fmt: skip
            if not events:
                return 0
            subs = s.execute(
                select(Subscription, Tenant.slug).join(Tenant, Tenant.id == Subscription.tenant_id)
                .where(Subscription.active.is_(True))
            ).all()  # fmt: skip
            for ev in events:
                for sub, tenant in subs:
                    if tenant == ev.tenant and any(
                        fnmatch.fnmatchcase(ev.type, p) for p in json.loads(sub.events)
                    ):
                        s.add(
                            Delivery(
                                subscription_id=sub.id, event_id=ev.id, status="pending", next_attempt_at=now
                            )
                        )
                ev.dispatched_at = now
            return len(events)

    def _deliver(self, now: datetime) -> tuple[int, int]:
        delivered = failed = 0
        with session_scope(self.ws.engine) as s:
            due = s.execute(
                select(Delivery, Subscription, OutboxEvent)
                .join(Subscription, Subscription.id == Delivery.subscription_id)
                .join(OutboxEvent, OutboxEvent.id == Delivery.event_id)
                .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
                .order_by(Delivery.id).limit(200)
            ).all()  # fmt: skip
            for d, sub, ev in due:
                ok, status, error = self._post(d, sub, ev)
                d.attempts += 1
                d.last_status, d.last_error = status, error
                if ok:
                    d.status, d.delivered_at = "delivered", datetime.now(UTC)
                    delivered += 1
                elif d.attempts >= MAX_ATTEMPTS or status == -1:
                    d.status = "failed"
                    failed += 1
                else:
                    d.next_attempt_at = now + BACKOFF * (2 ** (d.attempts - 1))
        return delivered, failed

    def _post(self, d: Delivery, sub: Subscription, ev: OutboxEvent) -> tuple[bool, int | None, str | None]:
        body = json.dumps(
            {"id": ev.id, "type": ev.type, "tenant": ev.tenant, "subject": ev.subject, "outcome": ev.outcome,
             "created_at": ev.created_at.isoformat() if ev.created_at else None, "data": json.loads(ev.data)},
            ensure_ascii=False,
        ).encode("utf-8")  # fmt: skip
        if self.check_egress is not None:
            try:
                self.check_egress(sub.url)
            except Exception as err:  # a refused host never becomes reachable by retrying
                return False, -1, str(getattr(err, "detail", err))
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Manara-Event": ev.type,
            "X-Manara-Delivery": str(d.id),
            "X-Manara-Timestamp": timestamp,
            "X-Manara-Signature": sign(sub.secret, timestamp, body),
        }
        try:
            response = self.client.post(sub.url, content=body, headers=headers)
        except httpx.HTTPError as err:
            return False, None, f"{type(err).__name__}: {err}"
        if 200 <= response.status_code < 300:
            return True, response.status_code, None
        return False, response.status_code, response.text[:300]

    # --- the background thread -------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="manara-bus", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.dispatch_once()
            except Exception:
                log.exception("event dispatch failed")
            self._stop.wait(self.interval)
