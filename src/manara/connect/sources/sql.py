"""SQL database source: a table, a view or one SELECT of any database SQLAlchemy reaches.

    source:
      type: sql
      options:
        url: postgresql+psycopg://reader:…@db.example/crm
        table: public.orders            # or query: "SELECT … FROM …"
        mode: incremental
        cursor_column: updated_at
        primary_key: [id]

**Keyset pagination.** Rows are read in pages of `batch_rows` in the order of a *key*:
`primary_key` in full mode, `(cursor_column, *primary_key)` in incremental mode. Each page is one
bounded query, `… WHERE (key) > (:last) ORDER BY key LIMIT batch_rows`, so memory stays bounded
whatever the table's size, no transaction stays open while the pipeline commits, and the source's
cursor after a chunk is simply the key of its last row: `{"key": [...], "last": [...], "types":
[...]}` (values JSON-serialisable: datetimes as ISO strings, decimals as strings, with their type
in `types` so that they are bound back as the same type). A run killed after any commit resumes
exactly after the committed row: nothing skipped, nothing read twice. Each page is an index range
scan when the key has an index (the primary key; for incremental mode an index on
`(cursor_column, primary_key)`): without one, every page scans the table.

**Two ways to read a page** (`engine`). `sqlalchemy` fetches Python rows and converts them column by
column into Arrow: any database, but the conversion is the cost. `adbc` (PostgreSQL only; `auto`
picks it there) runs the same page query through the ADBC PostgreSQL driver (libpq in its wheel),
which streams the result as binary COPY straight into Arrow; the columns are then cast to the same
schema. The key values are written into the query as PostgreSQL literals (faster than `$1`
parameters: the driver only streams COPY for an unparameterised query). The ADBC connection sets
`default_transaction_read_only = on` before its first query; it is opened in a thread while the
table is reflected, with the driver's built-in type table (`type_resolver_mode=builtin`: 6 ms to
connect, against 30 ms to read the server's type catalogue), and the reflection asks for the
columns and the primary key only. The Arrow path is taken only when every
column arrives as a type that casts to exactly the value the Python path gives (integers, float8,
bool, text/varchar/char, numeric, timestamp(tz), date, time, bytea); a table with a json, uuid,
array, interval or real column is read the Python way. A decimal travels as its text
(`amount::text`), parsed by Arrow into the column's decimal exactly: PostgreSQL's text output and
Arrow's parse cost less than the driver's own numeric conversion or a scaled integer
(`(amount * 100)::bigint`; see `_adbc_select`). A value that does not fit its column (a NaN, or more
decimals than the column has) fails the cast: the rows read whole before it are yielded, and a page
of at most SQLALCHEMY_BATCH_ROWS rows is read again the Python way from there, so its misfits go to
the quarantine as before.

**Streamed pages.** On the Arrow path a page is a query of `batch_rows` rows (500,000 by default)
whose result is yielded batch by batch as the driver decodes it (ADBC_BATCH_BYTES, about 50,000
rows of a 6-column table), so Parquet encoding starts after the first 4 MB instead of after the
first page, and memory is bounded by the batches, not by the page. A batch is yielded once the next
one has come (the page's last one once the page is over, to know whether it was the last page),
and never ends inside a group of rows sharing the key (a cursor column alone as key: the trailing
group waits for the next batch; a full page's trailing group is read whole, as `_page` does), so
every batch's last key is a cursor to resume from. Measured end to end into the lake
(bench/pg_to_lake.py, 1M rows, 2 cores; docs/benchmarks.md): whole 200,000-row pages 1.37M rows/s;
streamed in 4 MB batches with 500,000-row pages, per-column dictionaries (lake/datafiles.py) and
decimals as text about 1.6M-1.8M on a quiet machine. Earlier figures, source alone: sqlalchemy with
50,000-row pages 202k rows/s, adbc about 5.5x that.

**Parallel key ranges** (`parallel: N`, full mode, Arrow path, one integer key). The key's bounds
are split into N ranges (the last one open, so rows added past today's largest key are read too),
each read page by page in key order by a thread with a connection of its own; pages are yielded as
they come, and the cursor holds every range's last key (`ranges`), so a chunk's cursor covers exactly
what was yielded before it and a rerun resumes each range where it stopped. Measured: the source
alone 1.6M -> 2.0M rows/s with 2 ranges, end to end 3-15 % more on 2 cores (the CPU is the limit).
Opt-in: a production database gets one query at a time unless the steward asks for more.

**Modes.**
- `full` reads the table once, in primary-key order, resumably. When the pass is complete the
  cursor says so and later runs read nothing (the lake dataset is append-only: re-reading would
  duplicate every row). Follow a growing table with `incremental` mode instead.
- `incremental` reads the rows whose `(cursor_column, primary_key)` is greater than the last
  committed one: a later run picks up the rows inserted since, including rows that share the last
  row's cursor value but have a greater primary key. A row whose cursor column is updated (an
  `updated_at` set on update) moves forward and **is loaded again**: the dataset receives an
  appended new version of every changed row (keep the latest per primary key when reading).
  Deleted rows are not seen. Rows whose key columns are NULL are never read (use a `query` with
  COALESCE to give them a value). A transaction that commits rows with a cursor value lower than
  one already read (a long transaction that set `updated_at` at its start) is missed: prefer a
  cursor the database assigns at commit, or a sequence.
- Without `primary_key` (a `query`, or a table without a primary key, in incremental mode), the
  cursor column alone is the key: a page never ends inside a group of rows sharing a cursor value
  (the whole group is read with it), but rows added later with the last value already read are
  missed. Give `primary_key` to tie-break.

**Safety.** Identifiers go through SQLAlchemy's quoting of the database's dialect; a `query` must
be a single SELECT (checked with sqlglot: no DML, DDL, SELECT INTO or locking clause) and is
read as a sub-select. Connections are read-only where the database allows it (PostgreSQL
`BEGIN READ ONLY`, MySQL `SET SESSION TRANSACTION READ ONLY`, SQLite `PRAGMA query_only`); a
database role with only SELECT rights remains the real guarantee. Errors are one line, with the
URL's password hidden.

**Types.** Arrow types come from the table's reflected column types (or, for a `query` on
PostgreSQL, from the result's type OIDs), so every batch of a run has the same schema, an empty
table included; columns whose type the database does not say (SQLite expressions) take the type of
their first non-NULL value. A value that does not fit its column's type goes to the quarantine with
its row, never silently converted.

**MySQL and MariaDB** (`mysql+pymysql://…`, `mariadb+pymysql://…`). Each connection is set up with
`SET SESSION TRANSACTION READ ONLY` (no INSERT, UPDATE, DDL, temporary table, locking read or
writing stored function: error 1792) and `SET time_zone = '+00:00'`, so that a TIMESTAMP column (an
instant) is read in UTC and typed `timestamp[us, UTC]` whatever the server's zone, and compares
unambiguously in the keyset (DATETIME stays a naive timestamp; NOW() in a `query` is UTC too). The
connection character set is utf8mb4 unless the URL says otherwise. Types: TINYINT(1)/BOOLEAN and
BIT(1) → bool (another value in a TINYINT(1), such as 2, goes to the quarantine), BIT(n) and YEAR →
int64, DECIMAL(p,s) → decimal(p,s), JSON (LONGTEXT on MariaDB) → its text, BLOB/VARBINARY → binary,
TIME → time (a duration outside 00:00-24:00 goes to the quarantine), BIGINT UNSIGNED → int64
(values above 2^63-1 go to the quarantine). A `query`'s columns are typed from the result's MySQL
field types. Keys of more than one column are compared in the expanded OR form, not as row values
(`(a, b) > (x, y)`), which MariaDB 10.11 answers with a full scan and a sort (measured: 200,001
rows read for a 1,000-row page of a 200,000-row table, against 1,000 through the index). A `query`
may not hold executable comments (`/*! … */`, `/*M! … */`): the server runs what sqlglot reads as
a comment. A page is fetched whole by the driver (a buffered cursor): measured on a 50,000-row
page, a server-side cursor (`stream_results`) held the same memory (26 MB), since the rows are
kept for the page anyway; `batch_rows` is what bounds the memory.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import math
import queue
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
import sqlglot
from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, NoSuchTableError, SQLAlchemyError
from sqlalchemy.types import NullType, TypeEngine
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType

try:  # the Arrow-native PostgreSQL path (a main dependency; optional at import so that its absence is a fallback)
    import adbc_driver_postgresql.dbapi as adbc_pg
    from adbc_driver_manager import Error as AdbcError
except ImportError:  # pragma: no cover
    adbc_pg = None

    class AdbcError(Exception):  # type: ignore[no-redef]
        pass


from manara.connect.protocol import Chunk, Connector, Context, Cursor, Options, rejects_table
from manara.errors import BadRequest

CONNECT_TIMEOUT_S = 15
SQLALCHEMY_BATCH_ROWS = 50_000
ADBC_BATCH_ROWS = 500_000  # rows per page query; measured: see the module docstring
ADBC_BATCH_BYTES = 4 << 20  # the driver's batches within a page (about 50,000 rows of 6 columns)
ADBC_BATCH_BYTES_OPTION = "adbc.postgresql.batch_size_hint_bytes"
ADBC_TYPE_RESOLVER = "adbc.postgresql.type_resolver_mode"
MAX_COLUMNS_NAMED = 20  # columns listed in an "unknown column" error
SUBQUERY_ALIAS = "_manara_src"

# SQLAlchemy backend name → sqlglot dialect, to parse a `query` as the database will
_SQLGLOT_DIALECTS = {
    "postgresql": "postgres",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mssql": "tsql",
    "oracle": "oracle",
    "duckdb": "duckdb",
}
# anything that writes, changes the schema or locks: refused anywhere in a `query`
_FORBIDDEN = tuple(
    getattr(exp, name)
    for name in (
        "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "Command", "Into", "Lock",
        "TruncateTable", "Copy", "Set", "Pragma", "Use", "Transaction", "Commit", "Rollback", "Grant",
        "Revoke", "LoadData", "Analyze",
    )
    if hasattr(exp, name)
)  # fmt: skip
# backends that compare row values, `(a, b) > (x, y)`, through an index (others get the expanded OR
# form: MySQL and MariaDB accept row values but scan and sort the whole table for them)
_ROW_VALUES = {"postgresql", "sqlite", "duckdb"}
_MYSQL = {"mysql", "mariadb"}


def _error(code: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(code, message)


def _parse_url(value: str) -> URL:
    try:
        url = make_url(value)
        url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as err:
        # the text of the error may repeat the URL: never show it (it may hold a password)
        raise _error(
            "sql_url",
            "not a database URL SQLAlchemy knows (e.g. sqlite:///path/to.db, "
            f"postgresql+psycopg://user@host/db): {type(err).__name__}",
        ) from None
    return url


def _check_query(query: str, backend: str | None) -> None:
    """A `query` must be exactly one SELECT (or UNION …), with nothing that writes or locks."""
    dialect = _SQLGLOT_DIALECTS.get(backend or "")
    try:
        statements = [
            s
            for s in sqlglot.parse(query, read=dialect)
            if s is not None and not isinstance(s, exp.Semicolon)
        ]
    except SqlglotError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise _error("sql_query", f"query is not valid SQL ({dialect or 'generic'}): {first}") from None
    if len(statements) != 1:
        raise _error("sql_query", f"query must be one SELECT statement, not {len(statements)} statements")
    if backend in _MYSQL and _executable_comment(query):
        raise _error(
            "sql_query",
            "query must not hold executable comments (/*! … */ or /*M! … */): MySQL and MariaDB run "
            "their text, which is not checked",
        )
    top = statements[0]
    while isinstance(top, exp.Subquery):
        top = top.this
    if not isinstance(top, exp.Select | exp.SetOperation):
        raise _error("sql_query", f"query must be a SELECT, not {top.key.upper()}")
    for node in top.walk():
        if isinstance(node, _FORBIDDEN):
            what = "SELECT … INTO" if isinstance(node, exp.Into) else node.key.upper()
            if isinstance(node, exp.Lock):
                what = "a locking clause (FOR UPDATE/SHARE)"
            raise _error("sql_query", f"query must only read: {what} is not allowed")


def _executable_comment(query: str) -> bool:
    """Whether a MySQL query holds a comment the server executes (sqlglot keeps it as a comment)."""
    tokens = sqlglot.Dialect.get_or_raise("mysql").tokenize(query)
    return any(c.startswith(("!", "M!", "m!")) for t in tokens for c in t.comments)


def _query_text(query: str, backend: str | None) -> str:
    """The query without trailing semicolons or comments, ready to be wrapped as a sub-select."""
    dialect = sqlglot.Dialect.get_or_raise(_SQLGLOT_DIALECTS.get(backend or ""))
    tokens = [t for t in dialect.tokenize(query) if t.token_type != TokenType.SEMICOLON]
    body = query[: tokens[-1].end + 1] if tokens else query
    # sqlalchemy.text() reads ":name" as a bind parameter: the query has none (escape every colon)
    return body.replace(":", "\\:") + "\n"


class SqlOptions(Options):
    url: str = Field(
        description="SQLAlchemy database URL: sqlite:///path/to.db, postgresql+psycopg://user:password@host/db, "
        "mysql+pymysql://… (its driver must be installed). Use a database role that can only read."
    )
    table: str | None = Field(
        None, description="the table or view to read, schema-qualified allowed (schema.table); or give query"
    )
    query: str | None = Field(
        None,
        validate_default=True,
        description="one SELECT (or UNION) to read instead of a table; it is read as a sub-select",
    )
    mode: Literal["full", "incremental"] = Field(
        "full",
        description="full: read everything once, resumably; incremental: each run reads the rows whose "
        "(cursor_column, primary_key) is greater than the last one read (changed rows are appended again)",
    )
    cursor_column: str | None = Field(
        None,
        validate_default=True,
        description="incremental mode: a column that only grows (updated_at, an id); rows where it is NULL are "
        "not read",
    )
    primary_key: list[str] | None = Field(
        None,
        validate_default=True,
        description="columns that identify a row: the read order of full mode and the tie-breaker of "
        "incremental mode (default: the table's primary key)",
    )
    batch_rows: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description=f"rows fetched per query; default {SQLALCHEMY_BATCH_ROWS:,} (bounds the memory), "
        f"{ADBC_BATCH_ROWS:,} on the Arrow-native PostgreSQL path (which streams each query's result "
        "in batches of about 4 MB)",
    )
    parallel: int = Field(
        1,
        ge=1,
        le=8,
        description="full mode, Arrow-native PostgreSQL path, one integer key: read this many key ranges at "
        "once, each on a connection of its own (rows then arrive in key order per range, not overall)",
    )
    engine: Literal["auto", "adbc", "sqlalchemy"] = Field(
        "auto",
        description="how pages are read: adbc (PostgreSQL only: Arrow straight from the database, several times "
        "faster), sqlalchemy (Python rows, any database), auto (adbc for PostgreSQL when installed)",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        _parse_url(v)
        return v

    @field_validator("engine")
    @classmethod
    def _engine(cls, v: str, info: ValidationInfo) -> str:
        url = info.data.get("url")
        if v == "adbc" and url and _parse_url(url).get_backend_name() != "postgresql":
            raise _error("sql_engine", "engine adbc reads PostgreSQL only: use auto or sqlalchemy")
        return v

    @field_validator("table")
    @classmethod
    def _table(cls, v: str | None) -> str | None:
        if v is not None:
            parts = v.split(".")
            if len(parts) > 2 or not all(p.strip() for p in parts):
                raise _error("sql_table", f"'{v}' is not a table name (name or schema.name)")
        return v

    @field_validator("query")
    @classmethod
    def _query(cls, v: str | None, info: ValidationInfo) -> str | None:
        table = info.data.get("table")
        if v is not None and table is not None:
            raise _error("sql_table_or_query", "give either table or query, not both")
        if v is None:
            if table is None and "table" in info.data:
                raise _error("sql_table_or_query", "give a table or a query to read")
            return v
        url = info.data.get("url")
        _check_query(v, _parse_url(url).get_backend_name() if url else None)
        return v

    @field_validator("cursor_column")
    @classmethod
    def _cursor_column(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None and info.data.get("mode") == "incremental":
            raise _error(
                "sql_cursor_column",
                "incremental mode needs cursor_column: a column that only grows, such as updated_at or an id",
            )
        return v

    @field_validator("primary_key", mode="before")
    @classmethod
    def _one_key(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("primary_key")
    @classmethod
    def _primary_key(cls, v: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if v is not None and (not v or len(set(v)) != len(v)):
            raise _error("sql_primary_key", "primary_key must list distinct columns")
        data = info.data
        if (
            not v
            and data.get("mode") == "full"
            and data.get("query") is not None
            and not data.get("cursor_column")
        ):
            raise _error(
                "sql_primary_key",
                "reading a query in full mode needs primary_key (the columns that identify a row; or a "
                "cursor_column) so that an interrupted run resumes where it stopped, in a deterministic order",
            )
        return v


# --- types --------------------------------------------------------------------------------------

# PostgreSQL type OIDs (psycopg, psycopg2: cursor.description type_code) for a `query`'s columns
_PG_OIDS: dict[int, pa.DataType] = {
    16: pa.bool_(), 20: pa.int64(), 21: pa.int64(), 23: pa.int64(), 26: pa.int64(),
    700: pa.float64(), 701: pa.float64(), 1082: pa.date32(), 1083: pa.time64("us"),
    1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC"), 17: pa.binary(),
}  # fmt: skip
_PG_NUMERIC = 1700


def _decimal(precision: int | None, scale: int | None, backend: str) -> pa.DataType:
    if backend == "sqlite" and precision is None:
        return pa.float64()  # SQLite stores NUMERIC as REAL or INTEGER: a double holds it exactly
    if precision is not None and scale is not None and 0 <= scale <= precision <= 38:
        return pa.decimal128(precision, scale)
    # unconstrained (or wider than Arrow's decimal128): exact to 9 decimals; a value that does not
    # fit goes to the quarantine rather than being rounded as a double would
    return pa.decimal128(38, scale if scale is not None and 0 <= scale <= 38 else 9)


def _arrow_type(t: TypeEngine[Any], backend: str) -> pa.DataType | None:
    """The Arrow type of a reflected column type; None when the database does not say."""
    if isinstance(t, NullType):
        return None
    if isinstance(t, postgresql.DOMAIN):  # a PostgreSQL domain: the type it constrains
        return _arrow_type(t.data_type, backend)
    if backend in _MYSQL:
        special = _mysql_arrow_type(t)
        if special is not None:
            return special
    if isinstance(t, sa.Boolean):
        return pa.bool_()
    if isinstance(t, sa.Integer):
        return pa.int64()  # SQLite INTEGER and MySQL INT UNSIGNED exceed int32
    if isinstance(t, sa.Float):
        return pa.float64()
    if isinstance(t, sa.Numeric):
        return _decimal(t.precision, t.scale, backend)
    if isinstance(t, sa.DateTime):
        return pa.timestamp("us", tz="UTC" if t.timezone else None)
    if isinstance(t, sa.Date):
        return pa.date32()
    if isinstance(t, sa.Time):
        return pa.time64("us")
    try:
        if t.python_type is bytes:
            return pa.binary()
    except NotImplementedError:
        pass
    return pa.string()  # text, enums, UUID, JSON, arrays, intervals…: as text


def _mysql_arrow_type(t: TypeEngine[Any]) -> pa.DataType | None:
    """The MySQL and MariaDB column types the generic mapping would get wrong (None: the generic one)."""
    if isinstance(t, mysql.TINYINT) and t.display_width == 1:
        return pa.bool_()  # BOOLEAN is TINYINT(1)
    if isinstance(t, mysql.BIT):
        return pa.bool_() if (t.length or 1) == 1 else pa.int64()  # read as `b + 0`: a number
    if isinstance(t, mysql.YEAR):
        return pa.int64()
    if isinstance(t, sa.TIMESTAMP):
        return pa.timestamp("us", tz="UTC")  # an instant, read in the session's zone: UTC
    return None


# MySQL protocol field types (PyMySQL and mysqlclient cursor.description type codes) of a `query`'s
# columns; strings and blobs share codes (the values tell them apart), NULL and GEOMETRY are not here
_MYSQL_FIELDS: dict[int, pa.DataType] = {
    2: pa.int64(), 3: pa.int64(), 8: pa.int64(), 9: pa.int64(), 13: pa.int64(),
    4: pa.float64(), 5: pa.float64(), 7: pa.timestamp("us", tz="UTC"), 12: pa.timestamp("us"),
    10: pa.date32(), 14: pa.date32(), 11: pa.time64("us"), 245: pa.string(), 247: pa.string(),
    248: pa.string(),
}  # fmt: skip
_MYSQL_TINY, _MYSQL_BIT, _MYSQL_DECIMALS = 1, 16, (0, 246)


def _mysql_described_type(d: Sequence[Any]) -> pa.DataType | None:
    code, length, scale = d[1], d[3], d[5]
    if code in (_MYSQL_TINY, _MYSQL_BIT):
        return pa.bool_() if length == 1 else pa.int64()
    if code in _MYSQL_DECIMALS:
        # the field's length counts the digits, the point and the sign (none for UNSIGNED, which the
        # description does not say): length less the point is the precision, or one more digit
        precision = length - (1 if scale else 0) if isinstance(length, int) else None
        return _decimal(precision, scale, "mysql")
    return _MYSQL_FIELDS.get(code)


def _type_of_value(v: Any, scale: int | None) -> pa.DataType:
    if isinstance(v, bool):
        return pa.bool_()
    if isinstance(v, int):
        return pa.int64()
    if isinstance(v, float):
        return pa.float64()
    if isinstance(v, Decimal):
        return pa.decimal128(38, scale if scale is not None and 0 <= scale <= 38 else 9)
    if isinstance(v, dt.datetime):
        return pa.timestamp("us", tz="UTC" if v.tzinfo else None)
    if isinstance(v, dt.date):
        return pa.date32()
    if isinstance(v, dt.time):
        return pa.time64("us")
    if isinstance(v, bytes | bytearray | memoryview):
        return pa.binary()
    return pa.string()


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, dict | list | tuple):
        return json.dumps(v, ensure_ascii=False, default=str)
    if isinstance(v, bytes | bytearray | memoryview):
        return "base64:" + base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, dt.timedelta):  # a MySQL TIME, as MySQL writes it: -01:30:00, 838:59:59
        seconds, fraction = divmod(abs(v) // dt.timedelta(microseconds=1), 1_000_000)
        sign = "-" if v < dt.timedelta(0) else ""
        text = f"{sign}{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        return text + (f".{fraction:06d}" if fraction else "")
    return str(v)


def _int(v: Any) -> int:
    if isinstance(v, int):
        return int(v)
    if isinstance(v, Decimal | float) and v == int(v):
        return int(v)
    if isinstance(v, str):
        return int(v.strip())
    raise ValueError


def _float(v: Any) -> float:
    if isinstance(v, float | int | Decimal | str) and not isinstance(v, bool):
        return float(v)
    raise ValueError


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)  # SQLite and MySQL booleans are 0/1
    raise ValueError


def _dec(v: Any) -> Decimal:
    if isinstance(v, Decimal):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return Decimal(v)
    if isinstance(v, float):
        return Decimal(
            repr(v)
        )  # the shortest repr: 12.34, not 12.339999999999999857891452847979962825775146484375
    if isinstance(v, str):
        return Decimal(v.strip())
    raise ValueError


def _timestamp(v: Any) -> dt.datetime:
    if isinstance(v, dt.datetime):
        return v
    if isinstance(v, str):  # SQLite keeps timestamps as ISO text ("2024-05-01 10:00:00", with T, …)
        return dt.datetime.fromisoformat(v.strip())
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day)
    raise ValueError  # a number is ambiguous (seconds? ms?): quarantined, not guessed


def _date(v: Any) -> dt.date:
    if isinstance(v, dt.datetime):
        if v.time() != dt.time(0):
            raise ValueError
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        return dt.date.fromisoformat(v.strip())
    raise ValueError


def _time(v: Any) -> dt.time:
    if isinstance(v, dt.time):
        return v
    if isinstance(v, dt.timedelta):  # MySQL drivers read TIME as a duration (-838:59:59 to 838:59:59)
        if not dt.timedelta(0) <= v < dt.timedelta(days=1):
            raise ValueError
        return (dt.datetime.min + v).time()
    if isinstance(v, str):
        return dt.time.fromisoformat(v.strip())
    raise ValueError


def _binary(v: Any) -> bytes:
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v)
    if isinstance(v, str):
        return v.encode("utf-8")
    raise ValueError


def _converter(t: pa.DataType) -> Callable[[Any], Any]:
    if pa.types.is_string(t):
        return _text
    if pa.types.is_boolean(t):
        return _bool
    if pa.types.is_integer(t):
        return _int
    if pa.types.is_floating(t):
        return _float
    if pa.types.is_decimal(t):
        return _dec
    if pa.types.is_timestamp(t):
        return _timestamp
    if pa.types.is_date(t):
        return _date
    if pa.types.is_time(t):
        return _time
    if pa.types.is_binary(t):
        return _binary
    return lambda v: v


# --- cursor values ------------------------------------------------------------------------------


def _encode(value: Any, column: str) -> tuple[Any, str | None]:
    """A key value as JSON, and its type tag when JSON alone would not give it back."""
    if value is None or isinstance(value, bool | int | float | str):
        return value, None
    if isinstance(value, dt.datetime):
        return value.isoformat(), "datetime"
    if isinstance(value, dt.date):
        return value.isoformat(), "date"
    if isinstance(value, dt.time):
        return value.isoformat(), "time"
    if isinstance(value, Decimal):
        return str(value), "decimal"
    if isinstance(value, uuid.UUID):
        return str(value), "uuid"
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii"), "bytes"
    raise BadRequest(
        f"sql source: column '{column}' holds {type(value).__name__} values, which cannot order a resumable "
        "read: choose another cursor_column / primary_key"
    )


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "decimal": Decimal,
    "uuid": uuid.UUID,
    "bytes": base64.b64decode,
}


def _decode(value: Any, tag: str | None) -> Any:
    return value if tag is None or value is None else _DECODERS[tag](value)


# --- the source ---------------------------------------------------------------------------------


@dataclass
class _Plan:
    """What one run reads: the columns, their Arrow types, the key and the selectable."""

    label: str  # "table public.orders" or "query"
    columns: list[sa.ColumnElement[Any]]  # raw (untyped) columns, labelled with their names
    names: list[str]
    schema: pa.Schema
    key: list[str]  # the read order: (cursor_column, *primary_key) or primary_key
    key_idx: list[int]  # the key's positions in a row
    key_cols: list[sa.ColumnElement[Any]]
    unique_key: bool  # False: the cursor column alone (ties are read as a whole group)
    source: sa.FromClause


class SqlSource:
    def __init__(self, options: SqlOptions, context: Context) -> None:
        self.options = options
        self.url = make_url(options.url)
        self.backend = self.url.get_backend_name()
        self.safe_url = self.url.render_as_string(hide_password=True)
        if self.url.host:
            context.check_egress(self.safe_url)
        if self.backend == "sqlite" and self.url.database not in (None, "", ":memory:"):
            self._check_sqlite_file(self.url.database, context)
        self.engine = self._engine()
        wants = options.engine
        self.adbc = self.backend == "postgresql" and (
            wants == "adbc" or (wants == "auto" and adbc_pg is not None)
        )
        if self.adbc and adbc_pg is None:
            raise BadRequest(
                "sql source: engine adbc needs the package adbc-driver-postgresql, not installed"
            )
        default_rows = ADBC_BATCH_ROWS if self.adbc else SQLALCHEMY_BATCH_ROWS
        self.batch_rows = options.batch_rows or default_rows
        # the Python page read after a misfit on the Arrow path: Python rows take far more memory
        self.misfit_rows = min(self.batch_rows, SQLALCHEMY_BATCH_ROWS)

    def _check_sqlite_file(self, database: str, context: Context) -> None:
        """A SQLite file is a file: it must exist (never created) and lie in the readable folders."""
        path = Path(database.removeprefix("file:").split("?", 1)[0]).expanduser()
        resolved = context.check_readable(path, "sql source")
        if not resolved.is_file():
            raise BadRequest(f"sql source: no SQLite database file at {path}")

    # --- connecting, read-only ---

    def _engine(self) -> Engine:
        connect_args: dict[str, Any] = {}
        if self.backend in ("postgresql", *_MYSQL) and "connect_timeout" not in self.url.query:
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        if self.url.get_driver_name() in ("pymysql", "mysqldb") and "charset" not in self.url.query:
            connect_args["charset"] = "utf8mb4"  # all of Unicode (MySQL utf8 is utf8mb3: 3 bytes at most)
        try:
            engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool, connect_args=connect_args)
        except (ImportError, NoSuchModuleError) as err:
            raise BadRequest(
                f"sql source: the database driver for {self.url.drivername} is not installed ({err})"
            ) from None
        except (ArgumentError, ValueError, TypeError) as err:
            raise BadRequest(f"sql source: {self._scrub(str(err))}") from None
        if self.backend == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_read_only)
        elif self.backend in _MYSQL:
            sa.event.listen(engine, "connect", _mysql_session)
        return engine

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Connection]:
        with self._errors("cannot connect to"):
            conn = self.engine.connect()
            if self.backend == "postgresql":
                # psycopg opens every transaction with BEGIN READ ONLY
                conn = conn.execution_options(postgresql_readonly=True)
        try:
            yield conn
        finally:
            with contextlib.suppress(SQLAlchemyError):
                conn.close()

    def _scrub(self, text: str) -> str:
        password = self.url.password
        if password:
            text = text.replace(str(password), "***")
        return text

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Database errors as one readable line, without the password."""
        try:
            yield
        except NoSuchTableError as err:
            name = self.options.table or str(err)
            raise BadRequest(f"sql source: table '{name}' does not exist in {self.safe_url}") from None
        except DBAPIError as err:
            lines = [ln.strip() for ln in _driver_message(err.orig).splitlines() if ln.strip()]
            # a connection error's second line is often its hint ("Is the server running on…")
            reason = " ".join(lines[: 2 if doing == "cannot connect to" else 1]) or type(err.orig).__name__
            raise BadRequest(self._scrub(f"sql source: {doing} {self.safe_url}: {reason}")) from None
        except (SQLAlchemyError, ImportError) as err:
            reason = (str(err).splitlines() or [type(err).__name__])[0]
            raise BadRequest(self._scrub(f"sql source: {doing} {self.safe_url}: {reason}")) from None
        except AdbcError as err:
            raise BadRequest(
                self._scrub(f"sql source: {doing} {self.safe_url}: {adbc_reason(err)}")
            ) from None

    # --- what to read ---

    def _plan(self, conn: Connection) -> _Plan:
        opts = self.options
        declared_pk: list[str] = []
        types: dict[str, pa.DataType | None] = {}
        if opts.table is not None:
            schema, _, name = opts.table.rpartition(".")
            label = f"table {opts.table}"
            with self._errors(f"cannot read {label} in"):
                # the columns and the primary key only: a full reflection (indexes, foreign keys,
                # constraints, comments) costs a query each and is not needed
                inspector = sa.inspect(conn)
                reflected = inspector.get_columns(name, schema=schema or None)
                pk_names = inspector.get_pk_constraint(name, schema=schema or None)["constrained_columns"]
            table = sa.Table(
                name,
                sa.MetaData(),
                *[sa.Column(c["name"], c["type"]) for c in reflected],
                schema=schema or None,
            )
            source: sa.FromClause = table
            names = [c.name for c in table.columns]
            declared_pk = list(pk_names)  # in the constraint's order, which may not be the columns'
            for c in table.columns:
                types[c.name] = _arrow_type(c.type, self.backend)
            by_name = {c.name: _raw(c, bit=isinstance(c.type, mysql.BIT)) for c in table.columns}
            sample_needed = any(t is None for t in types.values())
        else:
            assert opts.query is not None
            label = "query"
            text = _query_text(opts.query, self.backend)
            probe_source = sa.text(text).columns().subquery(SUBQUERY_ALIAS)
            with self._errors("the query failed on"):
                result: sa.CursorResult[Any] = conn.execute(
                    sa.select(sa.literal_column("*")).select_from(probe_source).limit(1)
                )
                description = list(result.cursor.description or [])
                names = list(result.keys())
                sample = result.first()
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise BadRequest(
                    f"sql source: the query returns the column '{dupes[0]}' more than once: name each column "
                    "once (… AS other_name)"
                )
            for i, (name, d) in enumerate(zip(names, description, strict=True)):
                types[name] = self._described_type(d)
                if types[name] is None and sample is not None and sample[i] is not None:
                    types[name] = _type_of_value(sample[i], d[5] if len(d) > 5 else None)
            source = sa.text(text).columns(*[sa.column(n) for n in names]).subquery(SUBQUERY_ALIAS)
            bits = {n for n, d in zip(names, description, strict=True) if self._mysql_bit(d)}
            by_name = {n: _raw(source.c[n], bit=n in bits) for n in names}
            sample_needed = any(t is None for t in types.values())

        pk = list(opts.primary_key or declared_pk)
        cursor_col = opts.cursor_column
        if opts.mode == "incremental":
            assert cursor_col is not None
            key = [cursor_col, *[c for c in pk if c != cursor_col]]
        else:
            key = pk or ([cursor_col] if cursor_col else [])
        if not key:
            raise BadRequest(
                f"sql source: {label} has no primary key: set primary_key (the columns that identify a row) so "
                "that full mode reads in a resumable order, or a cursor_column"
            )
        for col in [*key, *([opts.cursor_column] if opts.cursor_column else [])]:
            if col not in by_name:
                shown = ", ".join(names[:MAX_COLUMNS_NAMED]) + (
                    ", …" if len(names) > MAX_COLUMNS_NAMED else ""
                )
                raise BadRequest(f"sql source: column '{col}' is not in {label} (columns: {shown})")
        if sample_needed:
            scales = {}
            if opts.query is not None:
                scales = {n: d[5] if len(d) > 5 else None for n, d in zip(names, description, strict=True)}
            for name in [n for n, t in types.items() if t is None]:
                with self._errors(f"cannot read {label} in"):
                    value = conn.execute(
                        sa.select(by_name[name])
                        .select_from(source)
                        .where(by_name[name].is_not(None))
                        .limit(1)
                    ).scalar()
                types[name] = pa.string() if value is None else _type_of_value(value, scales.get(name))
        schema = pa.schema([pa.field(n, types[n] or pa.string()) for n in names])
        return _Plan(
            label=label,
            columns=[by_name[n].label(n) for n in names],
            names=names,
            schema=schema,
            key=key,
            key_idx=[names.index(k) for k in key],
            key_cols=[by_name[k] for k in key],
            unique_key=bool(pk),
            source=source,
        )

    def _mysql_bit(self, d: Sequence[Any]) -> bool:
        return self.backend in _MYSQL and d[1] == _MYSQL_BIT

    def _described_type(self, d: Sequence[Any]) -> pa.DataType | None:
        if self.backend in _MYSQL and isinstance(d[1], int):
            return _mysql_described_type(d)
        if self.backend != "postgresql" or not isinstance(d[1], int):
            return None  # SQLite and most drivers do not type a result's columns: look at the values
        if d[1] == _PG_NUMERIC:
            precision, scale = (d[4], d[5]) if len(d) > 5 else (None, None)
            return _decimal(precision, scale, self.backend)
        return _PG_OIDS.get(d[1], pa.string())

    def schema(self) -> pa.Schema:
        """The Arrow schema every batch of a run will have (connects to the database)."""
        with self._connect() as conn, conn.begin():
            return self._plan(conn).schema

    # --- reading ---

    def read(self, cursor: Cursor | None) -> Iterator[Chunk]:
        opts = self.options
        complete = opts.mode == "full" and bool(cursor and cursor.get("complete"))
        with contextlib.ExitStack() as stack:
            # the ADBC connection opens (TLS, authentication, two SETs) while the table is looked at
            opening = stack.enter_context(self._adbc_opening()) if self.adbc and not complete else None
            conn = stack.enter_context(self._connect())
            with conn.begin():
                plan = self._plan(conn)
            last = self._resume(cursor, plan)
            if complete:
                return  # the snapshot was read whole; a new one would duplicate every row
            fast = opening() if opening is not None else None
            if fast is not None and not self._adbc_fits(fast, plan):
                fast = None  # a column Arrow would not give exactly as the Python path does
            ranges = self._ranges(fast, plan, cursor)
            if ranges is not None:
                yield from self._read_ranges(plan, ranges)
                return
            while True:
                if fast is not None:
                    misfit = False
                    for item in self._adbc_stream(fast, plan, last):
                        if item is None:
                            misfit = True
                            break
                        batch, done = item
                        if batch.num_rows:
                            keys = [batch.column(i) for i in plan.key_idx]
                            first_key, last = [k[0].as_py() for k in keys], [k[-1].as_py() for k in keys]
                            yield self._chunk(plan, batch, first_key, last, done)
                        elif done and opts.mode == "full":
                            yield self._chunk(plan, batch, None, last, done)
                    if not misfit:
                        if done:
                            return
                        continue
                # the Python path: every page of a run without the Arrow path; with it, the page where
                # a value did not fit (read again from the last row yielded, its misfits quarantined)
                with self._errors(f"cannot read {plan.label} in"):
                    rows, done = self._page(conn, plan, last, n=None if fast is None else self.misfit_rows)
                if rows:
                    first_key, last = self._key(rows[0], plan), self._key(rows[-1], plan)
                    batch, rejects = self._batch(rows, plan)
                    yield self._chunk(plan, batch, first_key, last, done, rejects)
                elif opts.mode == "full":  # the pass is complete: say so, with an empty batch of the schema
                    empty = pa.RecordBatch.from_pylist([], schema=plan.schema)
                    yield self._chunk(plan, empty, None, last, True)
                if done:
                    return

    def _chunk(
        self, plan: _Plan, batch: pa.RecordBatch, first_key: list[Any] | None, last: list[Any] | None,
        done: bool, rejects: pa.Table | None = None,
    ) -> Chunk:  # fmt: skip
        shown = (
            f"{plan.label} {_show_key(plan.key, first_key)} … {_show_key(plan.key, last)}"
            if first_key is not None and last is not None
            else plan.label
        )
        return Chunk(
            batch, self._cursor(plan, last, complete=done), shown, rejects=rejects, bytes_read=batch.nbytes
        )

    # --- parallel key ranges (full mode, ADBC, one integer key) ---

    def _ranges(self, fast: Any, plan: _Plan, cursor: Cursor | None) -> list[dict[str, Any]] | None:
        """The key ranges of a parallel read: resumed from the cursor, or split now from the key's
        bounds; None for a sequential read (another mode or engine, a composite or non-integer key,
        `parallel: 1`, a cursor of a sequential read, or an empty table)."""
        if cursor and cursor.get("ranges") is not None:
            if list(cursor.get("key", plan.key)) != plan.key:
                raise BadRequest(
                    f"sql source: the committed cursor follows ({', '.join(cursor['key'])}) but the options "
                    f"now read in the order of ({', '.join(plan.key)}): load into a new dataset instead"
                )
            return [dict(r) for r in cursor["ranges"]]
        key_type = plan.schema.field(plan.key[0]).type
        if (
            fast is None or cursor or self.options.mode != "full" or self.options.parallel < 2
            or len(plan.key) != 1 or not plan.unique_key or not pa.types.is_integer(key_type)
        ):  # fmt: skip
            return None
        k = plan.key_cols[0]
        stmt = sa.select(sa.func.min(k), sa.func.max(k)).select_from(plan.source)
        with self._errors(f"cannot read {plan.label} in"), contextlib.closing(fast.cursor()) as cur:
            cur.execute(self._adbc_sql(stmt))
            low, high = cur.fetch_arrow_table().to_pylist()[0].values()
        if low is None:
            return None
        n = min(self.options.parallel, high - low + 1)
        step = (high - low + 1) // n
        # the last range is open: rows added past today's largest key during the read are read too
        return [{"from": low + i * step, "to": low + (i + 1) * step - 1 if i < n - 1 else None,
                 "last": None, "done": False} for i in range(n)]  # fmt: skip

    def _read_ranges(self, plan: _Plan, ranges: list[dict[str, Any]]) -> Iterator[Chunk]:
        """Each unfinished range read by a thread with a connection of its own, page by page in key
        order; the pages are yielded as they come. The cursor holds every range's last key, so that
        what a chunk's cursor covers is exactly what was yielded (exactly-once is unchanged)."""
        pending = [i for i, r in enumerate(ranges) if not r["done"]]
        pages: queue.Queue[tuple[int, pa.RecordBatch | None, pa.Table | None, Any, bool] | BaseException] = (
            queue.Queue(maxsize=len(pending))
        )
        cancel = threading.Event()

        def put(item: Any) -> bool:
            while not cancel.is_set():
                try:
                    pages.put(item, timeout=0.2)
                    return True
                except queue.Full:
                    continue
            return False

        def work(i: int) -> None:
            r = ranges[i]
            last = (
                [r["last"]] if r["last"] is not None else ([r["from"] - 1] if r["from"] is not None else None)
            )
            try:
                with self._adbc_connect() as fast, contextlib.ExitStack() as stack:
                    conn: Connection | None = None
                    while not cancel.is_set():
                        done, misfit = False, False
                        for item in self._adbc_stream(fast, plan, last, r["to"]):
                            if item is None:
                                misfit = True
                                break
                            batch, done = item
                            end = batch.column(plan.key_idx[0])[-1].as_py() if batch.num_rows else None
                            if end is not None:
                                last = [end]
                            if not put((i, batch, None, end, done)):
                                return
                        if misfit:  # a value that does not fit: a page the Python way, misfits quarantined
                            if conn is None:
                                conn = stack.enter_context(self._connect())
                            with self._errors(f"cannot read {plan.label} in"):
                                rows, done = self._page(conn, plan, last, r["to"], n=self.misfit_rows)
                            batch, rejects = self._batch(rows, plan) if rows else (None, None)
                            end = rows[-1][plan.key_idx[0]] if rows else None  # a misfit row at the end too
                            if end is not None:
                                last = [end]
                            if not put((i, batch, rejects, end, done)):
                                return
                        if done:
                            return
            except BaseException as err:  # handed to the reading thread, which raises it
                put(err)

        threads = [
            threading.Thread(target=work, args=(i,), name=f"sql-range-{i}", daemon=True) for i in pending
        ]
        for t in threads:
            t.start()
        try:
            left = len(pending)
            while left:
                item = pages.get()
                if isinstance(item, BaseException):
                    raise item
                i, batch, rejects, end, done = item
                r = ranges[i]
                if end is not None:
                    r["last"] = end
                if done:
                    r["done"], left = True, left - 1
                if (batch is None or not batch.num_rows) and rejects is None and not done:
                    continue
                cursor = {"key": plan.key, "ranges": [dict(x) for x in ranges], "complete": left == 0}
                shown = f"{plan.label} range {i + 1}/{len(ranges)}" + (
                    f" … {plan.key[0]} = {end}" if end is not None else ""
                )
                yield Chunk(
                    batch if batch is not None else pa.RecordBatch.from_pylist([], schema=plan.schema),
                    cursor,
                    shown,
                    rejects=rejects,
                    bytes_read=batch.nbytes if batch is not None else 0,
                )
        finally:
            cancel.set()
            for t in threads:
                t.join(timeout=30)

    def _resume(self, cursor: Cursor | None, plan: _Plan) -> list[Any] | None:
        if not cursor or cursor.get("last") is None:
            return None
        if list(cursor.get("key", plan.key)) != plan.key:
            raise BadRequest(
                f"sql source: the committed cursor follows ({', '.join(cursor['key'])}) but the options now read "
                f"in the order of ({', '.join(plan.key)}): load into a new dataset (or a new pipeline) instead"
            )
        tags = cursor.get("types") or [None] * len(cursor["last"])
        return [_decode(v, t) for v, t in zip(cursor["last"], tags, strict=True)]

    def _cursor(self, plan: _Plan, last: list[Any] | None, *, complete: bool) -> Cursor:
        encoded = [_encode(v, k) for v, k in zip(last, plan.key, strict=True)] if last is not None else None
        out: Cursor = {
            "key": plan.key,
            "last": [v for v, _ in encoded] if encoded is not None else None,
            "types": [t for _, t in encoded] if encoded is not None else None,
        }
        if self.options.mode == "full":
            out["complete"] = complete
        return out

    def _key(self, row: Sequence[Any], plan: _Plan) -> list[Any]:
        return [row[i] for i in plan.key_idx]

    def _key_id(self, row: Sequence[Any], plan: _Plan) -> tuple[Any, ...]:
        """The row's key as hashable JSON values (as the cursor would hold it)."""
        return tuple(_encode(v, k)[0] for v, k in zip(self._key(row, plan), plan.key, strict=True))

    def _select(self, plan: _Plan) -> sa.Select[Any]:
        return (
            sa.select(*plan.columns).select_from(plan.source).where(*[k.is_not(None) for k in plan.key_cols])
        )

    def _page(
        self, conn: Connection, plan: _Plan, last: list[Any] | None, upto: Any = None, *, n: int | None = None
    ) -> tuple[list[Sequence[Any]], bool]:
        """One page of `n` rows (default `batch_rows`) after `last` (and up to the key `upto`, for a
        range of a parallel read), in key order, and whether it is the last page."""
        n = n or self.batch_rows
        stmt = self._select(plan)
        if last is not None:
            stmt = stmt.where(self._after(plan, last))
        if upto is not None:
            stmt = stmt.where(plan.key_cols[0] <= sa.bindparam(None, upto, type_=NullType()))
        with conn.begin():
            rows: list[Sequence[Any]] = list(conn.execute(stmt.order_by(*plan.key_cols).limit(n)).all())
            done = len(rows) < n
            if not done and not plan.unique_key:
                # the cursor column alone is not unique: never end a page inside a group of equal values
                tie = self._key(rows[-1], plan)
                group_stmt = self._select(plan).where(
                    *[
                        c == sa.bindparam(None, v, type_=NullType())
                        for c, v in zip(plan.key_cols, tie, strict=True)
                    ]
                )
                group: list[Sequence[Any]] = list(conn.execute(group_stmt).all())
                # the values the database finds equal to the tie, which Python may not ('a' and 'A ' in a
                # case-insensitive, space-padded MySQL collation): the group has them all
                same = {self._key_id(r, plan) for r in group}
                rows = [r for r in rows if self._key_id(r, plan) not in same] + group
        return rows, done

    def _after(
        self, plan: _Plan, last: list[Any], bind: Callable[[Any], sa.ColumnElement[Any]] | None = None
    ) -> sa.ColumnElement[bool]:
        binds = [bind(v) if bind else sa.bindparam(None, v, type_=NullType()) for v in last]
        if len(binds) == 1:
            return plan.key_cols[0] > binds[0]
        if self.backend in _ROW_VALUES:
            return sa.tuple_(*plan.key_cols) > sa.tuple_(*binds)
        # (a, b) > (x, y) written out for databases without row values: a > x OR (a = x AND b > y)
        terms = []
        for i in range(len(binds)):
            eq = [plan.key_cols[j] == binds[j] for j in range(i)]
            terms.append(sa.and_(*eq, plan.key_cols[i] > binds[i]))
        return sa.or_(*terms)

    # --- the Arrow-native PostgreSQL path (ADBC) ---

    def _adbc_open(self) -> Any:
        """An ADBC connection whose every transaction is read-only (libpq inside the wheel)."""
        assert adbc_pg is not None
        url = self.url.set(drivername="postgresql")
        query = dict(url.query)
        query.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
        uri = url.set(query=query).render_as_string(hide_password=False)
        with self._errors("cannot connect to"):
            # the driver's built-in type table, not the server's catalogue (read at each connect: 30 ms
            # against 6): the Arrow path takes built-in types only, anything else reads the Python way
            conn = adbc_pg.connect(uri, db_kwargs={ADBC_TYPE_RESOLVER: "builtin"}, autocommit=True)
        try:
            with self._errors("cannot connect to"), contextlib.closing(conn.cursor()) as cur:
                cur.execute("SET default_transaction_read_only = on")
                cur.execute("SET standard_conforming_strings = on")
        except BaseException:
            with contextlib.suppress(AdbcError):
                conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _adbc_connect(self) -> Iterator[Any]:
        conn = self._adbc_open()
        try:
            yield conn
        finally:
            with contextlib.suppress(AdbcError):
                conn.close()

    @contextlib.contextmanager
    def _adbc_opening(self) -> Iterator[Callable[[], Any]]:
        """`_adbc_open` run in a thread: yields the function that waits for the connection (and
        raises its error); the connection is closed on the way out."""
        with ThreadPoolExecutor(1, thread_name_prefix="sql-adbc-connect") as pool:
            future = pool.submit(self._adbc_open)
            try:
                yield future.result
            finally:
                with contextlib.suppress(BaseException):
                    future.result().close()

    def _adbc_sql(self, stmt: sa.Select[Any]) -> str:
        # a dialect that does not double '%' (no pyformat parameters: every value is a literal)
        dialect = postgresql.dialect(paramstyle="numeric_dollar")
        return str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))

    def _adbc_fits(self, conn: Any, plan: _Plan) -> bool:
        """Whether every column comes from ADBC as a type that casts exactly to the plan's (else the
        Python path reads the whole run: json, uuid, arrays, intervals, real… stay as they were)."""
        with self._errors(f"cannot read {plan.label} in"), contextlib.closing(conn.cursor()) as cur:
            cur.execute(self._adbc_sql(self._adbc_select(plan).limit(0)))
            got = cur.fetch_arrow_table().schema
        return all(
            _adbc_exact(g, want.type) or (pa.types.is_decimal(want.type) and g.type == pa.string())
            for g, want in zip(got, plan.schema, strict=True)
        ) and len(got) == len(plan.schema)

    def _adbc_select(self, plan: _Plan) -> sa.Select[Any]:
        """`_select` as the Arrow path reads it: a decimal comes as its text (`amount::text`), which
        Arrow parses into the decimal exactly (a value with more digits than the column takes, NaN or
        Infinity fails the cast: the Python path then quarantines it). Measured on the benchmark table
        against numeric as such (which the driver turns into text itself) and against the scaled
        integer `(amount * 100)::bigint`: PostgreSQL 250 / 340 / 280 ms per 1M rows for numeric /
        scaled / text, the client 0.51 / 0.33 / 0.30 s of CPU plus a 25 ms parse for text."""
        columns = []
        for col, f in zip(plan.columns, plan.schema, strict=True):
            if pa.types.is_decimal(f.type):
                inner = sa.type_coerce(col.element if isinstance(col, sa.Label) else col, sa.Numeric())
                col = sa.cast(inner, sa.Text()).label(f.name)
            columns.append(col)
        return sa.select(*columns).select_from(plan.source).where(*[k.is_not(None) for k in plan.key_cols])

    def _adbc_stream(
        self, conn: Any, plan: _Plan, last: list[Any] | None, upto: Any = None
    ) -> Iterator[tuple[pa.RecordBatch, bool] | None]:
        """`_page` read as Arrow and yielded as the driver decodes it, in batches of about
        ADBC_BATCH_BYTES: `(batch, done)`, `done` on the last batch of the last page. Each batch is
        yielded once the next one has come (the last one once the page is over, to know whether it is
        the last page), and never ends inside a group of rows with the same key: with a cursor column
        alone as the key, a batch's trailing group waits for the next batch, and a full page's trailing
        group is read whole, as `_page` does. So each batch's last key is a cursor to resume from.
        `None`, and nothing more, when a value does not fit its column: the caller reads a page the
        Python way from the last key it was given, to send the misfits to the quarantine."""
        n = self.batch_rows
        stmt = self._adbc_select(plan)
        if last is not None:
            stmt = stmt.where(self._after(plan, last, _pg_literal))
        if upto is not None:
            stmt = stmt.where(plan.key_cols[0] <= _pg_literal(upto))
        doing = f"cannot read {plan.label} in"
        held: pa.RecordBatch | None = None  # read, not yet yielded
        rows = 0
        with contextlib.closing(conn.cursor()) as cur:
            try:
                with self._errors(doing):
                    cur.adbc_statement.set_options(**{ADBC_BATCH_BYTES_OPTION: str(ADBC_BATCH_BYTES)})
                    cur.execute(self._adbc_sql(stmt.order_by(*plan.key_cols).limit(n)))
                    reader = cur.fetch_record_batch()
                while True:
                    try:
                        raw = reader.read_next_batch()
                    except StopIteration:
                        break
                    if not raw.num_rows:
                        continue
                    rows += raw.num_rows
                    batch = self._adbc_batch(raw, plan)
                    if held is not None:
                        cut = self._safe_end(held, plan)
                        if cut:
                            yield held.slice(0, cut), False
                        if cut < held.num_rows:  # a group that may go on in this batch
                            batch = _contiguous(pa.Table.from_batches([held.slice(cut), batch]))
                    held = batch
            except (AdbcError, OSError) as err:  # the driver's reader raises OSError
                raise BadRequest(
                    self._scrub(f"sql source: {doing} {self.safe_url}: {adbc_reason(err)}")
                ) from None
            except (pa.ArrowException, ValueError):
                # a value its column's type cannot hold (a decimal with more digits, NaN): what was
                # read whole before it, then the Python way
                cut = self._safe_end(held, plan) if held is not None else 0
                if held is not None and cut:
                    yield held.slice(0, cut), False
                yield None
                return
            done = rows < n
            if held is not None and not done and not plan.unique_key:
                # never end a page inside a group of equal cursor values: the group, read whole
                cut = self._safe_end(held, plan)
                tie = [held.column(i)[-1].as_py() for i in plan.key_idx]
                group = self._adbc_select(plan).where(
                    *[c == _pg_literal(v) for c, v in zip(plan.key_cols, tie, strict=True)]
                )
                try:
                    with self._errors(doing):
                        cur.execute(self._adbc_sql(group))
                        table = cur.fetch_arrow_table()
                    held = _contiguous(
                        pa.Table.from_batches([held.slice(0, cut), self._adbc_batch(table, plan)])
                    )
                except (pa.ArrowException, ValueError):
                    yield None
                    return
        yield (held if held is not None else _contiguous(plan.schema.empty_table())), done

    def _safe_end(self, batch: pa.RecordBatch, plan: _Plan) -> int:
        """How many of the batch's rows can be yielded now: all with a unique key, else those before the
        group of rows sharing its last key (which may go on in what follows)."""
        return batch.num_rows if plan.unique_key else _trailing_group(batch, plan.key_idx)

    def _adbc_batch(self, raw: pa.RecordBatch | pa.Table, plan: _Plan) -> pa.RecordBatch:
        """What the driver gave, as a batch of the plan's schema (raises when a value does not fit)."""
        columns = [pa.chunked_array(raw.column(i)).cast(f.type, safe=True) for i, f in enumerate(plan.schema)]
        return _contiguous(pa.Table.from_arrays(columns, schema=plan.schema))

    def _batch(self, rows: list[Sequence[Any]], plan: _Plan) -> tuple[pa.RecordBatch, pa.Table | None]:
        """Rows as one Arrow batch of the plan's schema, column by column; misfits to the quarantine.

        Python values converted column-wise: enough for a first version. An Arrow-native path
        (ADBC, ConnectorX, PostgreSQL COPY BINARY) is to be chosen by measurement later.
        """
        columns = list(zip(*rows, strict=True))
        arrays: list[pa.Array] = []
        bad: dict[int, str] = {}
        for i, field in enumerate(plan.schema):
            convert = _converter(field.type)
            values = columns[i]
            try:
                arrays.append(pa.array([None if v is None else convert(v) for v in values], type=field.type))
                continue
            except (ValueError, TypeError, ArithmeticError, pa.ArrowException):
                pass
            fixed: list[Any] = []
            for r, v in enumerate(values):
                try:
                    c = None if v is None else convert(v)
                    pa.array([c], type=field.type)
                except (ValueError, TypeError, ArithmeticError, pa.ArrowException):
                    bad.setdefault(r, f"column '{field.name}': {_short(v)} is not a {field.type}")
                    c = None
                fixed.append(c)
            arrays.append(pa.array(fixed, type=field.type))
        batch = pa.RecordBatch.from_arrays(arrays, schema=plan.schema)
        if not bad:
            return batch, None
        keep = [r for r in range(len(rows)) if r not in bad]
        rejects: list[tuple[str, str, str | None]] = [
            (
                reason,
                f"{plan.label} {_show_key(plan.key, self._key(rows[r], plan))}",
                json.dumps(dict(zip(plan.names, rows[r], strict=True)), ensure_ascii=False, default=_text),
            )
            for r, reason in sorted(bad.items())
        ]
        return batch.take(pa.array(keep, type=pa.int64())), rejects_table(rejects)


