"""SQL database source: full and incremental loads through real pipelines, resume after any chunk,
identifiers that need quoting, and one-line errors for bad options, tables and databases.

Runs on SQLite always; on PostgreSQL too when MANARA_TEST_DATABASE_URL is set (scripts/test.sh):
the test's fresh PostgreSQL database (`database_url`) is then the source database as well.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from manara.config import Settings
from manara.connect.pipelines import apply_pipeline, committed_state, parse_spec, run_pipeline
from manara.connect.protocol import Chunk, Context
from manara.connect.registry import get_connector
from manara.connect.sources import sql as sql_module
from manara.connect.sources.sql import CONNECTOR, SqlOptions, SqlSource
from manara.errors import BadRequest, Forbidden
from manara.govern.principal import Principal
from manara.lake.catalog import identifier
from manara.workspace import Workspace

N = 1000
BASE = dt.datetime(2026, 3, 1, 8, 30, 0, 250_000)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with the loopback host allowed out (the PostgreSQL source database)."""
    return settings.model_copy(update={"egress_allow": ["127.0.0.1"]})


# on PostgreSQL every test runs with both ways of reading pages: same rows, same types
ENGINES = ["sqlalchemy", "adbc"] if os.environ.get("MANARA_TEST_DATABASE_URL") else ["sqlalchemy"]


@pytest.fixture(autouse=True, params=ENGINES)
def read_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The `engine` every SqlSource of the test uses (whatever its options say: auto picks adbc)."""
    engine: str = request.param
    init = SqlSource.__init__

    def forced(self: SqlSource, options: SqlOptions, context: Context) -> None:
        if options.engine != "sqlalchemy" or engine == "sqlalchemy":
            options = options.model_copy(update={"engine": engine})
        init(self, options, context)

    monkeypatch.setattr(SqlSource, "__init__", forced)
    return engine


@pytest.fixture
def source_url(tmp_path: Path, database_url: str | None) -> str:
    """The test's PostgreSQL database when there is one, else a SQLite file."""
    return database_url or f"sqlite:///{tmp_path / 'source.db'}"


@pytest.fixture
def engine(source_url: str) -> Iterator[sa.Engine]:
    eng = sa.create_engine(source_url, poolclass=sa.pool.NullPool)
    yield eng
    eng.dispose()


def patients_table(meta: sa.MetaData, name: str = "src_patients") -> sa.Table:
    return sa.Table(
        name,
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.Text),
        sa.Column("amount", sa.Numeric(12, 2)),
        sa.Column("updated_at", sa.DateTime),
        sa.Column("born", sa.Date),
        sa.Column("active", sa.Boolean),
        sa.Column("score", sa.Float),
    )


