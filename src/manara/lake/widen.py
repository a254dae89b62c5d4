"""Widen a dataset column's type, keeping every stored row: what a steward approves when a source
starts sending values the dataset's column cannot hold (a long column receiving 12.5 or "12 MAD").

`widened_type(stored, incoming)` proposes the narrowest type that holds every value of both;
`widen_column(...)` applies a target type in ONE Iceberg commit, audited with it: either the dataset
has the new type and every row converted, or nothing changed.

**In place when Iceberg allows it.** int → long, float → double and a larger decimal precision (same
scale) are Iceberg type promotions: the schema is updated and no data file is touched (old files are
read back as the wider type).

**Otherwise the column is replaced and the data rewritten, in one transaction.** Iceberg ties a
field's type to its field id, so the column is deleted and added again with the same name (a new
field id) and moved back to its old position. pyiceberg allows deleting and re-adding a name in one
`UpdateSchema`, but a move inside that same `UpdateSchema` resolves the name to the deleted field and
fails, so the move is a second `UpdateSchema` staged in the same transaction (the metadata gains an
intermediate schema that no snapshot ever uses). Then the current snapshot is read batch by batch
(`scan().to_arrow_batch_reader()`), the column is converted with vectorised Arrow casts, and the
batches are written as new data files of about `write.target-file-size-bytes` each, one file at a
time (memory stays bounded by one file's worth of batches). A single OVERWRITE snapshot then removes
every data file of the old snapshot and adds the new ones, so readers never see an intermediate
state, the old snapshot is its parent and stays readable for time travel with its own schema (no
snapshot is expired), and the new snapshot is checked, before the commit, to hold exactly the rows
that were read. A dataset without data files (no snapshot yet, or every row deleted) gets an empty
snapshot the same way, so that its commit too requires that no data arrived meanwhile. Table
properties (pipeline cursors `manara.pipeline.*` included) are not touched. Partition, sort-order and
identifier columns, and any column of a partitioned dataset (Manara creates none), are only widened
in place.

**Concurrency.** The commit requires the schema and the snapshot it started from. When another
writer commits meanwhile, pyiceberg retries the commit and first validates the overwrite against
what was committed since: it deletes "every row" (an always-true predicate), so under Iceberg's
serializable isolation (the default, which Manara never changes) any data file added or removed
meanwhile fails the validation, and the widen raises `Conflict` with nothing changed; a concurrent
commit that only changes table properties (a pipeline's cursor) is kept. A table configured for
snapshot isolation is refused, since a retry there would keep rows written with the old column.
Data files written for a widen that fails before or at the commit are deleted.

**Conversions** never change a stored value: `to` must hold every value of the stored type (a
narrowing is refused), and each value must convert exactly (Arrow safe casts; a long becomes a
double only if the double is exactly that long, which every |value| ≤ 2^53 is and larger ones may
not be), else the first value that does not fit is named with its row. Text renders values as a
user writes them: 12, 12.5 (shortest round-trip form, so 1.0 becomes "1"), true/false, 2024-05-01,
ISO 8601 timestamps (2024-05-01T10:00:00, fractions only when present, "Z" for timestamptz).
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError, ValidationException
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import write_file
from pyiceberg.manifest import DataFile
from pyiceberg.schema import Schema
from pyiceberg.table import Table, TableProperties, Transaction, WriteTask
from pyiceberg.table.snapshots import IsolationLevel, Operation, Snapshot
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    NestedField,
    PrimitiveType,
    StringType,
    TimestampType,
    TimestamptzType,
    TimeType,
)
from pyiceberg.utils.properties import property_as_int

from manara.errors import BadRequest, Conflict, DatasetNotFound
from manara.govern import audit
from manara.lake.schema import _promotion, first_bad_value, iceberg_compatible

MAX_DECIMAL_PRECISION = 38
_INT_DIGITS = {pa.int32(): 10, pa.int64(): 19}  # decimal digits an int of each width may need
_TWO_TO_63 = 9.223372036854775808e18

SNAPSHOT_WIDEN = "manara.widen"
SNAPSHOT_ACTOR = "manara.actor"


@dataclass
class WidenResult:
    column: str
    from_type: str
    to_type: str
    rows: int
    rewritten: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- proposing a type ------------------------------------------------------------------------------


def _kind(t: pa.DataType) -> str:
    if t in (pa.int32(), pa.int64()):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_decimal128(t):
        return "decimal"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_date32(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_time64(t):
        return "time"
    if pa.types.is_string(t):
        return "string"
    return "other"  # binary, nested, anything Iceberg stores but that nothing else widens into


def _decimal(integer_digits: int, scale: int) -> pa.DataType | None:
    precision = integer_digits + scale
    return pa.decimal128(precision, scale) if precision <= MAX_DECIMAL_PRECISION else None


def widened_type(stored: pa.DataType, incoming: pa.DataType) -> pa.DataType | None:
    """The narrowest Iceberg-storable Arrow type holding every value of both types, or None.

    int + float → double (a long above 2^53 in magnitude may have no exact double: `widen_column`
    refuses such a stored value rather than round it); anything simple + string → string;
    date + timestamp → timestamp; timestamp + timestamptz → timestamptz; decimals (and ints, 10 or 19
    integer digits) → a decimal with enough integer and fraction digits, up to precision 38;
    bool + int → that int. Nested, binary and other pairs → None.
    """
    a, b = iceberg_compatible(stored), iceberg_compatible(incoming)
    if a == b:
        return a
    kinds = {_kind(a), _kind(b)}
    if "other" in kinds:
        return None
    if "string" in kinds:
        return pa.string()
    if kinds == {"int"}:
        return pa.int64()
    if kinds <= {"int", "float"}:
        return pa.float64()
    if kinds == {"bool", "int"}:
        return a if _kind(a) == "int" else b
    if kinds <= {"int", "decimal"}:
        digits = [_INT_DIGITS[t] if _kind(t) == "int" else t.precision - t.scale for t in (a, b)]
        scale = max(t.scale if _kind(t) == "decimal" else 0 for t in (a, b))
        return _decimal(max(digits), scale)
    if kinds == {"timestamp"}:
        return pa.timestamp("us", tz="UTC")  # they differ only in having a time zone
    if kinds == {"date", "timestamp"}:
        return a if _kind(a) == "timestamp" else b
    return None


_ICEBERG_TYPES: list[tuple[pa.DataType, PrimitiveType]] = [
    (pa.bool_(), BooleanType()),
    (pa.int32(), IntegerType()),
    (pa.int64(), LongType()),
    (pa.float32(), FloatType()),
    (pa.float64(), DoubleType()),
    (pa.date32(), DateType()),
    (pa.time64("us"), TimeType()),
    (pa.timestamp("us"), TimestampType()),
    (pa.timestamp("us", tz="UTC"), TimestamptzType()),
    (pa.string(), StringType()),
    (pa.binary(), BinaryType()),
]


def _iceberg_type(t: pa.DataType) -> PrimitiveType | None:
    """The Iceberg type a column of Arrow type `t` (as `iceberg_compatible` gives it) has, if simple."""
    if pa.types.is_decimal128(t):
        return DecimalType(t.precision, t.scale) if 0 < t.precision <= MAX_DECIMAL_PRECISION else None
    return next((ice for arrow, ice in _ICEBERG_TYPES if arrow == t), None)


# --- converting values -----------------------------------------------------------------------------


class _Unfit(Exception):
    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def _trim_zero_fraction(text: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(text, pattern=r"\.000000$", replacement="")


def _as_text(values: pa.Array) -> pa.Array:
    t = values.type
    if pa.types.is_timestamp(t):
        text = _trim_zero_fraction(pc.strftime(values, format="%Y-%m-%dT%H:%M:%S"))  # in UTC when tz-aware
        return pc.binary_join_element_wise(text, "Z", "") if t.tz else text
    if pa.types.is_time(t):
        return _trim_zero_fraction(pc.cast(values, pa.string()))
    return pc.cast(values, pa.string())


def _convert(values: pa.Array, to: pa.DataType) -> pa.Array:
    """`values` as type `to`, every value exactly; raises `_Unfit` at the first one that is not."""
    if pa.types.is_string(to):
        return _as_text(values)
    if values.type == pa.int64() and pa.types.is_floating(to):
        # Arrow's safe cast refuses every |long| > 2^53; accept those that survive the round trip
        out = pc.cast(values, to, safe=False)
        exact = pc.and_(
            pc.less(pc.abs(out), _TWO_TO_63), pc.equal(pc.cast(out, pa.int64(), safe=False), values)
        )
        bad = pc.indices_nonzero(pc.invert(pc.fill_null(exact, True)))
        if len(bad):
            raise _Unfit(bad[0].as_py())
        return out
    try:
        return pc.cast(values, to, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise _Unfit(first_bad_value(values, to)) from None


def _shown(values: pa.Array, index: int) -> object:
    try:
        return values[index].as_py()
    except Exception:  # values without a Python form
        return str(values[index])


# --- widening a column -----------------------------------------------------------------------------


def widen_column(
    catalog: SqlCatalog,
    ident: tuple[str, str],
    column: str,
    to: pa.DataType,
    *,
    actor: str,
    tenant: str,
    reason: str = "",
) -> WidenResult:
    """Change `column` of dataset `ident` to type `to`, keeping every row (see the module docstring).

    One Iceberg commit with its `dataset.widen` audit event; a refusal is audited with outcome
    "error". `to` equal to the column's type changes nothing and commits nothing. The caller checks
    that `actor` may change the dataset (a steward).
    """
    ev = audit.EventFields(actor, "dataset.widen", tenant=tenant, target=ident[1], detail={"column": column})
    if reason:
        ev.detail["reason"] = reason
    try:
        return _widen(catalog, ident, column, to, actor, ev)
    except Exception as e:
        ev.outcome = "error"
        ev.detail["error"] = getattr(e, "detail", None) or f"{type(e).__name__}: {e}"
        audit.write(catalog.engine, ev)
        raise


def _widen(
    catalog: SqlCatalog,
    ident: tuple[str, str],
    column: str,
    to: pa.DataType,
    actor: str,
    ev: audit.EventFields,
) -> WidenResult:
    name = ident[1]
    try:
        table = catalog.load_table(ident)
    except NoSuchTableError:
        raise DatasetNotFound(f"dataset '{name}' does not exist") from None
    schema = table.schema()
    names = [f.name for f in schema.fields]
    if column not in names:
        raise BadRequest(f"dataset '{name}' has no column '{column}'")
    field = schema.find_field(column)
    from_type = str(field.field_type)
    if not field.field_type.is_primitive:
        raise BadRequest(f"column '{column}' is {from_type}: only columns of a simple type can be widened")
    stored = iceberg_compatible(schema.as_arrow().field(column).type)
    target = iceberg_compatible(to)
    new_type = _iceberg_type(target)
    if new_type is None:
        raise BadRequest(f"{to} is not a type a dataset column can be widened to")
    to_type = str(new_type)
    ev.detail.update({"from": from_type, "to": to_type})
    snapshot = table.current_snapshot()
    total = _total_rows(snapshot)
    if target == stored:
        return WidenResult(column, from_type, to_type, total, rewritten=False)
    wider = widened_type(stored, target)
    if wider != target:
        hint = f"; {_iceberg_type(wider)} would" if wider is not None and _iceberg_type(wider) else ""
        raise BadRequest(
            f"column '{column}' cannot be narrowed from {from_type} to {to_type}: {to_type} does not hold "
            f"every {from_type} value{hint}"
        )

    tx = table.transaction()
    promoted = _promotion(stored, target)
    written: list[DataFile] = []
    rows, rewritten = total, False
    if promoted is not None:
        with tx.update_schema() as upd:
            upd.update_column(column, field_type=promoted)
    else:
        _check_replaceable(table, field)
        if not table.spec().is_unpartitioned():  # Manara writes none; pyiceberg streams into none
            raise BadRequest(
                f"dataset '{name}' is partitioned: its columns can only be widened in place "
                f"(int → long, float → double, a larger decimal precision)"
            )
        _replace_column(tx, field, new_type, names)
        if table.metadata.isolation_level(Operation.DELETE) != IsolationLevel.SERIALIZABLE:
            raise BadRequest(
                f"dataset '{name}' allows snapshot-isolated deletes ({TableProperties.WRITE_DELETE_ISOLATION_LEVEL}"
                f"); widening needs serializable isolation so that rows committed meanwhile are never lost"
            )
        tasks = list(table.scan(snapshot_id=snapshot.snapshot_id).plan_files()) if snapshot else []
        try:
            rows = _rewrite(table, tx, snapshot, tasks, column, target, to_type, written, actor)
        except BaseException:
            _remove(table.io, written)
            raise
        rewritten = bool(tasks)
    ev.detail.update({"rows": rows, "rewritten": rewritten})
    try:
        with audit.iceberg_commit_audit(catalog.engine, ev):
            tx.commit_transaction()
    except (CommitFailedException, ValidationException) as err:
        _remove(table.io, written)  # the commit did not land: its files are nobody's
        raise Conflict(
            f"dataset '{name}' was changed by another writer while column '{column}' was being widened; "
            f"nothing was changed, retry ({err})"
        ) from None
    return WidenResult(column, from_type, to_type, rows, rewritten)


def _check_replaceable(table: Table, field: NestedField) -> None:
    """Partition, sort and identifier columns are not replaced: those name the old field id."""
    fid = field.field_id
    if any(p.source_id == fid for spec in table.specs().values() for p in spec.fields):
        raise BadRequest(f"column '{field.name}' partitions the dataset: it cannot be widened")
    if any(s.source_id == fid for s in table.sort_order().fields):
        raise BadRequest(f"column '{field.name}' is in the dataset's sort order: it cannot be widened")
    if fid in table.schema().identifier_field_ids:
        raise BadRequest(f"column '{field.name}' identifies rows: it cannot be widened")


def _replace_column(tx: Transaction, field: NestedField, new_type: PrimitiveType, names: list[str]) -> None:
    """Delete the column and add it again with `new_type` (a new field id) at the same position."""
    # a required column stays required: the same commit rewrites every data file with its values
    with tx.update_schema(allow_incompatible_changes=field.required) as upd:
        upd.delete_column(field.name)
        upd.add_column(field.name, new_type, doc=field.doc, required=field.required)
    position = names.index(field.name)
    if position < len(names) - 1:  # the added column comes last; a move must be a second update
        with tx.update_schema() as upd:
            if position == 0:
                upd.move_first(field.name)
            else:
                upd.move_after(field.name, names[position - 1])
    if [f.name for f in tx.table_metadata.schema().fields] != names:  # pragma: no cover - a pyiceberg change
        raise RuntimeError(f"replacing column '{field.name}' did not keep the column order")


def _rewrite(
    table: Table,
    tx: Transaction,
    snapshot: Snapshot | None,
    tasks: list[Any],
    column: str,
    target: pa.DataType,
    to_type: str,
    written: list[DataFile],
    actor: str,
) -> int:
    """Stage one OVERWRITE snapshot replacing every data file by a converted copy; returns the rows.

    A table without data files gets an empty snapshot all the same: its commit then requires the
    table to still have no data (a concurrent first append would otherwise keep the old column).
    """
    metadata = tx.table_metadata  # with the new schema
    new_schema: Schema = metadata.schema()
    # the Arrow types ingest writes (string, not pyiceberg's large_string), with the new field ids
    out_schema = pa.schema([f.with_type(iceberg_compatible(f.type)) for f in new_schema.as_arrow()])
    index = out_schema.get_field_index(column)
    target_bytes = property_as_int(
        metadata.properties,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
    )
    assert target_bytes is not None
    write_uuid, counter = uuid.uuid4(), itertools.count(0)

    def flush(batches: list[pa.RecordBatch]) -> None:
        task = WriteTask(
            write_uuid=write_uuid, task_id=next(counter), schema=new_schema, record_batches=batches
        )
        written.extend(write_file(io=table.io, table_metadata=metadata, tasks=iter([task])))

    rows = 0
    buffer: list[pa.RecordBatch] = []
    buffered = 0
    batches = (
        table.scan(snapshot_id=snapshot.snapshot_id).to_arrow_batch_reader() if snapshot and tasks else []
    )
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if batch.schema.names != out_schema.names:  # pragma: no cover - guarded by _replace_column
            raise RuntimeError("the scanned columns do not match the new schema")
        values = batch.column(index)
        try:
            converted = _convert(values, target)
        except _Unfit as unfit:
            row = rows + unfit.index + 1
            raise BadRequest(
                f"column '{column}' cannot become {to_type}: row {row} holds {_shown(values, unfit.index)!r}, "
                f"which {to_type} cannot hold exactly; nothing was changed",
                column=column,
                row=row,
            ) from None
        arrays = [converted if i == index else col for i, col in enumerate(batch.columns)]
        arrays = [a if a.type == f.type else a.cast(f.type) for a, f in zip(arrays, out_schema, strict=True)]
        out = pa.RecordBatch.from_arrays(arrays, schema=out_schema)
        rows += out.num_rows
        buffer.append(out)
        buffered += out.nbytes
        if buffered >= target_bytes:
            flush(buffer)
            buffer, buffered = [], 0
    if buffer:
        flush(buffer)

    # exactly the rows read, once each
    written_rows = sum(f.record_count for f in written)
    if written_rows != rows:
        raise RuntimeError(f"widen wrote {written_rows} rows for the {rows} it read")
    if not any(t.delete_files for t in tasks) and sum(t.file.record_count for t in tasks) != rows:
        raise RuntimeError(f"widen read {rows} rows from files that hold a different number")

    props = {SNAPSHOT_WIDEN: column, SNAPSHOT_ACTOR: actor}
    with tx.update_snapshot(snapshot_properties=props).overwrite() as overwrite:
        overwrite.delete_by_predicate(AlwaysTrue())  # makes a concurrent commit fail the retry's validation
        for task in tasks:
            overwrite.delete_data_file(task.file)
        for data_file in written:
            overwrite.append_data_file(data_file)
    staged_rows = _total_rows(tx.table_metadata.current_snapshot())
    if staged_rows != rows:
        raise RuntimeError(f"the widened snapshot would hold {staged_rows} rows, not {rows}")
    return rows


def _total_rows(snapshot: Snapshot | None) -> int:
    summary = snapshot.summary.additional_properties if snapshot and snapshot.summary else {}
    return int(summary.get("total-records", 0))


def _remove(io: FileIO, files: list[DataFile]) -> None:
    for data_file in files:
        with contextlib.suppress(Exception):
            io.delete(data_file.file_path)
