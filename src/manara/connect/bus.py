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

With a NATS server (the `bus_url` setting, `MANARA_BUS_URL=nats://host:4222`), the dispatcher also
publishes every outbox event, in outbox order, to NATS JetStream, webhooks working as before:

    stream   MANARA (created if missing: subjects manara.>, file storage, a 1-day duplicate window)
    subject  manara.<tenant>.<event type>            e.g. manara.default.pipeline.run
    header   Nats-Msg-Id: <hash of the event's audit-log entry>
    body     the webhook's JSON body, byte for byte

Publication is exactly once: an event is marked (`bus_published_at`) only after JetStream's PubAck,
so a crash before the mark publishes it again on the next pass, and JetStream drops that second
copy because its Nats-Msg-Id is already in the stream's duplicate window. The id is the audit
entry's hash: stable for the event, and never the same for two events or two workspaces. Events go
one at a time, each after the previous one's acknowledgement, so the stream holds them in order.
When NATS is unreachable (or refused by the egress allow-list: the servers are checked before each
connection, like webhook hosts), the events wait in the outbox; one warning line is logged and the
next try comes after 5 s, 10 s, 20 s… up to 5 min. nats-py is asyncio: it runs on an event loop of
the dispatcher's own, driven by the thread that runs the passes, and `stop()` closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import httpx
from sqlalchemy import func, select, update

from manara.config import bus_servers
from manara.errors import BadRequest, NotFound
from manara.govern import audit
from manara.govern.principal import Principal
from manara.meta.db import session_scope
from manara.meta.models import AuditEvent, Delivery, OutboxEvent, Role, Subscription, Tenant
from manara.workspace import Workspace

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.js import JetStreamContext

log = logging.getLogger("manara.bus")
MAX_ATTEMPTS = 8
BACKOFF = timedelta(seconds=30)
EVENT_TYPES = sorted(audit.PUBLISHED)

# NATS JetStream (the `bus_url` setting)
STREAM = "MANARA"
SUBJECT_PREFIX = "manara"
DUPLICATE_WINDOW = timedelta(days=1)  # a re-publication within it is dropped by JetStream
BUS_RETRY = timedelta(seconds=5)  # first wait after a failure, doubled up to BUS_RETRY_MAX
BUS_RETRY_MAX = timedelta(minutes=5)
BUS_TIMEOUT = 5  # seconds for a PubAck, a JetStream API answer, a liveness check
BUS_CONNECT_TIMEOUT = 2  # seconds for a TCP connection to one server
BUS_BATCH = 500
_UNSAFE_TOKEN = re.compile(r"[\s.*>]")


class SubscriptionNotFound(NotFound):
    type, title = "subscription-not-found", "Subscription not found"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def event_body(ev: OutboxEvent) -> bytes:
    """The JSON of an event, as a webhook receives it and as JetStream stores it."""
    return json.dumps(
        {"id": ev.id, "type": ev.type, "tenant": ev.tenant, "subject": ev.subject, "outcome": ev.outcome,
         "created_at": ev.created_at.isoformat() if ev.created_at else None, "data": json.loads(ev.data)},
        ensure_ascii=False,
    ).encode("utf-8")  # fmt: skip


def bus_subject(prefix: str, tenant: str | None, event_type: str) -> str:
    """`manara.<tenant>.<event type>`; characters that NATS reads as separators or wildcards become '_'."""
    tokens = [_UNSAFE_TOKEN.sub("_", tenant) if tenant else "_"]
    tokens += [_UNSAFE_TOKEN.sub("_", part) or "_" for part in event_type.split(".")]
    return ".".join([prefix, *tokens])


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


class _Message(NamedTuple):
    event_id: int
    subject: str
    body: bytes
    msg_id: str


