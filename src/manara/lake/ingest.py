"""Ingest a file into a dataset: one Iceberg commit per ingest, whole or nothing, audited with it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.table import Transaction

from manara.errors import BadRequest, Conflict, EmptyFile, Forbidden, IngestError, ManaraError
from manara.govern import audit
from manara.govern.principal import Principal
from manara.lake import schema as schema_rules
from manara.lake.catalog import TABLE_DEFAULTS, ensure_namespace, identifier
from manara.lake.readers import open_source
from manara.meta.models import Role
from manara.workspace import Workspace

MODES = ("append", "overwrite", "upsert")
# the types a user may fix for a CSV column (`--type name=string`), in DuckDB's names
COLUMN_TYPES = {
    "string": "VARCHAR",
    "int": "INTEGER",
    "long": "BIGINT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
}


def duckdb_types(types: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for column, name in types.items():
        sql = COLUMN_TYPES.get(name.strip().lower())
        if sql is None:
            raise BadRequest(
                f"unknown type '{name}' for column '{column}': choose one of {', '.join(COLUMN_TYPES)}"
            )
        out[column] = sql
    return out


def parse_type_specs(specs: list[str] | str | None) -> dict[str, str]:
    """'name=string' items (a list, or one comma-separated string) as {column: type}."""
    if not specs:
        return {}
    items = specs.split(",") if isinstance(specs, str) else specs
    out = {}
    for item in items:
        column, sep, name = item.partition("=")
        if not sep or not column.strip() or not name.strip():
            raise BadRequest(f"'{item}' is not COLUMN=TYPE (e.g. ice=string)")
        out[column.strip()] = name.strip()
    return out


Progress = Callable[[int], None]

_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def _dataset_lock(tenant: str, dataset: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((tenant, dataset), threading.Lock())


@dataclass(frozen=True)
class IngestOptions:
    """How to read the file and how to commit it."""

    mode: str = "append"
    key: str | None = None
    format: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    types: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    owner: str | None = None


@dataclass
class IngestResult:
    dataset: str
    mode: str
    rows: int
    snapshot_id: int
    created: bool
    format: str
    encoding: str | None
    delimiter: str | None
    columns_added: list[str] = field(default_factory=list)
    columns_promoted: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the reader decided: transcoding, text columns
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ingest_file(
    ws: Workspace,
    principal: Principal,
    path: Path,
    dataset: str,
    *,
    mode: str = "append",
    key: str | None = None,
    format: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    types: Mapping[str, str] | None = None,
    source_name: str | None = None,
    description: str | None = None,
    owner: str | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Read `path` and commit it to `dataset` of the principal's tenant."""
    source_label = source_name or path.name
    ev = audit.EventFields(
        principal.actor,
        "dataset.ingest",
        tenant=principal.tenant,
        target=dataset,
        detail={"source": source_label, "mode": mode},
    )
    started = time.perf_counter()
    try:
        principal.require(Role.steward, "ingest")
        ident = identifier(principal.tenant, dataset)
        if mode not in MODES:
            raise BadRequest(f"unknown mode '{mode}': choose one of {', '.join(MODES)}")
        if mode == "upsert" and not key:
            raise BadRequest("upsert needs --key COLUMN: the column that identifies a row")
        with _dataset_lock(principal.tenant, dataset):
            opts = IngestOptions(
                mode, key, format, encoding, delimiter, duckdb_types(types or {}), description, owner
            )
            result = _ingest(ws, principal, path, ident, opts, source_label, progress, ev)
    except ManaraError as e:
        ev.outcome, ev.detail["error"] = ("denied" if isinstance(e, Forbidden) else "error"), e.detail
        audit.write(ws.engine, ev)
        raise
    except Exception as e:
        ev.outcome, ev.detail["error"] = "error", f"{type(e).__name__}: {e}"
        audit.write(ws.engine, ev)
        raise IngestError(f"{source_label}: ingest failed: {e}") from e
    result.seconds = time.perf_counter() - started
    return result


