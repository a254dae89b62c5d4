"""Safe, read-only SQL over one tenant's datasets.

Enforced twice. First, sqlglot parses the query and checks every node: one SELECT (or WITH …
SELECT, or set operation), no DDL/DML/COPY/ATTACH/PRAGMA/SET/INSTALL/LOAD, no table functions
besides `range`/`generate_series`/`unnest`, no file, URL or system functions, and every table named
must be one of the tenant's datasets or a CTE of the query itself. Second, DuckDB runs it in a fresh
in-memory database that holds only the datasets the query names, with external access disabled,
extension loading off and the configuration locked. A row limit and a wall-clock limit apply.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import sqlglot
from pyiceberg.table import Table
from sqlglot import exp
from sqlglot.errors import ParseError

from manara.errors import Forbidden, SqlError, SqlRejected, SqlTimeout
from manara.govern import audit
from manara.govern.principal import Principal
from manara.lake import duck
from manara.lake.catalog import dataset_names, load_dataset
from manara.lake.datasets import resolve_snapshot
from manara.lake.schema import iceberg_compatible
from manara.meta.models import Classification, Role
from manara.workspace import Workspace

_ALLOWED_ROOTS = (exp.Select, exp.Union, exp.Intersect, exp.Except)
_FORBIDDEN_NODES = (
    exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Command,
    exp.Copy, exp.Attach, exp.Detach, exp.Pragma, exp.Set, exp.Use, exp.Into, exp.LoadData,
    exp.Transaction, exp.Commit, exp.Rollback, exp.Describe, exp.Install, exp.Summarize,
)  # fmt: skip
_ALLOWED_TABLE_FUNCTIONS = {"range", "generate_series", "unnest"}
# Scalar functions that reach outside the query's data: files, environment, settings, the catalog.
_FORBIDDEN_FUNCTIONS = {
    "getenv", "current_setting", "read_text", "read_blob", "read_csv", "read_csv_auto", "read_json",
    "read_json_auto", "read_json_objects", "read_ndjson", "read_ndjson_auto", "read_parquet", "parquet_scan",
    "parquet_metadata", "parquet_schema", "parquet_file_metadata", "parquet_kv_metadata", "glob", "query",
    "query_table", "sniff_csv", "iceberg_scan", "iceberg_metadata", "iceberg_snapshots", "delta_scan",
    "read_xlsx", "load_aws_credentials", "make_timestamp_ns_from_file", "sqlite_scan", "postgres_scan",
    "mysql_scan", "which_secret", "current_database", "current_schema", "current_schemas", "version",
    "current_version", "current_catalog", "current_user", "session_user", "user",
    "enable_profiling", "checkpoint", "force_checkpoint", "import_database", "export_database",
}  # fmt: skip
_FORBIDDEN_PREFIXES = (
    "duckdb_",
    "pragma_",
    "pg_",
    "sqlite_",
    "postgres_",
    "mysql_",
    "icu_",
    "read_",
    "parquet_",
)


@dataclass
class QueryResult:
    table: pa.Table
    truncated: bool
    row_limit: int
    datasets: list[str]
    snapshots: dict[str, int | None] = field(default_factory=dict)
    seconds: float = 0.0


def _function_name(node: Any) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return str(getattr(node, "sql_name", lambda: type(node).__name__)()).lower()


def check_query(sql: str, datasets: set[str]) -> list[str]:
    """Validate `sql`; return the datasets it reads. Raises `SqlRejected` naming what is not allowed."""
    if not sql or not sql.strip():
        raise SqlRejected("empty query")
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except ParseError as e:
        raise SqlRejected(f"cannot parse the query: {str(e).splitlines()[0]}") from None
    if len(statements) != 1:
        raise SqlRejected(f"exactly one statement is allowed, found {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, _ALLOWED_ROOTS):
        raise SqlRejected(f"only SELECT queries are allowed, not {type(tree).__name__.upper()}")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    used: list[str] = []
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN_NODES):
            raise SqlRejected(f"{type(node).__name__.upper()} is not allowed: queries are read-only")
        if isinstance(node, exp.Table):
            _check_table(node, datasets, ctes, used)
        elif isinstance(node, exp.Func):
            name = _function_name(node)
            if name in _FORBIDDEN_FUNCTIONS or name.startswith(_FORBIDDEN_PREFIXES):
                raise SqlRejected(
                    f"function '{name}' is not allowed: it reaches outside the tenant's datasets"
                )
            if _in_table_position(node) and name not in _ALLOWED_TABLE_FUNCTIONS:
                raise SqlRejected(f"table function '{name}' is not allowed")
    return used


def _in_table_position(node: Any) -> bool:
    """True when `node` stands where a table goes (FROM x, JOIN x), not in an ON condition or a column."""
    while isinstance(node.parent, exp.Alias | exp.TableAlias):
        node = node.parent
    parent = node.parent
    return isinstance(parent, exp.From | exp.Join | exp.Table | exp.Lateral) and node.arg_key == "this"


def _check_table(node: exp.Table, datasets: set[str], ctes: set[str], used: list[str]) -> None:
    this = node.this
    if isinstance(this, exp.Func):  # a table function: checked with the other functions
        name = _function_name(this)
        if name not in _ALLOWED_TABLE_FUNCTIONS:
            raise SqlRejected(f"table function '{name}' is not allowed")
        return
    if not isinstance(this, exp.Identifier):
        raise SqlRejected(f"'{node.sql(dialect='duckdb')}' is not a dataset name")
    if node.args.get("db") or node.args.get("catalog"):
        raise SqlRejected(
            f"'{node.sql(dialect='duckdb')}': name datasets without a schema or catalog; "
            "a query sees its own tenant's datasets only"
        )
    name = node.name
    key = name.lower()
    if key in ctes and key not in datasets:
        return
    if name not in datasets and key not in datasets:
        raise SqlRejected(f"unknown dataset '{name}'", dataset=name)
    real = name if name in datasets else key
    if real not in used:
        used.append(real)


def _connect(ws: Workspace) -> duckdb.DuckDBPyConnection:
    return duck.connect(threads=ws.settings.sql_threads, memory_limit=ws.settings.sql_memory_limit)


def _arrow_source(table: Table, snapshot_id: int | None) -> pads.Dataset | pa.Table:
    """What DuckDB scans for one dataset at one snapshot.

    Local data files without delete files (what Manara writes: copy-on-write) are handed over as a
    pyarrow Dataset, so DuckDB pushes projections and filters into the Parquet scan (about 10× less
    time than materialising on a million rows; docs/benchmarks.md). Anything else — delete files,
    remote storage — goes through pyiceberg's own reader, which applies them.
    """
    scan = table.scan(snapshot_id=snapshot_id)
    tasks = list(scan.plan_files())
    paths = []
    for task in tasks:
        uri = urlparse(task.file.file_path)
        if task.delete_files or uri.scheme not in ("", "file"):
            return scan.to_arrow()
        paths.append(unquote(uri.path))
    schema = pa.schema([pa.field(f.name, iceberg_compatible(f.type)) for f in scan.projection().as_arrow()])
    return pads.dataset(paths, format="parquet", schema=schema)


def _row_filter(table: Table, principal: Principal) -> pc.Expression | None:
    """Document collections' tables carry labels: SQL sees only the rows search would show the caller."""
    if table.properties.get("manara.acl") != "document":
        return None
    classifications = [c.value for c in Classification if principal.may_read(c)]
    roles = [r.value for r in Role if principal.role.at_least(r)]
    return pc.field("classification").isin(classifications) & pc.field("read_role").isin(roles)


