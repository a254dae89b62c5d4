"""Append-only, hash-chained audit log.

Each event's hash covers its fields and the previous event's hash, so changing, removing or
reordering any event breaks every hash after it. Writers first bump the single head row, which
serialises them on SQLite and PostgreSQL alike, and an event is written in the same transaction
as the change it records (for Iceberg commits too: see `iceberg_commit_audit`).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, event, insert, select, update
from sqlalchemy.orm import Session

from manara.meta.models import AuditEvent, AuditHead, OutboxEvent

GENESIS = "0" * 64
# audited actions that are also published on the event bus (in the same transaction: an outbox row)
PUBLISHED = {
    "dataset.ingest": "ok",
    "dataset.pipeline_commit": "ok",
    "dataset.quarantine": "ok",
    "pipeline.run": None,
}

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("manara_request_id", default=None)


@dataclass
class EventFields:
    actor: str
    action: str
    outcome: str = "ok"
    tenant: str | None = None
    target: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None


def _canonical_ts(ts: datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


HASHED_FIELDS = (
    "seq",
    "ts",
    "tenant",
    "actor",
    "action",
    "target",
    "outcome",
    "request_id",
    "detail",
    "prev_hash",
)


def event_hash(row: Mapping[str, Any] | RowMapping) -> str:
    """SHA-256 over the canonical JSON of an event's stored fields (`ts` in UTC, microseconds)."""
    values = [_canonical_ts(row[k]) if k == "ts" else row[k] for k in HASHED_FIELDS]
    payload = json.dumps(values, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def record(conn: Connection, ev: EventFields) -> int:
    """Append one event inside the caller's transaction; returns its sequence number."""
    conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1))
    seq, prev = conn.execute(select(AuditHead.seq, AuditHead.last_hash).where(AuditHead.id == 1)).one()
    ts = datetime.now(UTC)
    detail = json.dumps(ev.detail, ensure_ascii=False, sort_keys=True, default=str)
    request_id = ev.request_id or request_id_var.get()
    row: dict[str, Any] = {
        "seq": seq,
        "ts": ts,
        "tenant": ev.tenant,
        "actor": ev.actor,
        "action": ev.action,
        "target": ev.target[:512] if ev.target else ev.target,
        "outcome": ev.outcome,
        "request_id": request_id,
        "detail": detail,
        "prev_hash": prev,
    }
    digest = event_hash(row)
    conn.execute(insert(AuditEvent).values(**row, hash=digest))
    conn.execute(update(AuditHead).where(AuditHead.id == 1).values(last_hash=digest))
    if ev.action in PUBLISHED and PUBLISHED[ev.action] in (None, ev.outcome):
        conn.execute(
            insert(OutboxEvent).values(tenant=ev.tenant, type=ev.action, subject=row["target"], outcome=ev.outcome,
                                       data=detail, audit_seq=seq, created_at=ts)
        )  # fmt: skip
    return int(seq)


def write(engine: Engine, ev: EventFields) -> int:
    """Append one event in a transaction of its own (for reads and for failures)."""
    with engine.begin() as conn:
        return record(conn, ev)


# --- audit events committed atomically with Iceberg commits -----------------------------------

_pending: contextvars.ContextVar[tuple[Engine, EventFields] | None] = contextvars.ContextVar(
    "manara_pending_iceberg_audit", default=None
)
_hook_installed = False


def _before_commit(session: Session) -> None:
    pending = _pending.get()
    if pending is None or session.bind is not pending[0]:
        return
    _pending.set(None)
    record(session.connection(), pending[1])


@contextmanager
def iceberg_commit_audit(catalog_engine: Engine, ev: EventFields) -> Iterator[None]:
    """Write `ev` in the same database transaction as the next Iceberg catalog commit.

    pyiceberg's SQL catalog commits a table by updating one row in its own session; this hook
    adds the audit event to that session before it commits, so the table change and its audit
    event land together or not at all.
    """
    global _hook_installed
    if not _hook_installed:
        event.listen(Session, "before_commit", _before_commit)
        _hook_installed = True
    token = _pending.set((catalog_engine, ev))
    try:
        yield
    finally:
        _pending.reset(token)


# --- verification and queries -------------------------------------------------------------------


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str | None = None


def verify(engine: Engine, batch: int = 5000) -> VerifyResult:
    """Recompute the whole chain; name the first event that does not fit."""
    prev_hash = GENESIS
    expected_seq = 1
    checked = 0
    with engine.connect() as conn:
        last_seq = 0
        while True:
            rows = (
                conn.execute(
                    select(AuditEvent.__table__)
                    .where(AuditEvent.seq > last_seq)
                    .order_by(AuditEvent.seq)
                    .limit(batch)
                )
                .mappings()
                .all()
            )
            if not rows:
                break
            for ev in rows:
                seq = ev["seq"]
                if seq != expected_seq:
                    return VerifyResult(
                        False, checked, expected_seq, f"event {expected_seq} is missing (next is {seq})"
                    )
                if ev["prev_hash"] != prev_hash:
                    return VerifyResult(False, checked, seq, "previous-hash link does not match")
                digest = event_hash(ev)
                if digest != ev["hash"]:
                    return VerifyResult(False, checked, seq, "content does not match its hash (altered)")
                prev_hash = digest
                expected_seq += 1
                checked += 1
                last_seq = seq
        head_seq, head_hash = conn.execute(
            select(AuditHead.seq, AuditHead.last_hash).where(AuditHead.id == 1)
        ).one()
        if head_seq != checked or head_hash != prev_hash:
            return VerifyResult(
                False, checked, checked + 1, f"chain head says {head_seq} events but {checked} are present"
            )
    return VerifyResult(True, checked)


def query(
    engine: Engine,
    *,
    tenant: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_seq: int | None = None,
) -> list[dict[str, Any]]:
    """Newest first. `before_seq` pages backwards through the log."""
    stmt = select(AuditEvent.__table__).order_by(AuditEvent.seq.desc()).limit(max(1, min(limit, 10_000)))
    t = AuditEvent
    for column, value in ((t.tenant, tenant), (t.actor, actor), (t.action, action), (t.outcome, outcome)):
        if value is not None:
            stmt = stmt.where(column == value)
    if target is not None:
        stmt = stmt.where(t.target.startswith(target, autoescape=True))
    if since is not None:
        stmt = stmt.where(t.ts >= since)
    if until is not None:
        stmt = stmt.where(t.ts < until)
    if before_seq is not None:
        stmt = stmt.where(t.seq < before_seq)
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    out = []
    for r in rows:
        item = dict(r)
        item["ts"] = _canonical_ts(item["ts"])
        item["detail"] = json.loads(item["detail"] or "{}")
        out.append(item)
    return out
