"""Streaming sources (MQTT, OPC UA): a listener spools what arrives on disk; a run reads the spool.

A listening source receives messages on a thread of its own (the protocol client's). Each message
is written to the pipeline's **spool**, a small SQLite file under `$MANARA_HOME/spool/`, and made
durable (fsync) *before* the source acknowledges it to the outside system (an MQTT PUBACK). The
pipeline then reads the spool in order: a chunk's cursor is the spool sequence number of its last
message, committed with the rows in the same Iceberg commit like every other source's cursor. So:

- a message acknowledged to the broker is on disk: a crash, a kill -9 or a full disk on the lake's
  side loses nothing (store-and-forward);
- a message is loaded into the lake exactly once from the spool (the cursor decides);
- a message the broker re-sends because its acknowledgement was lost in a crash is recognised by
  the protocol's own identity (its packet id, with the duplicate flag) among the spooled messages
  that were not yet acknowledged, and dropped.

A run listens until `max_seconds` have passed, or nothing arrived for `idle_seconds`, or the
pipeline is asked to stop (`Context.stop`; `manara up` does it on shutdown). Between runs the
outside system keeps what arrives (an MQTT persistent session) and hands it over at the next one.
While listening the source yields an empty *tick* chunk every `tick_seconds`, so that the runner can
commit by time (`commit_seconds`) on a quiet stream.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
from pydantic import Field

from manara.connect.protocol import Chunk, Context, Cursor, Options, rejects_table
from manara.errors import BadRequest

SPOOL_SCHEMA = pa.schema(
    [
        pa.field("seq", pa.int64()),
        pa.field("key", pa.string()),  # the MQTT topic, the OPC UA node id
        pa.field("payload", pa.binary()),
        pa.field("received_at", pa.int64()),  # µs since the epoch, when the message reached Manara
        pa.field("meta", pa.string()),  # JSON, source-specific (OPC UA timestamps and status)
    ]
)
FORGET_UNACKED_AFTER_S = (
    24 * 3600
)  # an unacknowledged spooled message older than this: no longer a dup candidate


class StreamOptions(Options):
    max_seconds: float | None = Field(
        None,
        gt=0,
        description="stop a run after this many seconds (null: only idle_seconds or a stop ends it)",
    )
    idle_seconds: float | None = Field(
        5.0, gt=0, description="stop a run when nothing arrived for this long (null: listen until stopped)"
    )
    batch_rows: int = Field(20_000, ge=1, le=1_000_000, description="most messages in one chunk")
    tick_seconds: float = Field(
        0.5, gt=0, le=60, description="longest wait before the runner hears from the source"
    )


class Spool:
    """The on-disk, ordered, durable buffer of one streaming pipeline (SQLite, WAL, synchronous=FULL)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._con = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=FULL")
        self._con.execute(
            "CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, "
            "payload BLOB, received_at INTEGER NOT NULL, meta TEXT, ident TEXT, acked INTEGER NOT NULL DEFAULT 1)"
        )
        self._con.execute("CREATE INDEX IF NOT EXISTS spool_unacked ON spool (ident) WHERE acked = 0")
        self.arrived = threading.Condition()
        self.last_arrival = 0.0  # time.monotonic() of the last append

    def append(
        self, rows: Sequence[tuple[str, bytes | None, int, str | None, str | None]], *, acked: bool
    ) -> int:
        """Store (key, payload, received_at µs, meta, ident) rows durably, in one transaction; returns
        the sequence number of the last one (0 when `rows` is empty).

        `ident` identifies a message for the duplicate check (None: none possible); `acked=False`
        marks the rows with an ident as not yet acknowledged: their acknowledgement is sent after
        this call returns (see `mark_acked`), or never if the connection is gone."""
        if not rows:
            return 0
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                self._con.executemany(
                    "INSERT INTO spool (key, payload, received_at, meta, ident, acked) VALUES (?, ?, ?, ?, ?, ?)",
                    [(*r, 1 if acked or r[4] is None else 0) for r in rows],
                )
                last = int(self._con.execute("SELECT last_insert_rowid()").fetchone()[0])
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
        with self.arrived:
            self.last_arrival = time.monotonic()
            self.arrived.notify_all()
        return last

    def mark_acked(self, upto: int = 0, idents: Sequence[str] = ()) -> None:
        """Acknowledgements were sent for every message up to sequence number `upto`, and for the
        messages `idents`: they can no longer come back as duplicates."""
        with self._lock:
            if upto:
                self._con.execute("UPDATE spool SET acked = 1 WHERE acked = 0 AND seq <= ?", (upto,))
            if idents:
                self._con.executemany("UPDATE spool SET acked = 1 WHERE acked = 0 AND ident = ?",
                                      [(i,) for i in idents])  # fmt: skip

    def unacked(self) -> set[str]:
        """Idents of spooled messages whose acknowledgement may not have reached the other side."""
        with self._lock:
            return {
                r[0]
                for r in self._con.execute("SELECT ident FROM spool WHERE acked = 0 AND ident IS NOT NULL")
            }

    def after(self, seq: int, limit: int) -> pa.Table:
        """Up to `limit` messages after sequence number `seq`, in order."""
        with self._lock:
            rows = self._con.execute(
                "SELECT seq, key, payload, received_at, meta FROM spool WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        cols = list(zip(*rows, strict=True)) if rows else [()] * 5
        return pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(cols, SPOOL_SCHEMA, strict=True)],
                                    schema=SPOOL_SCHEMA)  # fmt: skip

    def forget(self, upto: int) -> int:
        """Delete messages the lake has committed (seq ≤ `upto`); keeps recent unacknowledged ones as
        duplicate candidates. Returns how many were deleted."""
        old = int((time.time() - FORGET_UNACKED_AFTER_S) * 1e6)
        with self._lock:
            cur = self._con.execute(
                "DELETE FROM spool WHERE seq <= ? AND (acked = 1 OR received_at < ?)", (upto, old)
            )
            return cur.rowcount

    def pending(self, after: int) -> int:
        with self._lock:
            return int(self._con.execute("SELECT count(*) FROM spool WHERE seq > ?", (after,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._con.close()


def spool_path(context: Context, name: str) -> Path:
    if context.state_dir is None:
        raise BadRequest("a streaming source needs a state folder for its spool (run it as a pipeline)")
    return Path(context.state_dir) / f"{name}.spool.db"


class SpooledSource(ABC):
    """Base of listening sources: subclasses start/stop their listener and decode spooled messages."""

    options: StreamOptions
    context: Context
    spool: Spool

    @abstractmethod
    def start_listening(self) -> None:
        """Connect and hand what arrives to `self.spool`; raise one readable error if it cannot."""

    @abstractmethod
    def stop_listening(self) -> None:
        """Disconnect; also called after a failed `start_listening`."""

    @abstractmethod
    def decode(self, rows: pa.Table) -> tuple[pa.RecordBatch | None, pa.Table | None]:
        """Spooled messages (SPOOL_SCHEMA) → (rows for the dataset, rejects of REJECT_SCHEMA)."""

    def _chunk(self, rows: pa.Table) -> Chunk:
        first, last = rows.column("seq")[0].as_py(), rows.column("seq")[-1].as_py()
        batch, rejects = self.decode(rows)
        return Chunk(batch, {"seq": last}, f"spool messages {first}–{last}", rejects,
                     bytes_read=rows.column("payload").nbytes)  # fmt: skip

    def read(self, cursor: Cursor | None) -> Iterator[Chunk]:
        seq = int((cursor or {}).get("seq", 0))
        self.spool.forget(seq)
        opts, stop = self.options, self.context.stop
        started = time.monotonic()
        self.spool.last_arrival = started
        try:
            self.start_listening()  # a listener that fails to start is still stopped (cleaned up)
            while True:
                rows = self.spool.after(seq, opts.batch_rows)
                if rows.num_rows:
                    chunk = self._chunk(rows)
                    seq = chunk.cursor["seq"]
                    yield chunk
                    continue
                now = time.monotonic()
                if stop is not None and stop.is_set():
                    break
                if opts.max_seconds is not None and now - started >= opts.max_seconds:
                    break
                if opts.idle_seconds is not None and now - self.spool.last_arrival >= opts.idle_seconds:
                    break
                with self.spool.arrived:
                    self.spool.arrived.wait(opts.tick_seconds)
                yield Chunk(None, {"seq": seq}, "listening")  # a tick: lets the runner commit by time
        finally:
            self.stop_listening()
        while (rows := self.spool.after(seq, opts.batch_rows)).num_rows:  # what arrived before the stop
            chunk = self._chunk(rows)
            seq = chunk.cursor["seq"]
            yield chunk


# --- JSON payloads → Arrow ----------------------------------------------------------------------


def json_objects(
    payloads: pa.Array, positions: Sequence[str], *, types: dict[str, pa.DataType], numbers: str
) -> tuple[pa.Table, pa.Array, pa.Table | None]:
    """Parse JSON-object payloads in one vectorised pass (pyarrow's JSON reader).

    Returns (parsed rows, indices of the payloads they came from, rejects). A payload that is not a
    JSON object (bad JSON, an array, a number, not UTF-8) is rejected with the parser's reason; the
    others still load. `numbers="double"` reads JSON numbers as doubles (a sensor that sends 21 then
    21.5 must not pause its pipeline), except integers a double cannot hold exactly; `types` fixes
    named fields' types.
    """
    values = payloads.to_pylist()
    good = list(range(len(values)))
    rejects: list[tuple[str, str, str | None]] = []
    table = _parse_json_lines(values, types)
    if table is None:  # at least one is bad: find which (rare path), parse the others
        good = []
        for i, v in enumerate(values):
            reason = _json_object_error(v)
            if reason is None:
                good.append(i)
            else:
                rejects.append((reason, positions[i], raw_text(v)))
        table = _parse_json_lines([values[i] for i in good], types) if good else pa.table({})
        if table is None:
            raise BadRequest("JSON payloads could not be read together (mixed types for one field?)")
    if numbers == "double":
        cols = [
            _as_double(c) if pa.types.is_integer(c.type) and n not in types else c
            for n, c in zip(table.column_names, table.columns, strict=True)
        ]
        table = pa.Table.from_arrays(cols, names=table.column_names)
    return table, pa.array(good, pa.int64()), rejects_table(rejects) if rejects else None


def _as_double(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Integers as doubles when every one is exact as a double (|v| ≤ 2^53); otherwise unchanged, so an
    identifier or a nanosecond timestamp is never rounded (name it in `types` to fix its type)."""
    try:
        return pc.cast(values, pa.float64(), safe=True)
    except pa.ArrowInvalid:
        return values


def _parse_json_lines(values: Sequence[bytes | None], types: dict[str, pa.DataType]) -> pa.Table | None:
    if not values:
        return pa.table({})
    if any(v is None for v in values):
        return None
    # a newline outside a string is whitespace in JSON, and one inside a string is always escaped:
    # flattening each payload to one line keeps every valid document valid
    body = b"\n".join(v.replace(b"\n", b" ").replace(b"\r", b" ") for v in values if v is not None)
    try:
        opts = pajson.ParseOptions(explicit_schema=pa.schema(types) if types else None,
                                   unexpected_field_behavior="infer")  # fmt: skip
        table = pajson.read_json(pa.BufferReader(body), parse_options=opts,
                                 read_options=pajson.ReadOptions(block_size=max(1 << 20, len(body) + 1)))  # fmt: skip
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == len(values) else None


def _json_object_error(v: bytes | None) -> str | None:
    if v is None:
        return "empty payload"
    try:
        doc = json.loads(v)
    except UnicodeDecodeError:
        return "payload is not UTF-8 text"
    except json.JSONDecodeError as e:
        return f"payload is not JSON: {e.msg} at character {e.pos}"
    if not isinstance(doc, dict):
        return f"payload is JSON but not an object (a {type(doc).__name__})"
    return None


def raw_text(v: bytes | None) -> str | None:
    if v is None:
        return None
    try:
        return v.decode("utf-8")
    except UnicodeDecodeError:
        import base64

        return "base64:" + base64.b64encode(v).decode("ascii")


def arrow_type(name: str) -> pa.DataType:
    """A field type named in a streaming source's `types` option."""
    table: dict[str, Any] = {
        "string": pa.string(), "long": pa.int64(), "int": pa.int32(), "double": pa.float64(),
        "float": pa.float32(), "boolean": pa.bool_(), "timestamp": pa.timestamp("us", tz="UTC"),
        "date": pa.date32(),
    }  # fmt: skip
    try:
        return table[name.lower()]
    except KeyError:
        raise BadRequest(f"unknown type '{name}' (use one of: {', '.join(table)})") from None
