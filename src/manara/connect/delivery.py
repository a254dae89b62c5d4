"""Sinks: the groups a pipeline committed to the lake, delivered in order to each of its sinks.

The lake is the record. A group of rows goes to a pipeline's sinks (webhook, PostgreSQL table,
MQTT topics) only *after* it is committed to the dataset, with the group's sequence number — the
one the Iceberg commit carries (`manara.pipeline.seq` in its snapshot summary). Each sink's progress
(the last group it received) is kept in the metadata database, written with an audit event
(`dataset.export`) for every delivered group: rows leaving the lake are a data access.

- **Catch-up.** A sink that failed (its host down, after its own retries), or a process killed between
  a lake commit and the delivery, leaves the sink behind the dataset. The next run first reads the
  missing groups back from the lake — the data files each group's snapshot added, in that snapshot's
  own schema — and delivers them, in order, before it reads the source again.
- **A failing sink never holds up the lake.** It is left behind for the rest of the run, which goes
  on loading the dataset, and the run ends `failed` with the sink's reason: the scheduler's retries
  then catch the sink up.
- **Exactly-once where the sink allows it.** A sink that can store its progress atomically with the
  rows (PostgreSQL: a state row in the same transaction) says so through `Sink.delivered()`; its own
  record wins over Manara's. Webhooks and MQTT are at-least-once, with an idempotency key
  `<tenant>/<pipeline>:<seq>` a receiver can use to drop a repeated delivery.
- A new sink starts at the dataset's current group (it receives what is committed from now on),
  unless its spec says `from_start: true`: then the whole history still in the lake's snapshots.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.manifest import ManifestEntryStatus
from pyiceberg.table import FileScanTask, Table
from sqlalchemy import select

from manara.connect.protocol import Context, Sink, SinkError
from manara.connect.registry import get_connector
from manara.errors import ManaraError
from manara.govern import audit
from manara.govern.principal import Principal
from manara.meta.db import session_scope
from manara.meta.models import PipelineSink
from manara.workspace import Workspace

if TYPE_CHECKING:
    from manara.connect.pipelines import SinkSpec

log = logging.getLogger(__name__)


def committed_groups(table: Table, pipeline: str, after: int, upto: int) -> Iterator[tuple[int, pa.Table]]:
    """The rows of each group `after < seq <= upto` this pipeline committed, read back from the data
    files its snapshot added, in order. A group that added no rows (only quarantined records or a
    cursor move) has no snapshot and is skipped."""
    snapshots = {}
    for snap in table.snapshots():
        summary = snap.summary
        if summary is None or summary.get("manara.pipeline") != pipeline:
            continue
        seq = int(summary.get("manara.pipeline.seq") or 0)
        if after < seq <= upto:
            snapshots[seq] = snap
    schemas = table.schemas()  # id → schema
    for seq in sorted(snapshots):
        snap = snapshots[seq]
        files = [
            entry.data_file
            for manifest in snap.manifests(table.io)
            if manifest.added_snapshot_id == snap.snapshot_id
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
            if entry.status == ManifestEntryStatus.ADDED and entry.snapshot_id == snap.snapshot_id
        ]
        schema = schemas.get(snap.schema_id or 0, table.schema())
        scan = ArrowScan(table.metadata, table.io, schema, AlwaysTrue())
        batches = list(scan.to_record_batches([FileScanTask(f) for f in files]))  # a list: read twice
        yield seq, pa.Table.from_batches(batches) if batches else schema.as_arrow().empty_table()


@dataclass
class _Target:
    name: str
    type: str
    sink: Sink
    delivered: int
    error: str | None = None


class Deliveries:
    """A run's sinks: built from the spec, their progress loaded, delivered to and recorded."""

    def __init__(
        self,
        ws: Workspace,
        principal: Principal,
        pipeline: str,
        pipeline_id: int,
        dataset: str,
        specs: list[SinkSpec],
        context: Context,
        committed_seq: int,
    ) -> None:
        from manara.connect.pipelines import expand_env

        self.ws, self.principal, self.pipeline, self.pipeline_id = ws, principal, pipeline, pipeline_id
        self.dataset = dataset
        self.targets: list[_Target] = []
        try:
            with session_scope(ws.engine) as s:
                known = {
                    r.name: r
                    for r in s.scalars(select(PipelineSink).where(PipelineSink.pipeline_id == pipeline_id))
                }
                for spec in specs:
                    connector = get_connector(spec.type, "sink")
                    sink = connector.create(expand_env(spec.options), context)
                    assert isinstance(sink, Sink)
                    row = known.get(spec.sink_name)
                    if row is None:
                        start = 0 if spec.from_start else committed_seq
                        row = PipelineSink(pipeline_id=pipeline_id, name=spec.sink_name, delivered_seq=start)
                        s.add(row)
                    own = sink.delivered()
                    done = max(row.delivered_seq, own if own is not None else -1)
                    self.targets.append(_Target(spec.sink_name, spec.type, sink, done))
        except BaseException:
            self.close()
            raise

    def catch_up(self, table: Table | None, upto: int) -> None:
        """Deliver the groups up to `upto` that a sink has not received yet, read back from the lake."""
        behind = [t for t in self.targets if t.error is None and t.delivered < upto]
        if table is None or not behind:
            return
        for seq, rows in committed_groups(table, self.pipeline, min(t.delivered for t in behind), upto):
            self.deliver(rows, seq, catching_up=True)
        for t in behind:  # groups without rows have nothing to send: the sink is now level
            if t.error is None and t.delivered < upto:
                self._record([t], upto, 0)

    def deliver(self, rows: pa.Table | None, seq: int, *, catching_up: bool = False) -> None:
        """Hand one committed group to every sink that is level with it; a failing one is left behind."""
        due = [t for t in self.targets if t.error is None and t.delivered < seq]
        if not due:
            return
        sent = []
        n = rows.num_rows if rows is not None else 0
        for t in due:
            if n:
                try:
                    t.sink.deliver(rows, seq)  # type: ignore[arg-type]
                except Exception as err:  # a sink's bug must not lose the lake's progress either
                    why = err.detail if isinstance(err, ManaraError) else f"{type(err).__name__}: {err}"
                    t.error = f"sink '{t.name}' ({t.type}) stopped at group {seq}: {why}"
                if t.error is not None:
                    log.info("%s", t.error)  # the run ends with it; not a second line
                    self._record_error(t)
                    continue
            sent.append(t)
        if sent:
            self._record(sent, seq, n, catching_up=catching_up)

    def _record(self, targets: list[_Target], seq: int, rows: int, *, catching_up: bool = False) -> None:
        now = datetime.now(UTC)
        with session_scope(self.ws.engine) as s:
            for t in targets:
                row = self._row(s, t.name)
                row.delivered_seq, row.delivered_at, row.error = seq, now, None
                row.rows_delivered += rows
                t.delivered = seq
                if rows:
                    audit.record(
                        s.connection(),
                        audit.EventFields(self.principal.actor, "dataset.export", tenant=self.principal.tenant,
                                          target=self.dataset,
                                          detail={"pipeline": self.pipeline, "sink": t.name, "type": t.type,
                                                  "seq": seq, "rows": rows, "catch_up": catching_up},
                                          request_id=audit.request_id_var.get()),
                    )  # fmt: skip

    def _record_error(self, t: _Target) -> None:
        with session_scope(self.ws.engine) as s:
            row = self._row(s, t.name)
            row.error, row.failed_at = t.error, datetime.now(UTC)

    def _row(self, s: Any, name: str) -> PipelineSink:
        row = s.scalar(
            select(PipelineSink).where(
                PipelineSink.pipeline_id == self.pipeline_id, PipelineSink.name == name
            )
        )
        assert row is not None
        return row

    def failures(self) -> list[str]:
        return [t.error for t in self.targets if t.error is not None]

    def raise_failures(self, committed_seq: int) -> None:
        errors = self.failures()
        if errors:
            raise SinkError(
                "; ".join(errors) + f". The dataset has every group up to {committed_seq}; the next run "
                "delivers what the sink missed, from the lake"
            )

    def close(self) -> None:
        for t in self.targets:
            try:
                t.sink.close()
            except Exception:  # closing must not hide the run's own outcome
                log.exception("closing sink %s", t.name)


