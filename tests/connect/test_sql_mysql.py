"""The SQL database source against a real MariaDB server (`mysql+pymysql://…`): MySQL types into the
lake, incremental loads with ties, resume after a failure, queries, read-only connections, one-line
errors with the password hidden, and pipelines from YAML through the CLI and the HTTP API.

Needs MariaDB (MANARA_TEST_MYSQL_URL: scripts/services.sh starts it; the `mysql_url` fixture skips
without it). Each test works in a fresh utf8mb4 database of its own, dropped after it.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from cli_runner import Cli
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import make_url

from manara.api.app import create_app
from manara.config import Settings
from manara.connect.pipelines import apply_pipeline, committed_state, parse_spec, run_pipeline
from manara.connect.protocol import Chunk, Context
from manara.connect.sources.sql import CONNECTOR, SqlSource
from manara.errors import BadRequest
from manara.govern.principal import Principal
from manara.lake.catalog import identifier
from manara.meta.db import session_scope
from manara.meta.models import Pipeline
from manara.workspace import Workspace

BASE = dt.datetime(2026, 3, 1, 8, 30, 0, 250_000)
STAMPED = dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.UTC)  # TIMESTAMP instants, written at UTC+03:00


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with the loopback host (the MariaDB server) allowed out."""
    return settings.model_copy(update={"egress_allow": ["127.0.0.1"]})


@pytest.fixture
def source_url(mysql_url: str) -> Iterator[str]:
    """A fresh utf8mb4 database (case-insensitive collation, as most are) for the test; dropped after."""
    admin = make_url(mysql_url)
    name = f"manara_t_{uuid.uuid4().hex[:12]}"
    eng = sa.create_engine(admin, poolclass=sa.pool.NullPool)
    with eng.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    yield admin.set(database=name).render_as_string(hide_password=False)
    with eng.connect() as conn:
        conn.exec_driver_sql("SET SESSION lock_wait_timeout = 30")  # never hang on a connection left open
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    eng.dispose()


@pytest.fixture
def engine(source_url: str) -> Iterator[sa.Engine]:
    """A connection that writes the source tables (the source itself cannot)."""
    eng = sa.create_engine(source_url, poolclass=sa.pool.NullPool)
    yield eng
    eng.dispose()


