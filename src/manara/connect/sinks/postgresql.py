"""PostgreSQL sink: each committed group written to a table, exactly once.

One PostgreSQL transaction per group:

1. the rows are copied (ADBC, binary COPY) into a temporary staging table;
2. the target table is created like the staging table if it does not exist (with a primary key on
   `key` in upsert mode), and columns the dataset gained since are added (`ALTER TABLE … ADD COLUMN`,
   nullable: nothing stored changes);
3. the rows go from staging to the target: `INSERT` (append) or `INSERT … ON CONFLICT (key) DO UPDATE`
   (upsert: the row's latest version wins);
4. the state table (`manara_sink_state` by default) gets the group's sequence number for this sink.

The state row is read under `FOR UPDATE` first: a group already recorded there is skipped. Since the
rows and the state commit together, a group is in the table exactly once whatever the process or the
database does in between; Manara reads that state back (`delivered()`) before it catches the sink up.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from typing import Any, Literal

import adbc_driver_postgresql.dbapi as adbc_pg
import pyarrow as pa
from adbc_driver_manager import Error as AdbcError
from pydantic import Field, field_validator, model_validator
from sqlalchemy.engine import URL, make_url

from manara.connect.protocol import Connector, Context, Options, Sink, SinkError
from manara.connect.sources.sql import adbc_reason
from manara.errors import BadRequest

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
CONNECT_TIMEOUT_S = 10


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresSinkOptions(Options):
    url: str = Field(description="postgresql://user:${PASSWORD}@host:5432/db")
    table: str = Field(description="target table: name or schema.name (created when missing)")
    mode: Literal["append", "upsert"] = Field("append", description="upsert: insert or update by `key`")
    key: list[str] = Field(default_factory=list, description="upsert: the columns that identify a row")
    state_table: str = Field("manara_sink_state", description="where each sink's last group is recorded")
    add_columns: bool = Field(True, description="add columns the dataset gains (else the sink stops)")

    @field_validator("table", "state_table")
    @classmethod
    def _table(cls, v: str) -> str:
        parts = v.split(".")
        if len(parts) > 2 or not all(_IDENT.match(p) for p in parts):
            raise ValueError(f"'{v}' is not a table name (name or schema.name; letters, digits, _)")
        return v

    @model_validator(mode="after")
    def _upsert_key(self) -> PostgresSinkOptions:
        if self.mode == "upsert" and not self.key:
            raise ValueError("mode upsert needs `key`: the columns that identify a row")
        return self


def _split(name: str) -> tuple[str | None, str]:
    schema, _, table = name.rpartition(".")
    return schema or None, table


def _qualified(name: str) -> str:
    schema, table = _split(name)
    return f"{_quote(schema)}.{_quote(table)}" if schema else _quote(table)


class PostgresSink(Sink):
    def __init__(self, options: PostgresSinkOptions, context: Context) -> None:
        try:
            url: URL = make_url(options.url)
        except Exception:
            raise BadRequest(
                "postgresql sink: url is not a database URL (postgresql://user@host/db)"
            ) from None
        if url.get_backend_name() != "postgresql":
            raise BadRequest(f"postgresql sink: '{url.render_as_string()}' is not a postgresql:// URL")
        self.safe_url = url.render_as_string(hide_password=True)
        context.check_egress(self.safe_url)
        query = dict(url.query)
        query.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
        self.uri = url.set(drivername="postgresql", query=query).render_as_string(hide_password=False)
        self.password = url.password
        self.options, self.context = options, context
        self.sink_id = f"{context.pipeline}/{options.table}"
        self._conn: Any = None

    # --- connection and errors -------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except AdbcError as err:
            reason = adbc_reason(err)
            if self.password:
                reason = reason.replace(str(self.password), "***")
            self._drop()
            raise SinkError(f"postgresql sink: {doing} {self.safe_url}: {reason}") from None
        except BaseException:
            if self._conn is not None:  # nothing of the group stays half-written
                with contextlib.suppress(Exception):
                    self._conn.rollback()
            raise

    def _connection(self) -> Any:
        if self._conn is None:
            with self._errors("cannot connect to"):
                self._conn = adbc_pg.connect(self.uri, autocommit=False)
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.rollback()
            with contextlib.suppress(Exception):
                conn.close()

    def _state(self, cur: Any, lock: bool) -> int | None:
        state = _qualified(self.options.state_table)
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {state} (sink text PRIMARY KEY, seq bigint NOT NULL, "
            "delivered_at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute(
            f"SELECT seq FROM {state} WHERE sink = $1{' FOR UPDATE' if lock else ''}", (self.sink_id,)
        )
        found = cur.fetchone()
        return int(found[0]) if found else None

    # --- the sink --------------------------------------------------------------------------------

    def delivered(self) -> int | None:
        conn = self._connection()
        with self._errors("cannot read the sink state in"), contextlib.closing(conn.cursor()) as cur:
            seq = self._state(cur, lock=False)
            conn.commit()
        return seq

    def deliver(self, rows: pa.Table, seq: int) -> None:
        conn = self._connection()
        opts = self.options
        target = _qualified(opts.table)
        stage = f"manara_stage_{uuid.uuid4().hex[:12]}"
        with self._errors(f"cannot write {opts.table} in"), contextlib.closing(conn.cursor()) as cur:
            done = self._state(cur, lock=True)
            if done is not None and done >= seq:  # already in the table (a catch-up after a crash)
                conn.rollback()
                return
            cur.adbc_ingest(stage, rows, mode="create", temporary=True)
            staged = self._columns(cur, None, stage)
            schema, table = _split(opts.table)
            existing = self._columns(cur, schema, table)
            if not existing:
                cur.execute(f"CREATE TABLE {target} (LIKE pg_temp.{_quote(stage)})")
                if opts.mode == "upsert":
                    missing = [k for k in opts.key if k not in staged]
                    if missing:
                        raise SinkError(
                            f"postgresql sink: key column(s) {', '.join(missing)} not in the rows"
                        )
                    cur.execute(f"ALTER TABLE {target} ADD PRIMARY KEY ({', '.join(map(_quote, opts.key))})")
            else:
                new = [c for c in staged if c not in existing]
                if new and not opts.add_columns:
                    raise SinkError(
                        f"postgresql sink: {opts.table} lacks column(s) {', '.join(new)} and add_columns is off"
                    )
                for c in new:
                    cur.execute(f"ALTER TABLE {target} ADD COLUMN {_quote(c)} {staged[c]}")
            cols = ", ".join(_quote(c) for c in staged)
            insert = f"INSERT INTO {target} ({cols}) SELECT {cols} FROM pg_temp.{_quote(stage)}"
            if opts.mode == "upsert":
                updates = ", ".join(
                    f"{_quote(c)} = EXCLUDED.{_quote(c)}" for c in staged if c not in opts.key
                )
                conflict = ", ".join(map(_quote, opts.key))
                insert += f" ON CONFLICT ({conflict}) DO " + (
                    f"UPDATE SET {updates}" if updates else "NOTHING"
                )
            cur.execute(insert)
            cur.execute(f"DROP TABLE pg_temp.{_quote(stage)}")
            cur.execute(
                f"INSERT INTO {_qualified(opts.state_table)} (sink, seq, delivered_at) VALUES ($1, $2, now()) "
                "ON CONFLICT (sink) DO UPDATE SET seq = EXCLUDED.seq, delivered_at = EXCLUDED.delivered_at",
                (self.sink_id, seq),
            )
            conn.commit()

    def _columns(self, cur: Any, schema: str | None, table: str) -> dict[str, str]:
        """Column name → SQL type of a table (empty when it does not exist)."""
        cur.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = $1 AND a.attnum > 0 AND NOT a.attisdropped AND "
            + ("n.nspname = $2" if schema else "pg_table_is_visible(c.oid)")
            + " ORDER BY a.attnum",
            (table, schema) if schema else (table,),
        )
        return {name: sql_type for name, sql_type in cur.fetchall()}

    def close(self) -> None:
        self._drop()


CONNECTOR = Connector(
    name="postgresql",
    kind="sink",
    summary="write each committed group to a PostgreSQL table (append or upsert), exactly once",
    options=PostgresSinkOptions,
    factory=PostgresSink,
)