# ADBC PostgreSQL type name → what it may become exactly (the Python path's values, bit for bit)
_ADBC_EXACT: dict[str, Callable[[pa.DataType], bool]] = {
    "int2": pa.types.is_integer, "int4": pa.types.is_integer, "int8": pa.types.is_integer,
    "oid": pa.types.is_integer, "float8": pa.types.is_floating, "bool": pa.types.is_boolean,
    "text": pa.types.is_string, "varchar": pa.types.is_string, "bpchar": pa.types.is_string,
    "name": pa.types.is_string, "timestamp": pa.types.is_timestamp,
    "timestamptz": pa.types.is_timestamp, "date": pa.types.is_date, "time": pa.types.is_time,
    "bytea": pa.types.is_binary,
}  # fmt: skip


def adbc_reason(err: Exception) -> str:
    """An ADBC/libpq error as one readable line (its first line, without the driver's prefixes)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return (lines[0] if lines else type(err).__name__).removeprefix("IO: ").removeprefix("[libpq] ")


def _adbc_exact(got: pa.Field, want: pa.DataType) -> bool:
    typname = (got.metadata or {}).get(b"POSTGRESQL:type", b"").decode()
    check = _ADBC_EXACT.get(typname)
    if check is None or not check(want):
        return False
    if typname in ("timestamp", "timestamptz"):
        return (typname == "timestamptz") == (want.tz is not None)  # type: ignore[attr-defined]
    return True


def _contiguous(table: pa.Table) -> pa.RecordBatch:
    """A table as one batch (its chunks combined; an empty batch of its schema when it has no rows)."""
    out = table.combine_chunks().to_batches()
    return out[0] if out else pa.RecordBatch.from_pylist([], schema=table.schema)


def _trailing_group(batch: pa.RecordBatch, key_idx: list[int]) -> int:
    """Where the rows with the batch's last key start (the batch is in key order)."""
    same = None
    for i in key_idx:
        column = batch.column(i)
        eq = pc.fill_null(pc.equal(column, column[-1]), False)
        same = eq if same is None else pc.and_(same, eq)
    assert same is not None
    return batch.num_rows - pc.sum(same).as_py()