def execute(engine: sa.Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def source(options: dict[str, Any]) -> SqlSource:
    created = CONNECTOR.create(options, Context(tmp_dir=None))
    assert isinstance(created, SqlSource)
    return created


def read_all(options: dict[str, Any], cursor: dict[str, Any] | None = None) -> list[Chunk]:
    return list(source(options).read(cursor))


def rows_of(chunks: list[Chunk]) -> list[dict[str, Any]]:
    return [r for c in chunks if c.batch is not None for r in c.batch.to_pylist()]


def spec(options: dict[str, Any], *, name: str, commit_rows: int = 100_000) -> str:
    return f"""
name: {name}
source:
  type: sql
  options: {json.dumps(options, ensure_ascii=False)}
destination:
  dataset: {name}
  commit_rows: {commit_rows}
"""


def dataset(ws: Workspace, operator: Principal, name: str) -> list[dict[str, Any]]:
    table = ws.catalog.load_table(identifier(operator.tenant, name))
    return sorted(table.scan().to_arrow().to_pylist(), key=lambda r: (r["id"], str(r.get("updated_at"))))


# --- a table of MySQL types -----------------------------------------------------------------------

VISITS_DDL = """
CREATE TABLE src_visits (
  id INT NOT NULL PRIMARY KEY,
  big BIGINT,
  amount DECIMAL(12,2),
  score DOUBLE,
  name VARCHAR(200),
  notes TEXT,
  born DATE,
  seen DATETIME(6),
  stamped TIMESTAMP(6) NULL,
  active BOOLEAN,
  doc JSON,
  photo BLOB,
  slot TIME,
  flag BIT(1)
)
"""
VISIT_COLUMNS = "id, big, amount, score, name, notes, born, seen, stamped, active, doc, photo, slot, flag"


def visit(i: int) -> dict[str, Any]:
    """Row i as the lake should hold it (NULLs scattered in every column but the key)."""
    name = f"مريض رقم {i} — Hôpital Cheikh Zaïd, élève n°{i}" + (" 🩺" if i % 3 == 0 else "")
    return {
        "id": i,
        "big": None if i % 9 == 0 else 9_007_199_254_740_993 + i,  # beyond a double's 53 bits
        "amount": None if i % 11 == 0 else Decimal(f"{'-' if i % 5 == 0 else ''}{i * 3}.{i % 100:02d}"),
        "score": None if i % 13 == 0 else i / 8,
        "name": None if i % 7 == 0 else name,
        "notes": None if i % 4 == 0 else "ملاحظة طويلة، avec des accents : çàéèù. " * (i % 40 + 1),
        "born": None if i % 13 == 0 else dt.date(1950, 1, 1) + dt.timedelta(days=i * 71),
        "seen": None if i % 17 == 0 else BASE + dt.timedelta(minutes=i, microseconds=i),
        "stamped": None if i % 19 == 0 else STAMPED + dt.timedelta(seconds=i * 37, microseconds=i),
        "active": None if i % 23 == 0 else i % 2 == 0,
        "doc": None if i % 29 == 0 else {"i": i, "tags": ["أ", "é"], "nested": {"ok": i % 2 == 0}},
        "photo": None if i % 31 == 0 else bytes(range(i % 256)) + b"\x00\xff",
        "slot": None if i % 37 == 0 else dt.time(i % 24, i % 60, (i * 7) % 60),
        "flag": None if i % 41 == 0 else i % 3 == 0,
    }


def make_visits(engine: sa.Engine, ids: range) -> list[dict[str, Any]]:
    """Insert rows as a client at UTC+03:00 would (TIMESTAMPs are instants: the lake gets them in UTC)."""
    rows = [visit(i) for i in ids]
    params = []
    for r in rows:
        stamped = r["stamped"]
        local = (
            stamped.astimezone(dt.timezone(dt.timedelta(hours=3))).replace(tzinfo=None) if stamped else None
        )
        doc = json.dumps(r["doc"], ensure_ascii=False) if r["doc"] is not None else None
        flag = None if r["flag"] is None else int(r["flag"])
        params.append((*[r[c] for c in ("id", "big", "amount", "score", "name", "notes", "born", "seen")],
                       local, r["active"], doc, r["photo"], r["slot"], flag))  # fmt: skip
    with engine.begin() as conn:
        conn.exec_driver_sql("SET time_zone = '+03:00'")
        conn.exec_driver_sql(
            f"INSERT INTO src_visits ({VISIT_COLUMNS}) VALUES ({', '.join(['%s'] * 14)})", params
        )
    return rows


def parsed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "doc": json.loads(r["doc"]) if r["doc"] is not None else None} for r in rows]


def test_a_table_of_mysql_types_lands_in_the_lake_with_its_values(
    ws: Workspace, operator: Principal, source_url: str, engine: sa.Engine
) -> None:
    execute(engine, VISITS_DDL)
    expected = make_visits(engine, range(1, 301))
    options = {"url": source_url, "table": "src_visits", "batch_rows": 64}
    apply_pipeline(ws, operator, parse_spec(spec(options, name="visits", commit_rows=100)))
    first = run_pipeline(ws, operator, "visits")
    assert (first.status, first.rows_in, first.rows_loaded, first.rows_quarantined) == (
        "succeeded",
        300,
        300,
        0,
    ), first.error
    assert first.commits >= 3
    # Arabic, French and 4-byte emoji text, exact decimals and big integers, µs, UTC instants, bytes
    assert parsed(dataset(ws, operator, "visits")) == expected
    table = ws.catalog.load_table(identifier(operator.tenant, "visits"))
    schema = table.schema().as_arrow()
    text, binary = pa.large_string(), pa.large_binary()  # as the lake's Iceberg tables read back
    assert {f.name: f.type for f in schema} == {
        "id": pa.int64(), "big": pa.int64(), "amount": pa.decimal128(12, 2), "score": pa.float64(),
        "name": text, "notes": text, "born": pa.date32(), "seen": pa.timestamp("us"),
        "stamped": pa.timestamp("us", tz="UTC"), "active": pa.bool_(), "doc": text, "photo": binary,
        "slot": pa.time64("us"), "flag": pa.bool_(),
    }  # fmt: skip
    state = committed_state(table, "visits")
    assert state is not None
    assert state["cursor"] == {"key": ["id"], "last": [300], "types": [None], "complete": True}
    # full mode reads the table once: a rerun loads nothing (follow new rows with incremental mode)
    make_visits(engine, range(301, 311))
    again = run_pipeline(ws, operator, "visits")
    assert (again.status, again.rows_loaded) == ("succeeded", 0)