def _ingest(
    ws: Workspace,
    principal: Principal,
    path: Path,
    ident: tuple[str, str],
    opts: IngestOptions,
    source_label: str,
    progress: Progress | None,
    ev: audit.EventFields,
) -> IngestResult:
    mode, key, owner = opts.mode, opts.key, opts.owner
    catalog = ws.catalog
    ensure_namespace(catalog, principal.tenant)
    try:
        table = catalog.load_table(ident)
    except NoSuchTableError:
        table = None
    current = table.schema().as_arrow() if table is not None else None
    # a column the dataset stores as text is read as text: no re-rendering of '1.50' or '05/01/2024'
    text_columns = [
        f.name for f in current or [] if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    ]
    with open_source(
        path, format=opts.format, encoding=opts.encoding, delimiter=opts.delimiter, tmp_dir=ws.settings.tmp_path,
        display_name=source_label, column_types=opts.types, text_columns=text_columns,
    ) as src:  # fmt: skip
        plan = schema_rules.plan(current, src.batches.schema)
        if key and key not in plan.target.names:
            raise BadRequest(f"key column '{key}' is not in the file or the dataset")
        conform = schema_rules.conformer(plan, source_label)
        counted = {"rows": 0}

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in src.batches:
                if batch.num_rows == 0:
                    continue
                out = conform(batch, counted["rows"])
                counted["rows"] += batch.num_rows
                if progress:
                    progress(counted["rows"])
                yield out
            if counted["rows"] == 0:
                raise EmptyFile(f"{source_label} has no data rows")

        reader = pa.RecordBatchReader.from_batches(plan.target, batches())
        # every snapshot of this ingest carries its id (an upsert commits several at once)
        props = {
            "manara.source": source_label,
            "manara.mode": mode,
            "manara.actor": principal.actor,
            "manara.ingest_id": uuid.uuid4().hex,
        }
        if rid := audit.request_id_var.get():
            props["manara.request_id"] = rid
        table_props = {"manara.source": source_label}
        if table is not None:  # tables made before a default changed get it on their next ingest
            table_props.update({k: v for k, v in TABLE_DEFAULTS.items() if table.properties.get(k) != v})
        if opts.description is not None:
            table_props["manara.description"] = opts.description
        if owner is not None:
            table_props["manara.owner"] = owner

        tx: Transaction
        if table is None:
            tx = catalog.create_table_transaction(
                ident,
                schema=plan.target,
                properties={**TABLE_DEFAULTS, "manara.owner": owner or principal.actor},
            )
        else:
            tx = table.transaction()
            if plan.added or plan.promoted:
                with tx.update_schema() as upd:
                    if plan.added:
                        upd.union_by_name(pa.schema(plan.added))
                    for name, new_type in plan.promoted.items():
                        upd.update_column(name, field_type=new_type)
        tx.set_properties(table_props)
        if mode == "append" or table is None:
            tx.append(reader, snapshot_properties=props)
        elif mode == "overwrite":
            tx.overwrite(reader, snapshot_properties=props)
        else:
            data = reader.read_all()
            if data.column(key).null_count:
                raise BadRequest(f"key column '{key}' has empty values; every row needs a key for upsert")
            try:
                tx.upsert(data, join_cols=[key], snapshot_properties=props)  # type: ignore[list-item]
            except ValueError as e:
                raise BadRequest(f"{source_label}: {e}") from None
        snapshot = tx.table_metadata.current_snapshot()
        ev.detail.update(
            rows=counted["rows"],
            format=src.format,
            snapshot_id=snapshot.snapshot_id if snapshot else None,
            columns_added=[f.name for f in plan.added] if table is not None else [],
        )
        try:
            with audit.iceberg_commit_audit(catalog.engine, ev):
                tx.commit_transaction()
        except CommitFailedException as e:
            raise Conflict(
                f"dataset '{ident[1]}' was changed by another writer during the ingest; retry ({e})"
            ) from None
        return IngestResult(
            dataset=ident[1],
            mode=mode,
            rows=counted["rows"],
            snapshot_id=snapshot.snapshot_id if snapshot else 0,
            created=table is None,
            format=src.format,
            encoding=src.encoding,
            delimiter=src.delimiter,
            columns_added=[f.name for f in plan.added] if table is not None else [],
            columns_promoted=list(plan.promoted),
            notes=list(src.notes),
        )