def _pg_literal(v: Any) -> sa.ColumnElement[Any]:
    """A cursor value as a PostgreSQL literal (the ADBC path sends one query string per page)."""
    if isinstance(v, bool):
        text = "TRUE" if v else "FALSE"
    elif isinstance(v, int):
        text = str(int(v))
    elif isinstance(v, float):
        text = (
            repr(v)
            if math.isfinite(v)
            else f"'{v!r}'::float8".replace("inf", "Infinity").replace("nan", "NaN")
        )
    elif isinstance(v, str):
        text = "'" + v.replace("'", "''") + "'"  # standard_conforming_strings is on (set by the connection)
    elif isinstance(v, dt.datetime):
        text = f"'{v.isoformat()}'::{'timestamptz' if v.tzinfo else 'timestamp'}"
    elif isinstance(v, dt.date):
        text = f"'{v.isoformat()}'::date"
    elif isinstance(v, dt.time):
        text = f"'{v.isoformat()}'::time"
    elif isinstance(v, Decimal):
        text = f"'{v}'::numeric"
    elif isinstance(v, uuid.UUID):
        text = f"'{v}'::uuid"
    elif isinstance(v, bytes | bytearray | memoryview):
        text = f"'\\x{bytes(v).hex()}'::bytea"
    else:
        raise BadRequest(f"sql source: a key value of type {type(v).__name__} cannot order a resumable read")
    return sa.literal_column(text)