def test_values_mysql_keeps_but_their_type_cannot_go_to_the_quarantine(
    source_url: str, engine: sa.Engine
) -> None:
    execute(
        engine,
        "CREATE TABLE odd (id INT PRIMARY KEY, active TINYINT(1), born DATE, slot TIME(6), "
        "counter BIGINT UNSIGNED, mask BIT(8), y YEAR)",
        "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'",  # lets in a zero date, as old applications wrote
        "INSERT INTO odd VALUES (1, 1, '2024-02-29', '23:59:59.5', 7, b'10101010', 2026),"
        " (2, 2, '2024-01-01', '00:00:00', 8, b'1', 1999), (3, 0, '0000-00-00', '10:00:00', 9, NULL, NULL),"
        " (4, 0, '2024-01-02', '-01:30:00', 10, NULL, NULL), (5, 1, '2024-01-03', '838:59:59', 11, NULL, NULL),"
        " (6, NULL, NULL, NULL, 18446744073709551615, NULL, NULL)",
    )
    [chunk] = read_all({"url": source_url, "table": "odd"})
    assert chunk.batch is not None and chunk.rejects is not None
    assert chunk.batch.to_pylist() == [
        {"id": 1, "active": True, "born": dt.date(2024, 2, 29), "slot": dt.time(23, 59, 59, 500_000),
         "counter": 7, "mask": 170, "y": 2026},
    ]  # fmt: skip
    bad = {r["position"]: r for r in chunk.rejects.to_pylist()}
    assert sorted(bad) == [f"table odd id={i}" for i in range(2, 7)]
    assert "column 'active': 2 is not a bool" in bad["table odd id=2"]["reason"]
    assert "column 'born': '0000-00-00'" in bad["table odd id=3"]["reason"]
    assert "column 'slot': -01:30:00 is not a time64[us]" in bad["table odd id=4"]["reason"]
    assert json.loads(bad["table odd id=4"]["payload"])["slot"] == "-01:30:00"  # as MySQL writes it
    assert json.loads(bad["table odd id=5"]["payload"])["slot"] == "838:59:59"
    assert "column 'counter': 18446744073709551615 is not a int64" in bad["table odd id=6"]["reason"]


# --- incremental loads, resume ----------------------------------------------------------------------


PATIENTS_DDL = """
CREATE TABLE src_patients (
  id INT NOT NULL PRIMARY KEY,
  name TEXT,
  amount DECIMAL(12,2),
  updated_at DATETIME(6) NOT NULL,
  KEY by_update (updated_at, id)
)
"""


