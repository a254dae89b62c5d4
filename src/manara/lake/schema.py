"""Reconcile an incoming Arrow schema with a dataset's Iceberg schema.

Rules, chosen so that no ingest ever loses or silently changes stored data:
- a column the dataset lacks is added (schema evolution);
- a narrower incoming type is cast up (int32 → long, float → double);
- a wider incoming type that Iceberg can promote to (table int → long, float → double,
  decimal precision) promotes the dataset's column;
- any other difference is cast value by value, safely: the ingest is refused at the first value that
  does not fit, naming the column, the row and both types.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.types import DecimalType, DoubleType, IcebergType, LongType

from manara.errors import SchemaMismatch


def iceberg_compatible(t: pa.DataType) -> pa.DataType:
    """The closest Arrow type that Iceberg stores."""
    if pa.types.is_dictionary(t):
        return iceberg_compatible(t.value_type)
    if pa.types.is_null(t):
        return pa.string()
    if pa.types.is_integer(t):
        if t in (pa.int8(), pa.int16(), pa.uint8(), pa.uint16(), pa.int32()):
            return pa.int32()
        return pa.int64()
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz="UTC" if t.tz else None)
    if pa.types.is_time(t):
        return pa.time64("us")
    if pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_duration(t):
        return pa.int64()
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        return pa.list_(iceberg_compatible(t.value_type))
    if pa.types.is_list(t):
        return pa.list_(iceberg_compatible(t.value_type))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(iceberg_compatible(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, iceberg_compatible(f.type)) for f in t])
    if pa.types.is_map(t):
        return pa.map_(iceberg_compatible(t.key_type), iceberg_compatible(t.item_type))
    return t


def _promotion(table_t: pa.DataType, incoming: pa.DataType) -> IcebergType | None:
    """The Iceberg type to promote the dataset's column to, when Iceberg allows it."""
    if table_t == pa.int32() and incoming == pa.int64():
        return LongType()
    if table_t == pa.float32() and incoming == pa.float64():
        return DoubleType()
    if (
        pa.types.is_decimal(table_t)
        and pa.types.is_decimal(incoming)
        and table_t.scale == incoming.scale
        and incoming.precision > table_t.precision
    ):
        return DecimalType(incoming.precision, incoming.scale)
    return None


@dataclass
class SchemaPlan:
    target: pa.Schema
    added: list[pa.Field] = field(default_factory=list)
    promoted: dict[str, IcebergType] = field(default_factory=dict)
    casts: dict[str, pa.DataType] = field(default_factory=dict)


def plan(table_schema: pa.Schema | None, incoming: pa.Schema) -> SchemaPlan:
    names = incoming.names
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise SchemaMismatch(f"the file has duplicate column names: {', '.join(sorted(dupes))}")
    if any(not n.strip() for n in names):
        raise SchemaMismatch("the file has a column with an empty name")
    fields = [pa.field(f.name, iceberg_compatible(f.type), nullable=True) for f in incoming]
    if table_schema is None:
        return SchemaPlan(pa.schema(fields), added=fields)
    result = SchemaPlan(pa.schema([]))
    # pyiceberg reads strings back as large_string: compare in the types we write
    target = {f.name: pa.field(f.name, iceberg_compatible(f.type), nullable=True) for f in table_schema}
    for f in fields:
        existing = target.get(f.name)
        if existing is None:
            result.added.append(f)
            target[f.name] = f
        elif existing.type != f.type:
            promoted = _promotion(existing.type, f.type)
            if promoted is not None:
                result.promoted[f.name] = promoted
                target[f.name] = pa.field(f.name, f.type, nullable=True)
            else:
                result.casts[f.name] = existing.type
    result.target = pa.schema(list(target.values()))
    return result


def first_bad_value(values: pa.Array, to: pa.DataType) -> int:
    """Index of the first value that cannot be cast safely (binary search over vectorised casts)."""
    lo, hi = 0, len(values)
    while lo < hi:
        mid = (lo + hi) // 2
        try:
            pc.cast(values.slice(0, mid + 1), to, safe=True)
            lo = mid + 1
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
    return lo


def _display(values: pa.Array, index: int) -> object:
    if index >= len(values):
        return None
    try:
        return values[index].as_py()
    except Exception:  # some values (e.g. sub-microsecond timestamps) have no Python form
        return str(values[index])


_NAMED: dict[str, pa.DataType] = {
    "string": pa.string(), "long": pa.int64(), "int": pa.int32(), "double": pa.float64(),
    "float": pa.float32(), "boolean": pa.bool_(), "date": pa.date32(), "time": pa.time64("us"),
    "timestamp": pa.timestamp("us", tz="UTC"), "timestamp_ntz": pa.timestamp("us"), "binary": pa.binary(),
}  # fmt: skip
_DECIMAL = re.compile(r"^decimal\((\d{1,2}),\s*(\d{1,2})\)$")


def type_name(t: pa.DataType) -> str:
    """The name a steward reads and writes for a stored type: long, double, string, timestamp,
    decimal(12,2)… (the Arrow form for nested types)."""
    t = iceberg_compatible(t)
    for name, known in _NAMED.items():
        if t == known:
            return name
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    return str(t)


def named_type(name: str) -> pa.DataType:
    """The stored type a name stands for (the inverse of `type_name`); BadRequest when unknown."""
    from manara.errors import BadRequest

    key = name.strip().lower()
    if key in _NAMED:
        return _NAMED[key]
    m = _DECIMAL.match(key)
    if m and 1 <= int(m.group(1)) <= 38 and int(m.group(2)) <= int(m.group(1)):
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    raise BadRequest(f"unknown type '{name}' (use one of: {', '.join(_NAMED)}, decimal(P,S))")


_type_name = type_name


def conformer(schema_plan: SchemaPlan, source: str) -> Callable[[pa.RecordBatch, int], pa.RecordBatch]:
    """A function that turns one incoming batch (starting at data row `offset`) into the target schema."""
    target = schema_plan.target

    def conform(batch: pa.RecordBatch, offset: int) -> pa.RecordBatch:
        arrays = []
        for f in target:
            idx = batch.schema.get_field_index(f.name)
            if idx < 0:
                arrays.append(pa.nulls(batch.num_rows, f.type))
                continue
            col = batch.column(idx)
            if col.type == f.type:
                arrays.append(col)
                continue
            # Iceberg stores microseconds: finer timestamps are truncated, everything else must fit exactly.
            safe = not (pa.types.is_timestamp(col.type) and pa.types.is_timestamp(f.type))
            try:
                arrays.append(pc.cast(col, f.type, safe=safe))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                bad = first_bad_value(col, f.type)
                value = _display(col, bad)
                row = offset + bad + 1
                found = _type_name(iceberg_compatible(col.type))
                raise SchemaMismatch(
                    f"{source}: column '{f.name}' is {_type_name(f.type)} in the dataset, but row {row} "
                    f"of the file holds {value!r} ({found}), which does not fit",
                    column=f.name,
                    row=row,
                    expected_type=_type_name(f.type),
                    found_type=found,
                ) from None
        return pa.RecordBatch.from_arrays(arrays, schema=target)

    return conform