def _raw(col: sa.ColumnElement[Any], *, bit: bool = False) -> sa.ColumnElement[Any]:
    """A column as the driver gives it (no SQLAlchemy result processing); a MySQL BIT, which the
    drivers give as bytes, as its number (`b + 0`)."""
    if bit:
        col = sa.type_coerce(col, sa.Integer()) + sa.literal_column("0")
    return sa.type_coerce(col, NullType())


def _short(v: Any, limit: int = 60) -> str:
    text = _text(v) if isinstance(v, dt.timedelta) else repr(v)  # -01:30:00, not timedelta(days=-1, …)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _show_key(names: list[str], values: list[Any]) -> str:
    return ", ".join(f"{n}={_text(v)}" for n, v in zip(names, values, strict=True))


def _sqlite_read_only(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA query_only = ON")


def _mysql_session(dbapi_conn: Any, _record: Any) -> None:
    with contextlib.closing(dbapi_conn.cursor()) as cur:
        cur.execute("SET SESSION TRANSACTION READ ONLY")  # every later transaction, autocommit ones too
        cur.execute("SET time_zone = '+00:00'")  # TIMESTAMP values in UTC, whatever the server's zone


def _driver_message(orig: BaseException | None) -> str:
    """A driver error's text; MySQL drivers' `(1045, "Access denied …")` as `Access denied … (error 1045)`."""
    args = orig.args if orig is not None else ()
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        return f"{args[1]} (error {args[0]})"
    return str(orig)


CONNECTOR = Connector(
    name="sql",
    kind="source",
    summary="a table, view or SELECT of a SQL database (PostgreSQL, SQLite, MySQL…): full or incremental",
    options=SqlOptions,
    factory=SqlSource,
)
