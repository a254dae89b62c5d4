"""Safe SQL: hostile queries are refused (by the checker and, independently, by locked DuckDB),
tenants cannot see each other, limits hold, roles are enforced and every query is audited."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from manara.config import Settings
from manara.errors import Forbidden, NotFound, SqlError, SqlRejected, SqlTimeout
from manara.govern import audit, identity
from manara.govern.principal import Principal
from manara.lake import sql as lake_sql
from manara.lake.ingest import ingest_file
from manara.lake.sql import run_query
from manara.meta.db import dispose_all, session_scope
from manara.meta.models import Role
from manara.workspace import Workspace, init_workspace

PEOPLE = "id,name,city\n1,Amina,Fès\n2,Omar,Rabat\n3,Salma,Fès\n4,Youssef,Tanger\n5,Nadia,Rabat\n"
ORDERS = "order_id,person_id,amount\n10,1,100.5\n11,1,20\n12,2,7.25\n13,4,50\n14,9,1\n"


def state(ws: Workspace, name: str, tenant: str = "default") -> tuple[int | None, int]:
    table = ws.catalog.load_table((tenant, name))
    return table.metadata.current_snapshot_id, table.scan().to_arrow().num_rows


@pytest.fixture
def people(ws: Workspace, operator: Principal, tmp_path: Path) -> Workspace:
    (tmp_path / "people.csv").write_text(PEOPLE, "utf-8")
    ingest_file(ws, operator, tmp_path / "people.csv", "people")
    return ws


@pytest.fixture
def data(people: Workspace, operator: Principal, tmp_path: Path) -> Workspace:
    (tmp_path / "orders.csv").write_text(ORDERS, "utf-8")
    ingest_file(people, operator, tmp_path / "orders.csv", "orders")
    return people


@pytest.fixture(scope="module")
def shared_people(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, Principal]]:
    """One workspace with the 'people' dataset for the many read-only hostile-query cases (speed).

    Follows tests/conftest.py: on PostgreSQL when MANARA_TEST_DATABASE_URL is set, else SQLite.
    """
    home = tmp_path_factory.mktemp("sql_safety") / "home"
    pg_url = os.environ.get("MANARA_TEST_DATABASE_URL")
    overrides: dict[str, object] = {"home": home}
    dsn = name = None
    if pg_url:
        import psycopg
        from sqlalchemy.engine import make_url

        admin = make_url(pg_url)
        name = f"manara_test_{uuid.uuid4().hex[:12]}"
        dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        overrides["database_url"] = admin.set(database=name).render_as_string(hide_password=False)
    ws = init_workspace(Settings(**overrides)).workspace  # type: ignore[arg-type]
    operator = ws.principal()
    (home.parent / "people.csv").write_text(PEOPLE, "utf-8")
    ingest_file(ws, operator, home.parent / "people.csv", "people")
    yield ws, operator
    ws.close()
    if pg_url:
        import psycopg

        dispose_all()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def snapshots(ws: Workspace, name: str) -> tuple[int | None, int]:
    """Cheap 'unchanged' check from table metadata only: current snapshot id and number of snapshots."""
    table = ws.catalog.load_table(("default", name))
    return table.metadata.current_snapshot_id, len(table.snapshots())


def sql_events(ws: Workspace) -> list[dict[str, object]]:
    return audit.query(ws.engine, action="sql.query", limit=10_000)


# --- hostile queries: refused by the checker ---------------------------------------------------------

HOSTILE: list[tuple[str, list[str]]] = [
    # DDL / DML
    ("create table x as select 1", ["only SELECT", "CREATE"]),
    ("drop table people", ["only SELECT", "DROP"]),
    ("alter table people add column z int", ["only SELECT", "ALTER"]),
    ("insert into people values (9, 'x', 'y')", ["only SELECT", "INSERT"]),
    ("update people set name = 'x'", ["only SELECT", "UPDATE"]),
    ("delete from people", ["only SELECT", "DELETE"]),
    ("create macro m(x) as x", ["only SELECT", "CREATE"]),
    # files, databases, extensions, settings
    ("copy people to '/tmp/leak.csv'", ["only SELECT", "COPY"]),
    ("copy (select * from people) to '/tmp/leak.parquet' (format parquet)", ["only SELECT", "COPY"]),
    ("attach '/tmp/other.db' as other", ["only SELECT", "ATTACH"]),
    ("install httpfs", ["only SELECT", "INSTALL"]),
    ("load httpfs", ["only SELECT"]),
    ("pragma database_list", ["only SELECT", "PRAGMA"]),
    ("set enable_external_access = true", ["only SELECT", "SET"]),
    ("reset lock_configuration", ["only SELECT"]),
    ("call pragma_version()", ["only SELECT"]),
    ("export database '/tmp/dump'", ["cannot parse"]),
    ("describe people", ["only SELECT", "DESCRIBE"]),
    # several statements, however they are hidden
    ("select 1; select 2", ["exactly one statement", "found 2"]),
    ("select * from people; drop table people", ["exactly one statement", "found 2"]),
    ("select 1 -- harmless\n; drop table people", ["exactly one statement"]),
    # file and system functions
    ("select * from read_csv('/etc/passwd')", ["read_csv", "not allowed"]),
    ("from read_csv_auto('/etc/passwd')", ["read_csv_auto", "not allowed"]),
    ("select * from read_text('/etc/passwd')", ["read_text", "not allowed"]),
    ("select content from read_blob('/etc/passwd')", ["read_blob", "not allowed"]),
    ("select * from read_parquet('/tmp/*.parquet')", ["read_parquet", "not allowed"]),
    ("select * from glob('/etc/*')", ["glob", "not allowed"]),
    ("select * from '/etc/passwd'", ["unknown dataset '/etc/passwd'"]),
    ("select * from 'https://example.com/data.csv'", ["unknown dataset"]),
    ("select getenv('HOME')", ["function 'getenv' is not allowed"]),
    ("select current_setting('memory_limit')", ["function 'current_setting' is not allowed"]),
    ("select * from duckdb_settings()", ["duckdb_settings", "not allowed"]),
    ("select * from duckdb_tables()", ["duckdb_tables", "not allowed"]),
    ("select * from duckdb_extensions()", ["duckdb_extensions", "not allowed"]),
    ("select * from pragma_table_info('people')", ["pragma_table_info", "not allowed"]),
    ("select * from query('select 1')", ["query", "not allowed"]),
    ("select * from query_table('people')", ["query_table", "not allowed"]),
    ("select * from sniff_csv('/etc/passwd')", ["sniff_csv", "not allowed"]),
    # catalogs and other schemas
    ("select * from information_schema.tables", ["information_schema.tables", "without a schema"]),
    ("select * from pg_catalog.pg_tables", ["pg_catalog.pg_tables", "without a schema"]),
    ("select * from sqlite_master", ["unknown dataset 'sqlite_master'"]),
    ("select * from other.people", ["other.people", "own tenant's datasets only"]),
    ("select * from main.people", ["main.people", "without a schema"]),
    ("select * from memory.main.people", ["memory.main.people", "without a schema"]),
    ("select * from nosuchdataset", ["unknown dataset 'nosuchdataset'"]),
    # forbidden functions hidden deep inside the query
    (
        "select * from people where id in (select id from (select 1 as id, getenv('HOME') as h) s)",
        ["function 'getenv' is not allowed"],
    ),
    ("with a as (select * from read_csv('/etc/passwd')) select * from a", ["read_csv", "not allowed"]),
    (
        "with a as (select 1 as x), b as (select * from a, (from read_text('/etc/passwd')) t) select * from b",
        ["read_text", "not allowed"],
    ),
    (
        "select case when id > 1 then (select content from read_text('/etc/passwd')) else 'x' end from people",
        ["read_text", "not allowed"],
    ),
    ("select case when 1 = 1 then getenv('X') else 'y' end from people", ["getenv"]),
    ("select * from people union all select * from read_csv('/etc/passwd')", ["read_csv"]),
    ("select * from people order by getenv('x')", ["getenv"]),
    ("select list_transform([1], x -> getenv('HOME'))", ["getenv"]),
    ("select '/etc/passwd'.read_text()", ["read_text"]),
    ("select * from people limit (select count(*) from read_csv('/etc/passwd'))", ["read_csv"]),
    ("select * from people, lateral read_csv('/etc/passwd')", ["read_csv"]),
    ("select * from \"read_csv\"('/etc/passwd')", ["read_csv"]),
    ("select * from READ_CSV('/etc/passwd')", ["read_csv"]),
    # unicode look-alikes of read_csv: not the real function, and not allowed either
    ("select * from ｒｅａｄ_csv('/etc/passwd')", ["not allowed"]),
    ("select * from read\u200b_csv('/etc/passwd')", ["not allowed"]),
    ("select * from rеad_csv('/etc/passwd')", ["not allowed"]),  # Cyrillic 'е'
    # empty
    ("   ", ["empty query"]),
]


@pytest.mark.parametrize(("sql", "words"), HOSTILE, ids=[f"{i:02d}" for i in range(len(HOSTILE))])
def test_hostile_query_is_rejected_and_audited(
    shared_people: tuple[Workspace, Principal], sql: str, words: list[str]
) -> None:
    ws, operator = shared_people
    before = len(sql_events(ws))
    people_before = snapshots(ws, "people")

    with pytest.raises(SqlRejected) as info:
        run_query(ws, operator, sql)

    for word in words:
        assert word in info.value.detail, f"{word!r} not in {info.value.detail!r}"
    events = sql_events(ws)
    assert len(events) == before + 1
    assert events[0]["outcome"] == "denied"
    assert events[0]["detail"]["sql"] == sql and events[0]["detail"]["error"] == info.value.detail
    # nothing was touched
    assert snapshots(ws, "people") == people_before


def test_version_function_is_rejected(ws: Workspace, operator: Principal) -> None:
    with pytest.raises(SqlRejected, match="version"):
        run_query(ws, operator, "select version()")


def test_check_query_alone_rejects_without_running() -> None:
    names = {"people", "orders"}
    assert lake_sql.check_query("select * from people join orders on id = person_id", names) == [
        "people",
        "orders",
    ]
    with pytest.raises(SqlRejected, match="unknown dataset 'secrets'"):
        lake_sql.check_query("select * from secrets", names)


# --- tenants ---------------------------------------------------------------------------------------------


@pytest.fixture
def rival(data: Workspace, tmp_path: Path) -> Principal:
    with session_scope(data.engine) as s:
        identity.create_tenant(s, "rival", "Rival Corp", "test")
    principal = data.principal("rival")
    (tmp_path / "secrets.csv").write_text("id,secret\n1,the formula\n", "utf-8")
    ingest_file(data, principal, tmp_path / "secrets.csv", "secrets")
    return principal


def test_other_tenants_dataset_is_invisible(data: Workspace, operator: Principal, rival: Principal) -> None:
    ws = data
    # the rival sees its own data...
    assert run_query(ws, rival, "select secret from secrets").table.to_pylist() == [{"secret": "the formula"}]
    # ...and "default" cannot reach it, by plain or qualified name
    with pytest.raises(SqlRejected, match="unknown dataset 'secrets'"):
        run_query(ws, operator, "select * from secrets")
    for q in (
        "select * from rival.secrets",
        'select * from "rival"."secrets"',
        "select * from manara.rival.secrets",
    ):
        with pytest.raises(SqlRejected, match="own tenant's datasets only"):
            run_query(ws, operator, q)
    with pytest.raises(SqlRejected, match="unknown dataset 'people'"):
        run_query(ws, rival, "select * from people")  # and the other way round
    with pytest.raises(SqlRejected):
        run_query(ws, operator, "with s as (select * from secrets) select * from s")


# --- what is allowed ------------------------------------------------------------------------------------


def test_aggregation(data: Workspace, operator: Principal) -> None:
    r = run_query(data, operator, "select city, count(*) as n from people group by city order by city")
    assert r.table.to_pylist() == [
        {"city": "Fès", "n": 2},
        {"city": "Rabat", "n": 2},
        {"city": "Tanger", "n": 1},
    ]
    assert r.datasets == ["people"] and not r.truncated


def test_join(data: Workspace, operator: Principal) -> None:
    r = run_query(
        data, operator,
        "select p.name, sum(o.amount) as total from people p join orders o on o.person_id = p.id "
        "group by p.name order by total desc",
    )  # fmt: skip
    assert r.table.to_pylist() == [
        {"name": "Amina", "total": 120.5},
        {"name": "Youssef", "total": 50.0},
        {"name": "Omar", "total": 7.25},
    ]
    assert sorted(r.datasets) == ["orders", "people"]
    assert set(r.snapshots) == {"orders", "people"} and all(r.snapshots.values())


def test_cte_and_self_join(data: Workspace, operator: Principal) -> None:
    r = run_query(
        data, operator,
        "with fes as (select * from people where city = 'Fès') "
        "select a.name as a, b.name as b from fes a join people b on (a.city = b.city and a.id < b.id)",
    )  # fmt: skip
    assert r.table.to_pylist() == [{"a": "Amina", "b": "Salma"}]
    assert r.datasets == ["people"]


@pytest.mark.parametrize(
    "condition",
    ["a.city = b.city and a.id < b.id", "a.id = b.id or a.city = b.city", "starts_with(a.city, b.city)"],
    ids=["and", "or", "function"],
)
def test_join_with_compound_on_condition(data: Workspace, operator: Principal, condition: str) -> None:
    r = run_query(data, operator, f"select count(*) as n from people a join people b on {condition}")
    assert r.table.num_rows == 1


def test_window_function(data: Workspace, operator: Principal) -> None:
    r = run_query(
        data, operator,
        "select id, row_number() over (partition by city order by id) as rn from people order by id",
    )  # fmt: skip
    assert [row["rn"] for row in r.table.to_pylist()] == [1, 1, 2, 1, 2]


def test_range_generate_series_unnest(data: Workspace, operator: Principal) -> None:
    assert run_query(
        data, operator, "select count(*) as n, sum(range) as s from range(10)"
    ).table.to_pylist() == [{"n": 10, "s": 45}]
    assert run_query(data, operator, "select * from generate_series(1, 3)").table.num_rows == 3
    assert run_query(data, operator, "select * from unnest([1, 2])").table.num_rows == 2


def test_comment_is_only_a_comment(data: Workspace, operator: Principal) -> None:
    r = run_query(data, operator, "select count(*) as n /* ; drop table people */ from people -- ; delete")
    assert r.table.to_pylist() == [{"n": 5}]
    assert state(data, "people")[1] == 5


def test_quoted_and_case_insensitive_names(data: Workspace, operator: Principal) -> None:
    assert run_query(data, operator, 'select count(*) as n from "people"').table.to_pylist() == [{"n": 5}]
    assert run_query(data, operator, "select count(*) as n from PEOPLE").table.to_pylist() == [{"n": 5}]


def test_time_travel(data: Workspace, operator: Principal, tmp_path: Path) -> None:
    old = state(data, "people")[0]
    (tmp_path / "more.csv").write_text("id,name,city\n6,Hamza,Oujda\n", "utf-8")
    ingest_file(data, operator, tmp_path / "more.csv", "people")
    assert run_query(data, operator, "select count(*) as n from people").table.to_pylist() == [{"n": 6}]
    r = run_query(data, operator, "select count(*) as n from people", as_of=str(old))
    assert r.table.to_pylist() == [{"n": 5}] and r.snapshots == {"people": old}
    with pytest.raises(NotFound, match="snapshot 123 does not exist"):
        run_query(data, operator, "select * from people", as_of="123")


def test_sql_error_is_reported_and_audited(data: Workspace, operator: Principal) -> None:
    with pytest.raises(SqlError) as info:
        run_query(data, operator, "select nosuchcolumn from people")
    assert "nosuchcolumn" in info.value.detail
    assert not isinstance(info.value, SqlRejected)
    assert sql_events(data)[0]["outcome"] == "error"


# --- limits ---------------------------------------------------------------------------------------------


def test_row_limit_argument_truncates(data: Workspace, operator: Principal) -> None:
    r = run_query(data, operator, "select * from range(100)", limit=5)
    assert r.table.num_rows == 5 and r.truncated and r.row_limit == 5
    exact = run_query(data, operator, "select * from range(5)", limit=5)
    assert exact.table.num_rows == 5 and not exact.truncated


@pytest.fixture
def reopened(settings: Settings, data: Workspace) -> Iterator[object]:
    opened: list[Workspace] = []

    def open_with(**update: object) -> Workspace:
        w = Workspace.open(settings.model_copy(update=update))
        opened.append(w)
        return w

    yield open_with
    for w in opened:
        if "catalog" in w.__dict__:
            w.catalog.engine.dispose()


def test_row_limit_setting_truncates_and_caps_argument(reopened, operator: Principal) -> None:  # type: ignore[no-untyped-def]
    ws5 = reopened(sql_row_limit=5)
    r = run_query(ws5, operator, "select * from people order by id")
    assert r.table.num_rows == 5 and not r.truncated
    r = run_query(ws5, operator, "select * from range(1000)")
    assert r.table.num_rows == 5 and r.truncated and r.row_limit == 5
    assert r.table.column(0).to_pylist() == [0, 1, 2, 3, 4]
    bigger = run_query(ws5, operator, "select * from range(1000)", limit=50)  # cannot raise the cap
    assert bigger.table.num_rows == 5 and bigger.truncated and bigger.row_limit == 5
    assert sql_events(ws5)[0]["detail"]["truncated"] is True


def test_time_limit_interrupts_a_slow_query(reopened, operator: Principal) -> None:  # type: ignore[no-untyped-def]
    slow = reopened(sql_timeout_s=0.5)
    import time

    started = time.perf_counter()
    with pytest.raises(SqlTimeout) as info:
        run_query(slow, operator, "select count(*) from range(10000000000)")
    assert time.perf_counter() - started < 10
    assert "0.5 s limit" in info.value.detail
    ev = sql_events(slow)[0]
    assert ev["outcome"] == "error" and "limit" in ev["detail"]["error"]
    # a quick query on the same settings still works
    assert run_query(slow, operator, "select 42 as x").table.to_pylist() == [{"x": 42}]


# --- second layer: DuckDB itself refuses, even if the checker were bypassed ----------------------------


@pytest.mark.parametrize(
    ("statement", "error", "words"),
    [
        ("select * from read_csv('/etc/passwd')", duckdb.PermissionException, ["disabled by configuration"]),
        ("select * from read_text('/etc/passwd')", duckdb.PermissionException, ["disabled by configuration"]),
        ("copy (select 1) to '{tmp}/leak.csv'", duckdb.PermissionException, ["disabled by configuration"]),
        ("attach '{tmp}/other.db' as other", duckdb.PermissionException, ["disabled by configuration"]),
        (
            "SET enable_external_access = true",
            duckdb.InvalidInputException,
            ["configuration has been locked"],
        ),
        ("SET lock_configuration = false", duckdb.InvalidInputException, ["configuration has been locked"]),
        ("RESET enable_external_access", duckdb.InvalidInputException, ["configuration has been locked"]),
        ("INSTALL httpfs", duckdb.Error, ["disabled"]),
        ("LOAD httpfs", duckdb.Error, ["disabled"]),
    ],
    ids=["read_csv", "read_text", "copy", "attach", "set-access", "unlock", "reset", "install", "load"],
)
def test_locked_duckdb_refuses(
    ws: Workspace, tmp_path: Path, statement: str, error: type[Exception], words: list[str]
) -> None:
    con = lake_sql._connect(ws)
    try:
        lake_sql._lock(con)
        with pytest.raises(error) as info:
            con.execute(statement.format(tmp=tmp_path)).fetchall()
        for word in words:
            assert word in str(info.value)
        assert not (tmp_path / "leak.csv").exists() and not (tmp_path / "other.db").exists()
        # the lock held
        assert con.execute("select current_setting('enable_external_access')").fetchone() == (False,)
    finally:
        con.close()


def test_connection_settings(ws: Workspace) -> None:
    con = lake_sql._connect(ws)
    try:
        lake_sql._lock(con)
        settings = dict(
            con.execute(
                "select name, value from duckdb_settings() where name in ('autoinstall_known_extensions', "
                "'autoload_known_extensions', 'allow_community_extensions', 'lock_configuration', "
                "'enable_external_access')"
            ).fetchall()
        )
        assert settings == {
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
            "allow_community_extensions": "false",
            "lock_configuration": "true",
            "enable_external_access": "false",
        }
        assert con.execute("select count(*) from duckdb_tables()").fetchone() == (0,)  # an empty database
    finally:
        con.close()


# --- roles and audit --------------------------------------------------------------------------------------


def test_viewer_cannot_run_sql(data: Workspace, operator: Principal) -> None:
    viewer = Principal(tenant="default", tenant_id=operator.tenant_id, actor="user:vera", role=Role.viewer)
    before = len(sql_events(data))
    with pytest.raises(Forbidden) as info:
        run_query(data, viewer, "select count(*) from people")
    assert (
        "running SQL" in info.value.detail
        and "'analyst'" in info.value.detail
        and "'viewer'" in info.value.detail
    )
    events = sql_events(data)
    assert len(events) == before + 1
    assert events[0]["actor"] == "user:vera" and events[0]["outcome"] != "ok"
    assert events[0]["detail"]["error"] == info.value.detail


def test_viewer_token_cannot_run_sql_but_analyst_can(data: Workspace) -> None:
    with session_scope(data.engine) as s:
        tenant = identity.get_tenant(s, "default")
        v = identity.create_token(s, tenant, role=Role.viewer, name="viewer", actor="test").secret
        a = identity.create_token(s, tenant, role=Role.analyst, name="analyst", actor="test").secret
    with session_scope(data.engine) as s:
        viewer = identity.authenticate(s, v)
        analyst = identity.authenticate(s, a)
    with pytest.raises(Forbidden):
        run_query(data, viewer, "select 1")
    assert run_query(data, analyst, "select count(*) as n from people").table.to_pylist() == [{"n": 5}]


def test_every_query_is_audited(data: Workspace, operator: Principal) -> None:
    before = len(sql_events(data))
    run_query(data, operator, "select count(*) from people")
    with pytest.raises(SqlRejected):
        run_query(data, operator, "select * from read_csv('/etc/passwd')")
    with pytest.raises(SqlError):
        run_query(data, operator, "select 1/'x'")
    with pytest.raises(NotFound, match="snapshot 1 does not exist"):  # an unknown snapshot
        run_query(data, operator, "select * from people", as_of="1")
    events = sql_events(data)[: len(sql_events(data)) - before]
    assert [e["outcome"] for e in events] == ["error", "error", "denied", "ok"]
    ok = events[-1]
    assert ok["target"] == "people" and ok["actor"] == operator.actor and ok["tenant"] == "default"
    assert ok["detail"]["rows"] == 1 and ok["detail"]["snapshots"] == {"people": state(data, "people")[0]}
    assert audit.verify(data.engine).ok