def patient(i: int, minute: int | None = None) -> dict[str, Any]:
    return {
        "id": i,
        "name": None if i % 7 == 0 else f"مريض رقم {i} — ⴰⵎⵓⴹⵉ",
        "amount": None if i % 11 == 0 else Decimal(f"{i * 3}.{i % 100:02d}"),
        "updated_at": BASE + dt.timedelta(minutes=i // 10 if minute is None else minute),  # ties of 10
        "born": None if i % 13 == 0 else dt.date(1950, 1, 1) + dt.timedelta(days=i * 7),
        "active": None if i % 17 == 0 else i % 2 == 0,
        "score": i / 8,
    }


def make_patients(engine: sa.Engine, n: int = N, name: str = "src_patients") -> tuple[sa.Table, list[dict]]:
    table = patients_table(sa.MetaData(), name)
    table.create(engine)
    rows = [patient(i) for i in range(1, n + 1)]
    with engine.begin() as conn:
        if rows:
            conn.execute(table.insert(), rows)
    return table, rows


def spec(options: dict[str, Any], *, commit_rows: int = 100_000, name: str = "patients") -> str:
    return f"""
name: {name}
source:
  type: sql
  options: {json.dumps(options, ensure_ascii=False)}
destination:
  dataset: {name}
  commit_rows: {commit_rows}
"""


def dataset_rows(ws: Workspace, operator: Principal, name: str = "patients") -> list[dict]:
    table = ws.catalog.load_table(identifier(operator.tenant, name))
    return sorted(table.scan().to_arrow().to_pylist(), key=lambda r: (r["id"], r["updated_at"]))


def source(options: dict[str, Any]) -> SqlSource:
    created = CONNECTOR.create(options, Context(tmp_dir=None))
    assert isinstance(created, SqlSource)
    return created


def chunk_ids(chunks: list[Chunk]) -> list[int]:
    return [i for c in chunks if c.batch is not None for i in c.batch.column("id").to_pylist()]


def test_a_table_loads_whole_with_its_values_and_types(
    ws: Workspace, operator: Principal, source_url: str, engine: sa.Engine
) -> None:
    _, expected = make_patients(engine)
    options = {"url": source_url, "table": "src_patients", "batch_rows": 128}
    apply_pipeline(ws, operator, parse_spec(spec(options, commit_rows=300)))
    first = run_pipeline(ws, operator, "patients")
    assert (first.status, first.rows_in, first.rows_loaded, first.rows_quarantined) == (
        "succeeded",
        N,
        N,
        0,
    ), first.error
    assert first.commits >= 3  # several groups, each with its cursor
    assert dataset_rows(ws, operator) == expected  # Arabic and Tifinagh text, decimals, NULLs, µs
    schema = ws.catalog.load_table(identifier(operator.tenant, "patients")).schema().as_arrow()
    assert schema.field("amount").type == pa.decimal128(12, 2)
    assert schema.field("updated_at").type == pa.timestamp("us")
    assert schema.field("born").type == pa.date32() and schema.field("active").type == pa.bool_()
    state = committed_state(ws.catalog.load_table(identifier(operator.tenant, "patients")), "patients")
    assert state is not None
    assert state["cursor"] == {"key": ["id"], "last": [N], "types": [None], "complete": True}
    # full mode reads a snapshot once: a rerun loads nothing, even after new rows (use incremental)
    assert run_pipeline(ws, operator, "patients").rows_loaded == 0
    with engine.begin() as conn:
        conn.execute(patients_table(sa.MetaData()).insert(), [patient(N + 1)])
    again = run_pipeline(ws, operator, "patients")
    assert (again.status, again.rows_loaded) == ("succeeded", 0)


def test_incremental_loads_new_rows_ties_and_changed_rows(
    ws: Workspace, operator: Principal, source_url: str, engine: sa.Engine
) -> None:
    table, expected = make_patients(engine)
    options = {"url": source_url, "table": "src_patients", "mode": "incremental",
               "cursor_column": "updated_at", "primary_key": ["id"], "batch_rows": 64}  # fmt: skip
    apply_pipeline(ws, operator, parse_spec(spec(options, commit_rows=200)))
    assert run_pipeline(ws, operator, "patients").rows_loaded == N
    assert dataset_rows(ws, operator) == expected
    # new rows: five share the cursor value of the last row loaded (greater ids), five are later
    last_minute = N // 10
    new = [patient(i, minute=last_minute) for i in range(N + 1, N + 6)]
    new += [patient(i, minute=last_minute + 1) for i in range(N + 6, N + 11)]
    with engine.begin() as conn:
        conn.execute(table.insert(), new)
    second = run_pipeline(ws, operator, "patients")
    assert (second.status, second.rows_loaded) == ("succeeded", 10), second.error
    assert [r["id"] for r in dataset_rows(ws, operator)] == list(range(1, N + 11))
    # an update that moves a row's cursor forward loads its new version again (append of changes)
    with engine.begin() as conn:
        conn.execute(
            table.update()
            .where(table.c.id == 5)
            .values(name="تم التحديث", updated_at=BASE + dt.timedelta(days=1))
        )
    third = run_pipeline(ws, operator, "patients")
    assert third.rows_loaded == 1
    versions = [r for r in dataset_rows(ws, operator) if r["id"] == 5]
    assert [v["name"] for v in versions] == ["مريض رقم 5 — ⴰⵎⵓⴹⵉ", "تم التحديث"]
    assert run_pipeline(ws, operator, "patients").rows_loaded == 0


@pytest.mark.parametrize(
    "options",
    [
        {"table": "src_patients"},  # full: the table's primary key
        {"table": "src_patients", "mode": "incremental", "cursor_column": "updated_at"},  # + declared pk
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
    src = source({"url": source_url, "batch_rows": 37, **options})
    chunks = list(src.read(None))
    assert sorted(chunk_ids(chunks)) == list(range(1, 401))
    assert len(chunks) >= 10 and all(c.rejects is None for c in chunks)
    for k in (0, 1, len(chunks) // 2, len(chunks) - 2, len(chunks) - 1):
        committed = json.loads(json.dumps(chunks[k].cursor))  # as the pipeline commits it
        after = list(source({"url": source_url, "batch_rows": 37, **options}).read(committed))
        ids = chunk_ids(chunks[: k + 1]) + chunk_ids(after)
        assert sorted(ids) == list(range(1, 401)), f"resumed after chunk {k}"


def test_identifiers_are_quoted_and_queries_read_as_sub_selects(
    ws: Workspace, operator: Principal, source_url: str, engine: sa.Engine, database_url: str | None
) -> None:
    odd = sa.Table(
        "Order Lines",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("select", sa.Text),
        sa.Column("الاسم", sa.Text),
    )
    odd.create(engine)
    with engine.begin() as conn:
        conn.execute(
            odd.insert(), [{"id": i, "select": f"a%:{i}", "الاسم": f"سطر {i}"} for i in range(1, 51)]
        )
    schema = "public" if database_url else "main"
    got = list(source({"url": source_url, "table": f"{schema}.Order Lines", "batch_rows": 7}).read(None))
    rows = [r for c in got if c.batch is not None for r in c.batch.to_pylist()]
    assert rows == [{"id": i, "select": f"a%:{i}", "الاسم": f"سطر {i}"} for i in range(1, 51)]
    query = (
        'SELECT id, "select" AS s, "الاسم" AS name FROM "Order Lines"\n'
        "WHERE \"select\" LIKE 'a%:%' AND id <= 20 -- a comment\n;"
    )
    options = {
        "url": source_url,
        "query": query,
        "mode": "incremental",
        "cursor_column": "id",
        "batch_rows": 6,
    }
    apply_pipeline(ws, operator, parse_spec(spec(options, name="lines")))
    result = run_pipeline(ws, operator, "lines")
    assert (result.status, result.rows_loaded) == ("succeeded", 20), result.error
    loaded = dataset_rows_by_id(ws, operator, "lines")
    assert loaded[0] == {"id": 1, "s": "a%:1", "name": "سطر 1"} and len(loaded) == 20


def dataset_rows_by_id(ws: Workspace, operator: Principal, name: str) -> list[dict]:
    table = ws.catalog.load_table(identifier(operator.tenant, name))
    return sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"])


def test_an_empty_table_still_gives_its_schema(source_url: str, engine: sa.Engine) -> None:
    make_patients(engine, 0)
    src = source({"url": source_url, "table": "src_patients"})
    chunks = list(src.read(None))
    assert len(chunks) == 1 and chunks[0].batch is not None and chunks[0].batch.num_rows == 0
    assert chunks[0].batch.schema == src.schema()
    assert src.schema().field("amount").type == pa.decimal128(12, 2)
    assert src.schema().field("updated_at").type == pa.timestamp("us")
    assert chunks[0].cursor["complete"] is True
    incremental = source({"url": source_url, "table": "src_patients", "mode": "incremental",
                          "cursor_column": "updated_at"})  # fmt: skip
    assert list(incremental.read(None)) == []


def test_values_that_do_not_fit_their_column_go_to_quarantine(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'loose.db'}"
    eng = sa.create_engine(url)
    with eng.begin() as conn:  # SQLite keeps whatever it is given, whatever the declared type
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, at TIMESTAMP, ok BOOLEAN)")
        conn.exec_driver_sql(
            "INSERT INTO t VALUES (1, 10, '2026-01-02 03:04:05', 1), (2, 'abc', '2026-01-02T03:04:05', 0),"
            " (3, 30, 'yesterday', 1), (4, 40, NULL, NULL)"
        )
    eng.dispose()
    chunks = list(source({"url": url, "table": "t"}).read(None))
    batch, rejects = chunks[0].batch, chunks[0].rejects
    assert batch is not None and rejects is not None
    assert batch.to_pylist() == [
        {"id": 1, "n": 10, "at": dt.datetime(2026, 1, 2, 3, 4, 5), "ok": True},
        {"id": 4, "n": 40, "at": None, "ok": None},
    ]
    bad = rejects.to_pylist()
    assert [r["position"] for r in bad] == ["table t id=2", "table t id=3"]
    assert "column 'n'" in bad[0]["reason"] and "'abc'" in bad[0]["reason"]
    assert json.loads(bad[1]["payload"])["at"] == "yesterday"
    assert chunks[-1].cursor["last"] == [4]  # the quarantined rows are behind the cursor: not re-read


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"table": "t", "query": "SELECT 1"}, "not both"),
        ({}, "give a table or a query"),
        ({"query": "DELETE FROM src_patients"}, "must be a SELECT, not DELETE"),
        ({"query": "SELECT 1 AS id; DROP TABLE src_patients", "primary_key": "id"}, "one SELECT statement"),
        ({"query": "SELECT * FROM t; -- ok\n; DELETE FROM t", "primary_key": "id"}, "one SELECT statement"),
        (
            {"query": "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "primary_key": "id"},
            "only read",
        ),
        ({"query": "SELECT * INTO copy FROM t", "primary_key": "id"}, "SELECT … INTO"),
        ({"query": "SELECT * FROM t FOR UPDATE", "primary_key": "id"}, "locking clause"),
        ({"query": "SELEC id FROM t", "primary_key": "id"}, "query"),
        ({"query": "SELECT id FROM t"}, "needs primary_key"),
        ({"table": "t", "mode": "incremental"}, "incremental mode needs cursor_column"),
        ({"table": "a.b.c"}, "not a table name"),
        ({"table": "t", "batch_rows": 0}, "batch_rows"),
        ({"table": "t", "limit": 5}, "limit"),
    ],
)
def test_bad_options_are_refused_with_one_line(options: dict[str, Any], message: str) -> None:
    raw = {"url": "postgresql+psycopg://reader:secret@db.example/crm", **options}
    with pytest.raises(BadRequest, match=message) as caught:
        get_connector("sql", "source").parse_options(raw)
    assert "secret" not in caught.value.detail and "\n" not in caught.value.detail
    with pytest.raises(BadRequest, match="not a database URL"):
        CONNECTOR.parse_options({"url": "nosuchdb://x:secret@h/d", "table": "t"})