def sink_status(ws: Workspace, pipeline_id: int, committed_seq: int) -> list[dict[str, Any]]:
    """Each sink's progress: the last group delivered, how far behind the dataset, its last error."""
    with session_scope(ws.engine) as s:
        rows = s.scalars(
            select(PipelineSink).where(PipelineSink.pipeline_id == pipeline_id).order_by(PipelineSink.name)
        ).all()
        return [
            {"name": r.name, "delivered_seq": r.delivered_seq, "behind": max(committed_seq - r.delivered_seq, 0),
             "rows_delivered": r.rows_delivered, "delivered_at": r.delivered_at, "error": r.error,
             "failed_at": r.failed_at}
            for r in rows
        ]  # fmt: skip


def sink_key(context: Context, seq: int) -> str:
    """The idempotency key of a delivered group: `<tenant>/<pipeline>:<seq>`."""
    return f"{context.pipeline}:{seq}"


def json_parts(rows: pa.Table, context: Context, seq: int, batch_rows: int) -> list[str]:
    """A group as JSON documents of at most `batch_rows` rows each:
    `{"pipeline": "<tenant>/<pipeline>", "seq": n, "part": i, "parts": k, "rows": [...]}`."""
    texts = json_rows(rows)
    parts = max(1, -(-len(texts) // batch_rows))
    head = json.dumps(context.pipeline)
    return [
        f'{{"pipeline": {head}, "seq": {seq}, "part": {p + 1}, "parts": {parts}, '
        f'"rows": [{",".join(texts[p * batch_rows : (p + 1) * batch_rows])}]}}'
        for p in range(parts)
    ]


def json_rows(rows: pa.Table) -> list[str]:
    """Each row as a JSON object (text), encoded by DuckDB in one vectorised pass: timestamps in
    ISO 8601 (UTC with `Z` when the column has a time zone), binary as base64, nested types as JSON."""
    from manara.lake import duck

    con = duck.connect(threads=1)
    try:
        con.register("rows_in", _json_ready(rows))
        return [r[0] for r in con.execute("SELECT to_json(t)::VARCHAR FROM rows_in t").fetchall()]
    finally:
        con.close()


def _json_ready(rows: pa.Table) -> pa.Table:
    cols = []
    for col in rows.columns:
        t = col.type
        if pa.types.is_timestamp(t):  # %S carries the fraction at the column's precision
            cols.append(pc.strftime(col, format="%Y-%m-%dT%H:%M:%S" + ("Z" if t.tz else "")))
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
            cols.append(_base64(col))  # rare in datasets: no vectorised base64 in Arrow
        else:
            cols.append(col)
    return pa.table(cols, names=rows.column_names)


def _base64(col: pa.ChunkedArray) -> pa.Array:
    return pa.array([None if v is None else base64.b64encode(v).decode("ascii") for v in col.to_pylist()])