def _lock(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def run_query(
    ws: Workspace,
    principal: Principal,
    sql: str,
    *,
    as_of: str | None = None,
    limit: int | None = None,
) -> QueryResult:
    """Check and run `sql` over the principal's tenant; writes one audit event either way."""
    ev = audit.EventFields(principal.actor, "sql.query", tenant=principal.tenant, detail={"sql": sql[:4000]})
    try:
        principal.require(Role.analyst, "running SQL")
        result = _run(ws, principal, sql, as_of, limit)
    except Exception as e:
        ev.outcome = "denied" if isinstance(e, SqlRejected | Forbidden) else "error"
        ev.detail["error"] = getattr(e, "detail", str(e))
        audit.write(ws.engine, ev)
        raise
    ev.target = ",".join(result.datasets) or None
    ev.detail.update(rows=result.table.num_rows, snapshots=result.snapshots, truncated=result.truncated)
    audit.write(ws.engine, ev)
    return result


def _run(ws: Workspace, principal: Principal, sql: str, as_of: str | None, limit: int | None) -> QueryResult:
    started = time.perf_counter()
    row_limit = min(limit or ws.settings.sql_row_limit, ws.settings.sql_row_limit)
    names = set(dataset_names(ws.catalog, principal.tenant))
    used = check_query(sql, names)
    con = _connect(ws)
    snapshots: dict[str, int | None] = {}
    try:
        for name in used:
            table = load_dataset(ws.catalog, principal.tenant, name)
            snapshot_id = resolve_snapshot(table, as_of) if as_of else None
            snapshots[name] = snapshot_id or table.metadata.current_snapshot_id
            source = _arrow_source(table, snapshot_id)
            row_filter = _row_filter(table, principal)
            if row_filter is not None:  # rows the caller may not read never reach DuckDB
                source = source.filter(row_filter)
            con.register(name, source)
        _lock(con)
        timer = threading.Timer(ws.settings.sql_timeout_s, con.interrupt)
        timer.start()
        try:
            reader = con.sql(sql).to_arrow_reader(min(row_limit + 1, 65_536))
            batches: list[pa.RecordBatch] = []
            rows = 0
            for batch in reader:
                batches.append(batch)
                rows += batch.num_rows
                if rows > row_limit:
                    break
            result = pa.Table.from_batches(batches, schema=reader.schema)
        except (duckdb.InterruptException, duckdb.Error, OSError) as e:
            if not timer.is_alive() or isinstance(e, duckdb.InterruptException):
                raise SqlTimeout(f"query stopped after the {ws.settings.sql_timeout_s:g} s limit") from None
            raise SqlError(_duck_message(e)) from None
        finally:
            timer.cancel()
    finally:
        con.close()
    truncated = result.num_rows > row_limit
    if truncated:
        result = result.slice(0, row_limit)
    return QueryResult(result, truncated, row_limit, used, snapshots, time.perf_counter() - started)


def _duck_message(e: BaseException) -> str:
    text = str(e).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return " ".join(lines[:2])[:500] if lines else type(e).__name__