def patient(i: int, minute: int | None = None) -> dict[str, Any]:
    return {
        "id": i,
        "name": None if i % 7 == 0 else f"مريض رقم {i} — ⴰⵎⵓⴹⵉ",
        "amount": None if i % 11 == 0 else Decimal(f"{i * 3}.{i % 100:02d}"),
        "updated_at": BASE + dt.timedelta(minutes=i // 10 if minute is None else minute),  # ties of 10
    }


def insert_patients(engine: sa.Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO src_patients (id, name, amount, updated_at) VALUES (%s, %s, %s, %s)",
            [(r["id"], r["name"], r["amount"], r["updated_at"]) for r in rows],
        )


def make_patients(engine: sa.Engine, n: int) -> list[dict[str, Any]]:
    execute(engine, PATIENTS_DDL)
    rows = [patient(i) for i in range(1, n + 1)]
    insert_patients(engine, rows)
    return rows


def test_incremental_loads_ties_and_new_rows_once(
    ws: Workspace, operator: Principal, source_url: str, engine: sa.Engine
) -> None:
    n = 1000
    expected = make_patients(engine, n)
    options = {"url": source_url, "table": "src_patients", "mode": "incremental",
               "cursor_column": "updated_at", "batch_rows": 64}  # fmt: skip
    apply_pipeline(ws, operator, parse_spec(spec(options, name="patients", commit_rows=200)))
    first = run_pipeline(ws, operator, "patients")
    assert (first.status, first.rows_loaded) == ("succeeded", n), first.error
    assert dataset(ws, operator, "patients") == expected
    state = committed_state(ws.catalog.load_table(identifier(operator.tenant, "patients")), "patients")
    assert state is not None and state["cursor"]["key"] == ["updated_at", "id"]  # the table's primary key
    assert state["cursor"]["last"] == [(BASE + dt.timedelta(minutes=n // 10)).isoformat(), n]
    # five new rows share the cursor value of the last row loaded (greater ids), five come later
    last_minute = n // 10
    new = [patient(i, minute=last_minute) for i in range(n + 1, n + 6)]
    new += [patient(i, minute=last_minute + 1) for i in range(n + 6, n + 11)]
    insert_patients(engine, new)
    second = run_pipeline(ws, operator, "patients")
    assert (second.status, second.rows_loaded) == ("succeeded", 10), second.error
    assert [r["id"] for r in dataset(ws, operator, "patients")] == list(range(1, n + 11))
    # an update that moves a row's cursor forward appends its new version
    execute(engine, f"UPDATE src_patients SET name = 'تم التحديث', updated_at = '{BASE + dt.timedelta(days=1)}'"
                    " WHERE id = 5")  # fmt: skip
    third = run_pipeline(ws, operator, "patients")
    assert (third.status, third.rows_loaded) == ("succeeded", 1)
    assert [r["name"] for r in dataset(ws, operator, "patients") if r["id"] == 5] == [
        "مريض رقم 5 — ⴰⵎⵓⴹⵉ",
        "تم التحديث",
    ]
    assert run_pipeline(ws, operator, "patients").rows_loaded == 0


def test_pages_are_read_through_the_index(source_url: str, engine: sa.Engine) -> None:
    """Every page query is an index range read, never a scan and sort of the whole table (MariaDB does
    that for row values, `(updated_at, id) > (…)`): a full load stays linear in the table's size."""
    make_patients(engine, 5000)
    execute(engine, "ANALYZE TABLE src_patients")
    src = source({"url": source_url, "table": "src_patients", "mode": "incremental",
                  "cursor_column": "updated_at", "batch_rows": 500})  # fmt: skip
    pages: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if "ORDER BY" in statement and "LIMIT" in statement:
            pages.append((statement, params))

    sa.event.listen(src.engine, "before_cursor_execute", seen)
    assert len(rows_of(list(src.read(None)))) == 5000
    assert len(pages) == 11  # ten full pages, then an empty one
    with engine.connect() as conn:
        for statement, params in pages[1:]:
            [plan] = conn.exec_driver_sql("EXPLAIN " + statement, params).mappings().all()
            assert plan["type"] == "range" and plan["key"] == "by_update", plan
            assert "filesort" not in (plan["Extra"] or ""), plan


@pytest.mark.parametrize(
    "options",
    [
        {"table": "src_patients"},
        {"table": "src_patients", "mode": "incremental", "cursor_column": "updated_at"},
        {
            "query": "SELECT id, name, updated_at FROM src_patients",
            "mode": "incremental",
            "cursor_column": "updated_at",
        },  # no primary key: ties of 10 read as whole groups
        {"query": "SELECT * FROM src_patients WHERE id > 0", "primary_key": "id"},
    ],  # fmt: skip
    ids=["full", "incremental", "incremental-no-pk", "query-full"],
)
def test_a_read_resumes_after_any_chunk_without_loss_or_duplicate(
    source_url: str, engine: sa.Engine, options: dict[str, Any]
) -> None:
    make_patients(engine, 400)
    chunks = read_all({"url": source_url, "batch_rows": 37, **options})
    ids = [r["id"] for r in rows_of(chunks)]
    assert sorted(ids) == list(range(1, 401))
    assert len(chunks) >= 10 and all(c.rejects is None for c in chunks)
    if "primary_key" in options or "table" in options:
        assert all(c.batch is not None and c.batch.num_rows <= 37 for c in chunks)  # bounded pages
    for k in (0, 1, len(chunks) // 2, len(chunks) - 2, len(chunks) - 1):
        committed = json.loads(json.dumps(chunks[k].cursor))  # as the pipeline commits it
        after = read_all({"url": source_url, "batch_rows": 37, **options}, committed)
        resumed = [r["id"] for r in rows_of(chunks[: k + 1]) + rows_of(after)]
        assert sorted(resumed) == list(range(1, 401)), f"resumed after chunk {k}"


def test_a_run_cut_off_midway_resumes_exactly_once(
    ws: Workspace, operator: Principal, source_url: str, engine: sa.Engine
) -> None:
    """The database drops the source's connection in the middle of a run (a restart, a network cut):
    the run fails with a readable error, keeps what it committed, and the next run loads the rest."""
    n = 1000
    make_patients(engine, n)
    database = make_url(source_url).database
    options = {"url": source_url, "table": "src_patients", "batch_rows": 50}
    apply_pipeline(ws, operator, parse_spec(spec(options, name="patients", commit_rows=100)))
    killed: list[int] = []

    def cut(rows_in: int) -> None:
        if rows_in >= 400 and not killed:
            with engine.connect() as conn:
                ids = conn.exec_driver_sql(
                    "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
                    (database,),
                ).scalars()
                killed.extend(ids)
                for i in killed:
                    conn.exec_driver_sql(f"KILL CONNECTION {int(i)}")

    first = run_pipeline(ws, operator, "patients", progress=cut)
    assert len(killed) == 1  # the source's one connection
    error = first.error or ""
    assert first.status == "failed" and "sql source: cannot read table src_patients in" in error
    assert "Lost connection" in error or "gone away" in error, error
    assert f":{make_url(source_url).password}@" not in error and "\n" not in error
    assert 0 < first.rows_loaded < n and first.rows_loaded % 100 == 0
    second = run_pipeline(ws, operator, "patients")
    assert (second.status, second.rows_loaded) == ("succeeded", n - first.rows_loaded), second.error
    assert [r["id"] for r in dataset(ws, operator, "patients")] == list(range(1, n + 1))


def label(i: int) -> str:
    """'a', 'A', 'a ', 'A ', 'a', 'A', then 'b'…: six rows per letter, equal in the database's eyes."""
    text = chr(97 + i // 6) + (" " if i % 4 >= 2 else "")
    return text.upper() if i % 2 else text


def test_ties_follow_the_collation_of_the_cursor_column(source_url: str, engine: sa.Engine) -> None:
    """Without a primary key a page never ends inside a group of equal cursor values, equal as the
    database compares them: 'k', 'K' and 'k ' are one value in a case-insensitive, space-padded
    collation. Each of the 90 rows is read once, whatever the page size."""
    execute(engine, "CREATE TABLE tags (n INT NOT NULL, label VARCHAR(20) NOT NULL)")
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO tags VALUES (%s, %s)", [(i, label(i)) for i in range(90)])
    options = {"url": source_url, "query": "SELECT n, label FROM tags", "mode": "incremental",
               "cursor_column": "label"}  # fmt: skip
    for batch_rows in (2, 4, 5, 7, 100):
        chunks = read_all({**options, "batch_rows": batch_rows})
        got = sorted(r["n"] for r in rows_of(chunks))
        assert got == list(range(90)), f"batch_rows {batch_rows}"
        assert read_all({**options, "batch_rows": batch_rows}, chunks[-1].cursor) == []


# --- queries, identifiers ---------------------------------------------------------------------------


def test_a_query_with_mysql_syntax_loads_incrementally(
    ws: Workspace, operator: Principal, source_url: str, engine: sa.Engine
) -> None:
    execute(
        engine,
        "CREATE TABLE `Order Lines` (id INT PRIMARY KEY, `select` VARCHAR(20), `الاسم` VARCHAR(50), "
        "person INT, price DECIMAL(10,3), paid TINYINT(1), at DATETIME(6) NOT NULL)",
        "CREATE TABLE people (id INT PRIMARY KEY, city VARCHAR(40))",
        "INSERT INTO people VALUES (1, 'Fès'), (2, 'الرباط'), (3, 'Oujda')",
    )
    lines = [
        (i, f"a%:{i}", f"سطر {i}", i % 3 + 1, Decimal(i) / 8, i % 2, BASE + dt.timedelta(seconds=i // 3))
        for i in range(1, 61)
    ]
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO `Order Lines` VALUES (%s, %s, %s, %s, %s, %s, %s)", lines)
    query = (
        "SELECT l.id, l.`select` AS s, l.`الاسم` AS name, p.city, l.price * 2 AS doubled, l.paid, l.at\n"
        "FROM `Order Lines` AS l JOIN people p ON p.id = l.person  # a comment: the city of the line\n"
        "WHERE l.`select` LIKE 'a%:%' AND p.city <> 'Oujda' -- and another\n;"
    )
    options = {"url": source_url, "query": query, "mode": "incremental", "cursor_column": "at",
               "primary_key": ["id"], "batch_rows": 6}  # fmt: skip
    apply_pipeline(ws, operator, parse_spec(spec(options, name="lines")))
    result = run_pipeline(ws, operator, "lines")
    expected = [
        {"id": i, "s": s, "name": name, "city": {1: "Fès", 2: "الرباط"}[person], "doubled": price * 2,
         "paid": bool(paid), "at": at}
        for i, s, name, person, price, paid, at in lines if person != 3
    ]  # fmt: skip
    assert (result.status, result.rows_loaded) == ("succeeded", len(expected)), result.error
    assert dataset(ws, operator, "lines") == expected
    schema = ws.catalog.load_table(identifier(operator.tenant, "lines")).schema().as_arrow()
    assert schema.field("paid").type == pa.bool_() and schema.field("at").type == pa.timestamp("us")
    assert pa.types.is_decimal(schema.field("doubled").type) and schema.field("doubled").type.scale == 3
    # the same table read by name, plain and database-qualified: backticks are SQLAlchemy's
    database = make_url(source_url).database
    for table in ("Order Lines", f"{database}.Order Lines"):
        got = rows_of(read_all({"url": source_url, "table": table, "batch_rows": 7}))
        assert [(r["id"], r["select"], r["الاسم"]) for r in got] == [(i, s, n) for i, s, n, *_ in lines]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT * FROM t FOR UPDATE", "locking clause"),
        ("SELECT * FROM t LOCK IN SHARE MODE", "locking clause"),
        ("SELECT id INTO @x FROM t", "SELECT … INTO"),
        ("SELECT * FROM t INTO OUTFILE '/tmp/out.txt'", "query"),
        ("SELECT id FROM t /*! INTO OUTFILE '/tmp/out.txt' */", "executable comments"),
        ("SELECT id FROM t /*M!100000 FOR UPDATE */", "executable comments"),
        ("SELECT 1 AS id; DO SLEEP(1)", "query"),
        ("DELETE FROM t", "must be a SELECT, not DELETE"),
    ],
)
def test_queries_that_could_write_or_lock_are_refused(query: str, message: str) -> None:
    options = {"url": "mysql+pymysql://reader:secret@db.example/crm", "query": query, "primary_key": "id"}
    with pytest.raises(BadRequest, match=message) as caught:
        CONNECTOR.parse_options(options)
    assert "secret" not in caught.value.detail and "\n" not in caught.value.detail


# --- safety and errors ------------------------------------------------------------------------------


def test_mysql_connections_are_read_only(source_url: str, engine: sa.Engine) -> None:
    execute(
        engine,
        "CREATE TABLE audit_log (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME)",
        "CREATE FUNCTION stamp() RETURNS INT MODIFIES SQL DATA "
        "BEGIN INSERT INTO audit_log (at) VALUES (NOW()); RETURN LAST_INSERT_ID(); END",
    )
    # a SELECT that writes through a function is stopped by the read-only session
    with pytest.raises(
        BadRequest, match=r"Cannot execute statement in a READ ONLY transaction \(error 1792\)"
    ):
        read_all({"url": source_url, "query": "SELECT stamp() AS id", "primary_key": "id"})
    # and so is anything else on the source's connections, in a transaction or in autocommit
    src = source({"url": source_url, "table": "audit_log"})
    for statement in (
        "INSERT INTO audit_log (at) VALUES (NOW())",
        "UPDATE audit_log SET at = NOW()",
        "CREATE TABLE copied (a INT)",
        "CREATE TEMPORARY TABLE scratch (a INT)",
        "DROP TABLE audit_log",
    ):
        for autocommit in (False, True):
            with src.engine.connect() as conn, pytest.raises(sa.exc.OperationalError, match="1792"):
                if autocommit:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql(statement)
    with src.engine.connect() as conn:  # TIMESTAMPs are read in UTC whatever the server's zone
        assert conn.exec_driver_sql("SELECT @@session.time_zone").scalar() == "+00:00"
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM audit_log").scalar() == 0
        assert conn.exec_driver_sql("SHOW TABLES").scalars().all() == ["audit_log"]


def test_bad_password_database_and_table_are_one_line_errors(
    ws: Workspace, operator: Principal, source_url: str, engine: sa.Engine
) -> None:
    make_patients(engine, 3)
    url = make_url(source_url)
    password = str(url.password)
    wrong = url.set(password="Wr0ng-S3cret!")
    with pytest.raises(BadRequest) as caught:
        read_all({"url": wrong.render_as_string(hide_password=False), "table": "src_patients"})
    detail = caught.value.detail
    assert detail.startswith(
        f"sql source: cannot connect to {wrong.render_as_string(hide_password=True)}: "
        f"Access denied for user '{url.username}'@"
    ), detail
    assert detail.endswith("(using password: YES) (error 1045)") and "Wr0ng-S3cret!" not in detail
    # the right password: any text of the driver's that holds it (here, perhaps, the user's or the
    # database's name) shows *** in its place
    cases = [
        (url.set(database="nosuchdb_x"), "src_patients", "Unknown database 'nosuchdb_x' (error 1049)"),
        (url, "nosuchdb_x.src_patients", "table 'nosuchdb_x.src_patients' does not exist in"),
        (url, "nope", f"table 'nope' does not exist in {url.render_as_string(hide_password=True)}"),
    ]
    for options_url, table, message in cases:
        with pytest.raises(BadRequest) as caught:
            read_all({"url": options_url.render_as_string(hide_password=False), "table": table})
        detail = caught.value.detail
        assert detail.startswith("sql source: ") and message in detail, detail
        assert f":{password}@" not in detail and "\n" not in detail
    with pytest.raises(
        BadRequest, match=r"column 'changed' is not in table src_patients \(columns: id, name"
    ):
        read_all(
            {"url": source_url, "table": "src_patients", "mode": "incremental", "cursor_column": "changed"}
        )
    with pytest.raises(
        BadRequest, match=r"the query failed on .*: Unknown column 'nope' in '[^']+' \(error 1054\)$"
    ):
        read_all({"url": source_url, "query": "SELECT nope FROM src_patients", "primary_key": "nope"})
    # through a pipeline: the declaration is accepted (the source is not read then), the run fails
    options = {"url": wrong.render_as_string(hide_password=False), "table": "src_patients"}
    apply_pipeline(ws, operator, parse_spec(spec(options, name="remote")))
    result = run_pipeline(ws, operator, "remote")
    error = result.error or ""
    assert result.status == "failed" and "Access denied" in error and "(error 1045)" in error
    assert "Wr0ng-S3cret!" not in error


# --- pipelines through the CLI and the HTTP API -----------------------------------------------------


def test_a_yaml_pipeline_through_the_cli(
    ws: Workspace, settings: Settings, database_url: str | None, source_url: str, engine: sa.Engine,
    tmp_path: Path,
) -> None:  # fmt: skip
    make_patients(engine, 250)
    cli = Cli(settings.home, database_url)
    cli.env["MANARA_EGRESS_ALLOW"] = '["127.0.0.1"]'
    url = make_url(source_url)
    cli.env["CLINIC_DB_PASSWORD"] = str(url.password)  # the spec names the variable, not the password
    path = tmp_path / "patients.yaml"
    path.write_text(
        "name: patients\n"
        "source:\n"
        "  type: sql\n"
        "  options:\n"
        f"    url: mysql+pymysql://{url.username}:${{CLINIC_DB_PASSWORD}}@{url.host}:{url.port}/{url.database}\n"
        "    table: src_patients\n"
        "    mode: incremental\n"
        "    cursor_column: updated_at\n"
        "    batch_rows: 40\n"
        "destination: {dataset: patients, commit_rows: 100}\n",
        encoding="utf-8",
    )
    assert "created" in cli.ok("pipeline", "apply", str(path)).stdout
    run = cli.json("pipeline", "run", "patients", "--json")
    assert (run["status"], run["rows_in"], run["rows_loaded"], run["rows_quarantined"]) == (
        "succeeded",
        250,
        250,
        0,
    ), run["error"]
    insert_patients(engine, [patient(i) for i in range(251, 261)])
    assert cli.json("pipeline", "run", "patients", "--json")["rows_loaded"] == 10
    status = cli.json("pipeline", "status", "patients", "--json")
    assert status["committed"]["cursor"]["last"] == [(BASE + dt.timedelta(minutes=26)).isoformat(), 260]
    with session_scope(ws.engine) as session:  # the spec as stored names the variable, not the password
        stored = session.scalars(select(Pipeline.spec).where(Pipeline.name == "patients")).one()
    assert "${CLINIC_DB_PASSWORD}" in stored and f":{url.password}@" not in stored
    expected = [patient(i) for i in range(1, 261)]
    total = sum(r["amount"] for r in expected if r["amount"] is not None)
    out = cli.ok("sql", "SELECT count(*) AS n, count(DISTINCT id) AS ids, sum(amount) AS total FROM patients",
                 "-o", "csv").stdout  # fmt: skip
    assert out.split() == ["n,ids,total", f"260,260,{total}"]
    arabic = cli.ok("sql", "SELECT name FROM patients WHERE id = 1", "-o", "csv").stdout
    assert arabic.split("\n")[1] == "مريض رقم 1 — ⴰⵎⵓⴹⵉ"


def test_a_yaml_pipeline_through_the_http_api(
    client: TestClient, ws: Workspace, admin_token: str, source_url: str, engine: sa.Engine
) -> None:
    make_patients(engine, 120)
    url = make_url(source_url)
    headers = {"Authorization": f"Bearer {admin_token}", "Content-Type": "application/yaml"}
    options = {"url": source_url, "table": "src_patients", "mode": "incremental",
               "cursor_column": "updated_at", "batch_rows": 50}  # fmt: skip
    body = spec(options, name="patients", commit_rows=60)
    created = client.put("/api/v1/pipelines/patients", headers=headers, content=body.encode())
    assert created.status_code == 201, created.text
    assert (
        f"{url.username}:***@" in json.dumps(created.json()["spec"])
        and f":{url.password}@" not in created.text
    )
    ran = client.post("/api/v1/pipelines/patients/runs", headers=headers)
    assert ran.status_code == 200 and ran.headers["X-Manara-Run-Status"] == "succeeded", ran.text
    assert (ran.json()["rows_loaded"], ran.json()["commits"]) == (120, 2)
    rows = sorted(
        ws.catalog.load_table(identifier("default", "patients")).scan().to_arrow().to_pylist(),
        key=lambda r: r["id"],
    )
    assert rows == [patient(i) for i in range(1, 121)]
    status = client.get("/api/v1/pipelines/patients", headers=headers).json()
    assert status["committed"]["cursor"]["last"][1] == 120 and status["last_run"]["status"] == "succeeded"
    again = client.post("/api/v1/pipelines/patients/runs", headers=headers).json()
    assert (again["status"], again["rows_loaded"]) == ("succeeded", 0)
    # a wrong password is accepted at declaration (the database is not read then); the run says why
    wrong = make_url(source_url).set(password="Wr0ng-S3cret!").render_as_string(hide_password=False)
    bad_body = spec({**options, "url": wrong}, name="broken")
    assert (
        client.put("/api/v1/pipelines/broken", headers=headers, content=bad_body.encode()).status_code == 201
    )
    failed = client.post("/api/v1/pipelines/broken/runs", headers=headers)
    assert failed.status_code == 200 and failed.headers["X-Manara-Run-Status"] == "failed"
    assert "Access denied" in failed.json()["error"] and "Wr0ng-S3cret!" not in failed.text


@pytest.fixture
def client(ws: Workspace) -> Iterator[TestClient]:
    with TestClient(create_app(ws.settings, ws)) as c:
        yield c