def test_missing_tables_columns_and_files_are_one_line_errors(
    source_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    make_patients(engine, 3)
    with pytest.raises(BadRequest, match="table 'nope' does not exist"):
        list(source({"url": source_url, "table": "nope"}).read(None))
    with pytest.raises(
        BadRequest, match=r"column 'changed' is not in table src_patients \(columns: id, name"
    ):
        list(source({"url": source_url, "table": "src_patients", "mode": "incremental",
                     "cursor_column": "changed"}).read(None))  # fmt: skip
    with pytest.raises(BadRequest, match="the query failed"):
        list(
            source({"url": source_url, "query": "SELECT nope FROM src_patients", "primary_key": "nope"}).read(
                None
            )
        )
    with pytest.raises(BadRequest, match="no SQLite database file"):
        source({"url": f"sqlite:///{tmp_path / 'absent.db'}", "table": "t"})
    assert not (tmp_path / "absent.db").exists()
    # a SQLite file is read only inside the folders pipelines may read, like the files source's
    inside = Context(tmp_dir=None, file_roots=(tmp_path / "landing",))
    with pytest.raises(Forbidden, match="outside the folders pipelines may read"):
        CONNECTOR.create({"url": f"sqlite:///{tmp_path / 'landing' / '..' / 'x.db'}", "table": "t"}, inside)
    # a table without a primary key needs one in the options to be read in a resumable order
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE loose (a INTEGER, b TEXT)")
        conn.exec_driver_sql("INSERT INTO loose VALUES (2, 'y'), (1, 'x')")
    with pytest.raises(BadRequest, match="table loose has no primary key: set primary_key"):
        list(source({"url": source_url, "table": "loose"}).read(None))
    chunks = list(source({"url": source_url, "table": "loose", "primary_key": ["a"]}).read(None))
    assert chunks[0].batch is not None and chunks[0].batch.to_pylist() == [
        {"a": 1, "b": "x"},
        {"a": 2, "b": "y"},
    ]


def test_a_cursor_committed_for_another_key_is_refused(source_url: str, engine: sa.Engine) -> None:
    make_patients(engine, 20)
    chunk = next(iter(source({"url": source_url, "table": "src_patients", "batch_rows": 5}).read(None)))
    changed = source({"url": source_url, "table": "src_patients", "mode": "incremental",
                      "cursor_column": "updated_at"})  # fmt: skip
    with pytest.raises(
        BadRequest, match=r"follows \(id\) but the options now read in the order of \(updated_at, id\)"
    ):
        list(changed.read(chunk.cursor))


def test_an_unreachable_database_is_named_without_its_password(ws: Workspace, operator: Principal) -> None:
    url = "postgresql+psycopg://u:secret@127.0.0.1:1/x"
    with pytest.raises(BadRequest) as caught:
        list(source({"url": url, "table": "t"}).read(None))
    detail = caught.value.detail
    assert "cannot connect to postgresql+psycopg://u:***@127.0.0.1:1/x" in detail
    assert "secret" not in detail and "\n" not in detail
    apply_pipeline(ws, operator, parse_spec(spec({"url": url, "table": "t"}, name="remote")))
    result = run_pipeline(ws, operator, "remote")
    assert result.status == "failed" and "127.0.0.1" in (result.error or "")
    assert "secret" not in (result.error or "")
    # a host the workspace does not allow out is refused before any connection
    with pytest.raises(Forbidden) as refused:
        apply_pipeline(ws, operator, parse_spec(spec({"url": url.replace("127.0.0.1", "10.9.8.7"),
                                                      "table": "t"}, name="remote")))  # fmt: skip
    assert "10.9.8.7" in refused.value.detail and "secret" not in refused.value.detail


def test_postgresql_connections_are_read_only(
    source_url: str, engine: sa.Engine, database_url: str | None
) -> None:
    if not database_url:
        pytest.skip("needs PostgreSQL (MANARA_TEST_DATABASE_URL)")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SEQUENCE src_seq")
    # a SELECT that writes through a function is stopped by the read-only transaction
    with pytest.raises(BadRequest, match="read-only transaction"):
        list(
            source({"url": source_url, "query": "SELECT nextval('src_seq') AS id", "primary_key": "id"}).read(
                None
            )
        )


def test_the_database_host_goes_through_the_egress_check() -> None:
    asked: list[str] = []

    def check(url: str) -> None:
        asked.append(url)
        raise BadRequest(f"egress to {url} is not allowed")

    url = "postgresql+psycopg://u:secret@db.example:5432/x"
    with pytest.raises(BadRequest, match="egress to postgresql"):
        CONNECTOR.create({"url": url, "table": "t"}, Context(tmp_dir=None, check_egress=check))
    assert asked == ["postgresql+psycopg://u:***@db.example:5432/x"]


def test_passwords_stay_out_of_what_is_shown_and_can_come_from_the_environment(
    ws: Workspace, operator: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    from manara.connect.pipelines import get_pipeline

    url = "postgresql+psycopg://u:secret@127.0.0.1:1/x"
    apply_pipeline(ws, operator, parse_spec(spec({"url": url, "table": "t"}, name="remote")))
    shown = json.dumps(get_pipeline(ws, operator, "remote").spec)
    assert "u:***@127.0.0.1" in shown and "secret" not in shown
    # with a ${VARIABLE}, the stored spec never holds the password at all
    monkeypatch.setenv("SRC_PASSWORD", "s3cr3t")
    ref = "postgresql+psycopg://u:${SRC_PASSWORD}@127.0.0.1:1/x"
    apply_pipeline(ws, operator, parse_spec(spec({"url": ref, "table": "t"}, name="remote")))
    result = run_pipeline(ws, operator, "remote")  # expanded at run time: it reaches the (closed) port
    assert (
        result.status == "failed"
        and "127.0.0.1:1" in (result.error or "")
        and "s3cr3t" not in (result.error or "")
    )
    monkeypatch.delenv("SRC_PASSWORD")
    with pytest.raises(BadRequest, match=r"\$\{SRC_PASSWORD\}, not set"):
        apply_pipeline(ws, operator, parse_spec(spec({"url": ref, "table": "t"}, name="remote")))


def test_both_engines_read_the_same_batches_on_postgresql(
    source_url: str, engine: sa.Engine, database_url: str | None, read_engine: str
) -> None:
    if not database_url or read_engine != "adbc":
        pytest.skip("needs PostgreSQL (MANARA_TEST_DATABASE_URL)")
    make_patients(engine)
    with engine.begin() as conn:  # types the Arrow path does not take (json, uuid, real) read the Python way
        conn.exec_driver_sql(
            "CREATE TABLE src_odd (id int PRIMARY KEY, j jsonb, u uuid, r real, tz timestamptz)"
        )
        conn.exec_driver_sql(
            "INSERT INTO src_odd SELECT i, jsonb_build_object('i', i), gen_random_uuid(), i / 3.0, "
            "timestamptz '2026-01-01 10:00+01' + i * interval '1 minute' FROM generate_series(1, 50) i"
        )
        # a user-defined enum is not in the driver's built-in type table: the Python way too; a domain
        # over a built-in type arrives as its base type: the Arrow way
        conn.exec_driver_sql("CREATE TYPE src_mood AS ENUM ('calme', 'pressé')")
        conn.exec_driver_sql("CREATE DOMAIN src_qty AS int CHECK (VALUE >= 0)")
        conn.exec_driver_sql("CREATE TABLE src_enum (id int PRIMARY KEY, mood src_mood)")
        conn.exec_driver_sql("INSERT INTO src_enum SELECT i, (ARRAY['calme', 'pressé'])[1 + i %% 2]::src_mood "
                             "FROM generate_series(1, 20) i")  # fmt: skip
        conn.exec_driver_sql("CREATE TABLE src_domain (id int PRIMARY KEY, qty src_qty)")
        conn.exec_driver_sql("INSERT INTO src_domain SELECT i, i * 3 FROM generate_series(1, 20) i")
    python_way = ("src_odd", "src_enum")
    for options in (
        {"table": "src_patients", "batch_rows": 100},
        {"table": "src_enum", "batch_rows": 6},
        {"table": "src_domain", "batch_rows": 6},
        {"table": "src_patients", "mode": "incremental", "cursor_column": "updated_at", "batch_rows": 64},
        {"query": "SELECT updated_at, name FROM src_patients WHERE name LIKE '%1%'", "mode": "incremental",
         "cursor_column": "updated_at", "batch_rows": 25},
        {"table": "src_odd", "batch_rows": 7},
    ):  # fmt: skip
        fast = source({"url": source_url, "engine": "adbc", **options})
        slow = source({"url": source_url, "engine": "sqlalchemy", **options})
        assert fast.adbc and not slow.adbc
        pages: list[int] = []
        stream = fast._adbc_stream
        fast._adbc_stream = lambda *a, pages=pages, stream=stream: pages.append(1) or stream(*a)  # type: ignore[method-assign]
        got = [pa.Table.from_batches([c.batch]) for c in fast.read(None) if c.batch is not None]
        want = [pa.Table.from_batches([c.batch]) for c in slow.read(None) if c.batch is not None]
        assert [t.num_rows for t in got] == [t.num_rows for t in want]
        assert pa.concat_tables(got).equals(pa.concat_tables(want))
        assert bool(pages) == (options.get("table") not in python_way), options
    domain = source({"url": source_url, "table": "src_domain"}).schema()
    assert domain.field("qty").type == pa.int64()  # the domain's base type, not text


def test_arrow_pages_stream_in_batches_that_never_split_a_key_and_resume_exactly(
    source_url: str, engine: sa.Engine, database_url: str | None, read_engine: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    if not database_url or read_engine != "adbc":
        pytest.skip("needs PostgreSQL (MANARA_TEST_DATABASE_URL)")
    monkeypatch.setattr(sql_module, "ADBC_BATCH_BYTES", 2048)  # a few dozen rows per driver batch
    with engine.begin() as conn:  # groups of 37 rows share a cursor value: they span batches and pages
        conn.exec_driver_sql("CREATE TABLE src_ties (id int PRIMARY KEY, grp int, label text)")
        conn.exec_driver_sql(
            "INSERT INTO src_ties SELECT i, i / 37, md5(i::text) FROM generate_series(1, 3000) i"
        )
        conn.exec_driver_sql("CREATE INDEX ON src_ties (grp)")
    for options, key in (
        ({"table": "src_ties", "batch_rows": 500}, ["id"]),
        ({"query": "SELECT grp, id, label FROM src_ties", "mode": "incremental", "cursor_column": "grp",
          "batch_rows": 100}, ["grp"]),
    ):  # fmt: skip
        fast = source({"url": source_url, **options, "engine": "adbc"})
        chunks = [c for c in fast.read(None) if c.batch is not None and c.batch.num_rows]
        pages = -(-3000 // options["batch_rows"])  # type: ignore[operator]
        assert len(chunks) > pages  # streamed: more than one batch a page
        got = pa.Table.from_batches([c.batch for c in chunks])
        slow = [c.batch for c in source({"url": source_url, **options, "engine": "sqlalchemy"}).read(None)]
        want = pa.Table.from_batches([b for b in slow if b is not None])
        assert got.sort_by("id").equals(want.sort_by("id"))  # the same rows and values, each once
        for before, after in zip(chunks, chunks[1:], strict=False):  # no key split between two batches
            assert before.batch.column(key[0])[-1].as_py() < after.batch.column(key[0])[0].as_py()
        for cut in (0, 5, len(chunks) // 2, len(chunks) - 2):  # resume from any batch's cursor
            rest = [c.batch for c in fast.read(chunks[cut].cursor) if c.batch is not None]
            ids = chunk_ids_of([c.batch for c in chunks[: cut + 1]] + rest)
            assert sorted(ids) == list(range(1, 3001)), (options, cut)


def test_a_misfit_in_the_middle_of_a_streamed_page_is_quarantined_once(
    source_url: str, engine: sa.Engine, database_url: str | None, read_engine: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    if not database_url or read_engine != "adbc":
        pytest.skip("needs PostgreSQL (MANARA_TEST_DATABASE_URL)")
    monkeypatch.setattr(sql_module, "ADBC_BATCH_BYTES", 4096)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE src_late_nan (id int PRIMARY KEY, amount numeric(12, 2))")
        conn.exec_driver_sql(
            "INSERT INTO src_late_nan SELECT i, CASE WHEN i IN (1500, 2711) THEN 'NaN'::numeric "
            "ELSE i / 100.0 END FROM generate_series(1, 3000) i"
        )
    chunks = list(source({"url": source_url, "table": "src_late_nan", "batch_rows": 1000}).read(None))
    ids = chunk_ids_of([c.batch for c in chunks if c.batch is not None])
    assert ids == [i for i in range(1, 3001) if i not in (1500, 2711)]  # in order, each once
    bad = [r["position"] for c in chunks if c.rejects is not None for r in c.rejects.to_pylist()]
    assert bad == ["table src_late_nan id=1500", "table src_late_nan id=2711"]
    assert sum(c.rejects is None for c in chunks) > 3  # the rows around the misfits came the Arrow way
    assert chunks[-1].cursor["complete"]


def test_adbc_connections_are_read_only_and_misfits_still_go_to_quarantine(
    source_url: str, engine: sa.Engine, database_url: str | None, read_engine: str
) -> None:
    if not database_url or read_engine != "adbc":
        pytest.skip("needs PostgreSQL (MANARA_TEST_DATABASE_URL)")
    src = source({"url": source_url, "query": "SELECT 1 AS id", "primary_key": "id"})
    with src._adbc_connect() as conn, conn.cursor() as cur, pytest.raises(Exception, match="read-only"):
        cur.execute("CREATE TABLE src_written (a int)")
    # an unconstrained numeric is read as decimal(38, 9): NaN does not fit and goes to the quarantine
    query = "SELECT i AS id, CASE WHEN i = 2 THEN 'NaN'::numeric ELSE i / 4.0 END AS n FROM generate_series(1, 3) i"
    chunks = list(source({"url": source_url, "query": query, "primary_key": "id"}).read(None))
    assert chunks[0].batch is not None and chunks[0].rejects is not None
    assert chunks[0].batch.to_pylist() == [{"id": 1, "n": Decimal("0.25")}, {"id": 3, "n": Decimal("0.75")}]
    assert [r["position"] for r in chunks[0].rejects.to_pylist()] == ["query id=2"]


def test_parallel_ranges_read_every_row_once_and_resume_from_any_chunk(
    source_url: str, engine: sa.Engine, database_url: str | None, read_engine: str
) -> None:
    if not database_url or read_engine != "adbc":
        pytest.skip("needs PostgreSQL (MANARA_TEST_DATABASE_URL)")
    _, expected = make_patients(engine)
    options = {"url": source_url, "table": "src_patients", "batch_rows": 64, "parallel": 3}
    chunks = list(source(options).read(None))
    assert len(chunks[-1].cursor["ranges"]) == 3 and chunks[-1].cursor["complete"]
    got = pa.Table.from_batches([c.batch for c in chunks if c.batch is not None])
    sequential = pa.Table.from_batches(
        [c.batch for c in source({**options, "parallel": 1}).read(None) if c.batch is not None]
    )
    assert got.sort_by("id").equals(sequential)  # the same rows, the same values, each once
    # each chunk's cursor covers exactly what came before it: resuming from any of them reads the rest
    for cut in (0, 3, len(chunks) // 2, len(chunks) - 2):
        before = [c.batch for c in chunks[: cut + 1] if c.batch is not None]
        rest = [c.batch for c in source(options).read(chunks[cut].cursor) if c.batch is not None]
        ids = chunk_ids_of(before + rest)
        assert sorted(ids) == [r["id"] for r in expected], cut
    assert list(source(options).read(chunks[-1].cursor)) == []  # complete: nothing more


def chunk_ids_of(batches: list[pa.RecordBatch]) -> list[int]:
    return [i for b in batches for i in b.column("id").to_pylist()]


def test_parallel_ranges_quarantine_misfits_once_and_report_errors(
    ws: Workspace, operator: Principal, source_url: str, engine: sa.Engine, database_url: str | None,
    read_engine: str,
) -> None:  # fmt: skip
    if not database_url or read_engine != "adbc":
        pytest.skip("needs PostgreSQL (MANARA_TEST_DATABASE_URL)")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE src_nums (id bigint PRIMARY KEY, n numeric)")
        conn.exec_driver_sql(
            "INSERT INTO src_nums SELECT i, CASE WHEN i %% 97 = 0 THEN 'NaN'::numeric ELSE i / 4.0 END "
            "FROM generate_series(1, 2000) i"
        )
    options = {"url": source_url, "table": "src_nums", "batch_rows": 100, "parallel": 2}
    apply_pipeline(ws, operator, parse_spec(spec(options, commit_rows=300, name="nums")))
    result = run_pipeline(ws, operator, "nums")
    assert (result.status, result.rows_loaded, result.rows_quarantined) == ("succeeded", 2000 - 20, 20)
    ids = sorted(dataset_rows_by_id_named(ws, operator, "nums"))
    assert ids == [i for i in range(1, 2001) if i % 97]
    # a range that fails (the table is gone) ends the run with the database's reason, once
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE src_nums")
    with pytest.raises(BadRequest, match="src_nums"):
        list(source(options).read(None))


def dataset_rows_by_id_named(ws: Workspace, operator: Principal, name: str) -> list[int]:
    table = ws.catalog.load_table(identifier(operator.tenant, name))
    return table.scan().to_arrow().column("id").to_pylist()


def test_decimals_come_as_text_and_are_parsed_exactly(
    source_url: str, engine: sa.Engine, database_url: str | None, read_engine: str
) -> None:
    if not database_url or read_engine != "adbc":
        pytest.skip("needs PostgreSQL (MANARA_TEST_DATABASE_URL)")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE src_money (id int PRIMARY KEY, amount numeric(12, 2), big numeric(18, 4), "
            "wide numeric(38, 10), free numeric)"
        )
        conn.exec_driver_sql(
            "INSERT INTO src_money VALUES "
            "(1, 0.01, 99999999999999.9999, 9999999999999999999999999999.9999999999, 2.50000000000000000000), "
            "(2, -0.01, -99999999999999.9999, -0.0000000001, -12345678901234567890.123456789), "
            "(3, NULL, 0, NULL, 0.000000001), (4, 9999999999.99, 1.5, 0, 1e-10), (5, 'NaN', 2, 1, 1), "
            "(6, -1234.5, NULL, 1, 'Infinity'), (7, 0, 0, 1, 1 / 3.0)"
        )
    options = {"url": source_url, "table": "src_money", "batch_rows": 4}
    fast, slow = source({**options, "engine": "adbc"}), source({**options, "engine": "sqlalchemy"})
    queries: list[str] = []
    sql = fast._adbc_sql
    fast._adbc_sql = lambda stmt: queries.append(sql(stmt)) or queries[-1]  # type: ignore[method-assign]
    got, want = list(fast.read(None)), list(slow.read(None))
    assert any("AS TEXT" in q.upper() for q in queries)  # the text form was used
    rows = [r for c in got if c.batch is not None for r in c.batch.to_pylist()]
    assert rows == [r for c in want if c.batch is not None for r in c.batch.to_pylist()]
    assert rows[0] == {
        "id": 1,
        "amount": Decimal("0.01"),
        "big": Decimal("99999999999999.9999"),
        "wide": Decimal("9999999999999999999999999999.9999999999"),
        "free": Decimal("2.5"),
    }
    assert rows[1] == {
        "id": 2,
        "amount": Decimal("-0.01"),
        "big": Decimal("-99999999999999.9999"),
        "wide": Decimal("-1E-10"),
        "free": Decimal("-12345678901234567890.123456789"),
    }
    assert rows[2] == {"id": 3, "amount": None, "big": Decimal(0), "wide": None, "free": Decimal("1E-9")}
    assert len(rows) == 3  # 1e-10 and one third need more decimals than an unconstrained numeric's 9
    bad = [r["position"] for c in got if c.rejects is not None for r in c.rejects.to_pylist()]
    assert bad == [f"table src_money id={i}" for i in (4, 5, 6, 7)]  # NaN, Infinity: quarantined too
    assert bad == [r["position"] for c in want if c.rejects is not None for r in c.rejects.to_pylist()]