class _BusDown(Exception):
    """NATS cannot be used now (unreachable, refused by egress, …); `reason` is one readable line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _describe(err: BaseException) -> str:
    text = str(err).strip()
    if not text and isinstance(err, TimeoutError):
        text = "no answer in time"
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class Dispatcher:
    """Fans outbox events out to webhook subscriptions and, with `bus_url`, publishes them to JetStream.

    `check_egress(url)` raises for a destination the workspace may not reach; it is asked about
    every webhook URL and every NATS server. `bus_stream` and `bus_subject_prefix` exist for tests
    (a stream of their own); a deployment keeps MANARA and manara.
    """

    def __init__(
        self,
        ws: Workspace,
        *,
        interval: float = 2.0,
        check_egress: Callable[[str], None] | None = None,
        timeout: float = 10.0,
        bus_url: str | None = None,
        bus_stream: str = STREAM,
        bus_subject_prefix: str = SUBJECT_PREFIX,
    ) -> None:
        self.ws = ws
        self.interval = interval
        self.check_egress = check_egress
        self.client = httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.bus_servers = bus_servers(bus_url)  # ValueError for an entry that is not a NATS URL
        self.bus_stream = bus_stream
        self.bus_subject_prefix = bus_subject_prefix
        self._aloop: asyncio.AbstractEventLoop | None = None  # for nats-py; lives as long as the bus
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._nats_error: BaseException | None = None  # the last error nats-py reported
        self._bus_failures = 0
        self._bus_retry_at: datetime | None = None

    def dispatch_once(self, now: datetime | None = None) -> dict[str, int]:
        """Fan new events out to subscriptions, publish them to NATS (with `bus_url`), then attempt
        every due delivery. The counts have `published` only when there is a bus."""
        now = now or datetime.now(UTC)
        fanned = self._fan_out(now)
        published = self._publish(now) if self.bus_servers else 0
        delivered, failed = self._deliver(now)
        counts = {"events": fanned, "delivered": delivered, "failed": failed}
        return counts | {"published": published} if self.bus_servers else counts

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
        body = event_body(ev)
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
        """Stop the thread and close the NATS connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():  # it closes the connection itself when its pass ends
                log.warning("event dispatcher still busy after %.0f s; it stops after this pass", timeout)
                return
            self._thread = None
        self._close_bus()

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.dispatch_once()
                except Exception:
                    log.exception("event dispatch failed")
                self._stop.wait(self.interval)
        finally:
            self._close_bus()

    # --- NATS JetStream --------------------------------------------------------------------------

    def _publish(self, now: datetime) -> int:
        """Publish waiting events in outbox order; mark each one once JetStream has acknowledged it."""
        if self._bus_retry_at is not None and now < self._bus_retry_at:
            return 0
        published = 0
        try:
            while published < BUS_BATCH * 10:  # leave time for webhooks in the same pass
                batch = self._unpublished()
                if not batch:
                    break
                acked, error = self._bus_run(self._publish_batch(batch))
                self._mark_published(acked, now)
                published += len(acked)
                if error is not None:
                    self._bus_failed(now, error)
                    return published
                if len(batch) < BUS_BATCH:
                    break
        except Exception as err:  # the database, most likely: the events wait, webhooks go on
            log.debug("event bus: publishing failed", exc_info=True)
            self._bus_failed(now, _describe(err))
            return published
        if published and self._bus_failures:
            log.info("event bus: publishing to NATS %s again", self._servers_shown())
        if published:
            self._bus_failures, self._bus_retry_at = 0, None
        return published

    def _unpublished(self) -> list[_Message]:
        with session_scope(self.ws.engine) as s:
            rows = s.execute(
                select(OutboxEvent, AuditEvent.hash)
                .outerjoin(AuditEvent, AuditEvent.seq == OutboxEvent.audit_seq)
                .where(OutboxEvent.bus_published_at.is_(None))
                .order_by(OutboxEvent.id).limit(BUS_BATCH)
            ).all()  # fmt: skip
            return [
                _Message(ev.id, bus_subject(self.bus_subject_prefix, ev.tenant, ev.type), event_body(ev),
                         digest or f"manara-outbox-{ev.id}-{ev.audit_seq}")
                for ev, digest in rows
            ]  # fmt: skip

    def _mark_published(self, ids: list[int], now: datetime) -> None:
        if ids:
            with session_scope(self.ws.engine) as s:
                s.execute(update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(bus_published_at=now))

    def _bus_failed(self, now: datetime, reason: str) -> None:
        self._bus_failures += 1
        delay = min(BUS_RETRY * 2 ** min(self._bus_failures - 1, 16), BUS_RETRY_MAX)
        self._bus_retry_at = now + delay
        try:
            with session_scope(self.ws.engine) as s:
                waiting = str(s.scalar(select(func.count()).where(OutboxEvent.bus_published_at.is_(None))))
        except Exception:
            waiting = "some"
        log.warning(
            "event bus: %s event(s) wait to be published to NATS %s: %s; next try in %.0f s",
            waiting, self._servers_shown(), reason, delay.total_seconds(),
        )  # fmt: skip

    def _servers_shown(self) -> str:
        from manara.govern.egress import redact

        return ",".join(redact(url) for url in self.bus_servers)

    def _bus_run(self, coro: Any) -> Any:
        """Run a coroutine on the dispatcher's own event loop, in the calling (dispatcher) thread."""
        if self._aloop is None or self._aloop.is_closed():
            self._aloop = asyncio.new_event_loop()
        return self._aloop.run_until_complete(coro)

    async def _publish_batch(self, batch: list[_Message]) -> tuple[list[int], str | None]:
        """Publish in order, each message after the previous one's PubAck: (acknowledged ids, error)."""
        acked: list[int] = []
        try:
            js = await self._jetstream()
            for m in batch:
                # a PubAck with duplicate=True (published before a crash) is as good as a new one
                await js.publish(m.subject, m.body, timeout=BUS_TIMEOUT, stream=self.bus_stream,
                                 headers={"Nats-Msg-Id": m.msg_id})  # fmt: skip
                acked.append(m.event_id)
        except _BusDown as down:
            await self._drop_connection()
            return acked, down.reason
        except Exception as err:
            await self._drop_connection()
            return acked, _describe(err)
        return acked, None

    async def _jetstream(self) -> JetStreamContext:
        """The JetStream context of a live connection: the current one, or a new one (egress checked)."""
        if self._nc is not None and self._js is not None and not self._nc.is_closed:
            try:
                await self._nc.flush(timeout=BUS_TIMEOUT)  # still alive? (a server restart, an idle drop)
                return self._js
            except Exception:
                pass
        await self._drop_connection()
        if self.check_egress is not None:
            for url in self.bus_servers:
                try:
                    self.check_egress(url)
                except Exception as err:
                    raise _BusDown(str(getattr(err, "detail", err))) from None  # audited by the check
        from nats.aio.client import Client
        from nats.errors import NoServersError

        nc = Client()
        self._nats_error = None
        try:
            # nats-py does not reconnect by itself: the dispatcher retries, with backoff and egress checks
            await nc.connect(servers=list(self.bus_servers), name="manara", error_cb=self._on_nats_error,
                             connect_timeout=BUS_CONNECT_TIMEOUT, allow_reconnect=False,
                             max_reconnect_attempts=1, reconnect_time_wait=0)  # fmt: skip
        except Exception as err:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), BUS_TIMEOUT)
            cause = self._nats_error if isinstance(err, NoServersError) and self._nats_error else err
            raise _BusDown(f"cannot connect ({_describe(cause)})") from None
        self._nc, self._js = nc, nc.jetstream(timeout=BUS_TIMEOUT)
        await self._ensure_stream(self._js)
        return self._js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import BadRequestError, NotFoundError, ServiceUnavailableError

        try:
            await js.stream_info(self.bus_stream)
            return
        except NotFoundError:
            pass
        except (ServiceUnavailableError, TimeoutError):
            raise _BusDown(
                "the NATS server does not answer JetStream requests (is it run with -js?)"
            ) from None
        config = StreamConfig(
            name=self.bus_stream, description="Manara events: dataset commits, pipeline runs, quarantines",
            subjects=[f"{self.bus_subject_prefix}.>"], storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW.total_seconds(),
        )  # fmt: skip
        try:
            await js.add_stream(config)
        except BadRequestError:  # another process may have created it in the meantime
            await js.stream_info(self.bus_stream)
            return
        log.info(
            "event bus: created the JetStream stream %s (%s.>)", self.bus_stream, self.bus_subject_prefix
        )

    async def _on_nats_error(self, err: Exception) -> None:
        self._nats_error = err
        log.debug("event bus: nats: %s", _describe(err))

    async def _drop_connection(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), BUS_TIMEOUT)

    def _close_bus(self) -> None:
        """Close the NATS connection and the event loop (from a thread where no loop runs)."""
        loop, self._aloop = self._aloop, None
        if loop is None or loop.is_closed():
            return
        try:
            loop.run_until_complete(self._drop_connection())
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        except Exception:
            log.debug("event bus: closing the NATS connection failed", exc_info=True)
        finally:
            loop.close()
