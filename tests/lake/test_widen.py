"""Widening a dataset column: the type changes, every stored row stays, in one audited Iceberg commit."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table, Transaction
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import IntegerType, LongType, NestedField, StringType

from manara.errors import BadRequest, Conflict, DatasetNotFound
from manara.govern import audit
from manara.govern.principal import Principal
from manara.lake.catalog import TABLE_DEFAULTS, open_catalog
from manara.lake.ingest import ingest_file
from manara.lake.sql import run_query
from manara.lake.widen import WidenResult, widen_column, widened_type
from manara.workspace import Workspace

TENANT = "default"
STATE = "manara.pipeline.orders.state"
STATE_VALUE = json.dumps({"seq": 7, "cursor": {"file": "b.csv", "offset": 1234}, "run": "r1"})


# --- helpers ----------------------------------------------------------------------------------------


def _ingest(ws: Workspace, principal: Principal, tmp_path: Path, dataset: str, data: pa.Table) -> None:
    path = tmp_path / f"{dataset}-{len(list(tmp_path.glob('*.parquet')))}.parquet"
    pq.write_table(data, path)
    ingest_file(ws, principal, path, dataset)


def _load(ws: Workspace, dataset: str) -> Table:
    return ws.catalog.load_table((TENANT, dataset))


def _set_props(ws: Workspace, dataset: str, props: dict[str, str]) -> None:
    tx = _load(ws, dataset).transaction()
    tx.set_properties(props)
    tx.commit_transaction()


def _widen(ws: Workspace, dataset: str, column: str, to: pa.DataType, **kw: Any) -> WidenResult:
    return widen_column(ws.catalog, (TENANT, dataset), column, to, actor="steward@x", tenant=TENANT, **kw)


def _data_files_on_disk(table: Table) -> set[str]:
    root = Path(unquote(urlparse(table.location()).path)) / "data"
    return {str(p) for p in root.rglob("*.parquet")}


def _live_files(table: Table) -> set[str]:
    return {unquote(urlparse(t.file.file_path).path) for t in table.scan().plan_files()}


def _field_types(table: Table) -> list[tuple[str, str]]:
    return [(f.name, str(f.field_type)) for f in table.schema().fields]


ORDERS = pa.table(
    {
        "id": pa.array([1, 2, 3, 4], pa.int64()),
        "amount": pa.array([12, -7, None, 9_007_199_254_740_992], pa.int64()),  # 2^53: exactly a double
        "city": ["Rabat", "Fès", None, "Oujda"],
        "day": pa.array([dt.date(2024, 5, 1), dt.date(2024, 5, 2), None, dt.date(1969, 12, 31)]),
    }
)


@pytest.fixture
def orders(ws: Workspace, operator: Principal, tmp_path: Path) -> Table:
    _ingest(ws, operator, tmp_path, "orders", ORDERS)
    _set_props(ws, "orders", {STATE: STATE_VALUE})
    return _load(ws, "orders")


# --- widened_type ------------------------------------------------------------------------------------

TS, TSZ = pa.timestamp("us"), pa.timestamp("us", tz="UTC")


@pytest.mark.parametrize(
    ("stored", "incoming", "expected"),
    [
        (pa.int64(), pa.int64(), pa.int64()),
        (pa.string(), pa.string(), pa.string()),
        (pa.int32(), pa.int64(), pa.int64()),
        (pa.int64(), pa.float64(), pa.float64()),
        (pa.int32(), pa.float32(), pa.float64()),  # float32 cannot hold every int32
        (pa.float32(), pa.int64(), pa.float64()),
        (pa.float32(), pa.float64(), pa.float64()),
        (pa.int64(), pa.string(), pa.string()),
        (pa.float64(), pa.string(), pa.string()),
        (pa.decimal128(10, 2), pa.string(), pa.string()),
        (pa.bool_(), pa.string(), pa.string()),
        (pa.date32(), pa.string(), pa.string()),
        (TSZ, pa.string(), pa.string()),
        (pa.time64("us"), pa.string(), pa.string()),
        (pa.string(), pa.int64(), pa.string()),
        (pa.date32(), TS, TS),
        (pa.date32(), TSZ, TSZ),
        (TSZ, pa.date32(), TSZ),
        (TS, TSZ, TSZ),
        (TSZ, TS, TSZ),
        (pa.decimal128(10, 2), pa.decimal128(12, 2), pa.decimal128(12, 2)),
        (pa.decimal128(10, 2), pa.decimal128(6, 4), pa.decimal128(12, 4)),  # 8 integer + 4 fraction digits
        (pa.decimal128(38, 0), pa.decimal128(10, 2), None),  # would need 40 digits
        (pa.int64(), pa.decimal128(10, 2), pa.decimal128(21, 2)),  # a long has 19 integer digits
        (pa.int32(), pa.decimal128(5, 1), pa.decimal128(11, 1)),
        (pa.decimal128(38, 1), pa.int64(), pa.decimal128(38, 1)),
        (pa.decimal128(38, 20), pa.int64(), None),
        (pa.bool_(), pa.int64(), pa.int64()),
        (pa.int32(), pa.bool_(), pa.int32()),  # the narrowest int that holds both
        # input spellings are normalised as iceberg_compatible does
        (pa.int64(), pa.large_string(), pa.string()),
        (pa.date32(), pa.timestamp("ns"), TS),
        # nothing worth proposing
        (pa.float64(), pa.decimal128(10, 2), None),
        (pa.bool_(), pa.float64(), None),
        (pa.date32(), pa.time64("us"), None),
        (pa.binary(), pa.string(), None),
        (pa.int64(), pa.binary(), None),
        (pa.struct([("a", pa.int64())]), pa.string(), None),
        (pa.list_(pa.int64()), pa.int64(), None),
        (pa.int64(), pa.list_(pa.int64()), None),
    ],
)
def test_widened_type_truth_table(
    stored: pa.DataType, incoming: pa.DataType, expected: pa.DataType | None
) -> None:
    assert widened_type(stored, incoming) == expected
    assert widened_type(incoming, stored) == expected  # symmetric


# --- rewriting widenings ---------------------------------------------------------------------------


def test_long_to_double_keeps_every_row_column_position_and_properties(
    ws: Workspace, operator: Principal, orders: Table
) -> None:
    before = orders.scan().to_arrow()
    old_snapshot = orders.current_snapshot()
    assert old_snapshot is not None
    old_props = dict(orders.properties)
    old_files = _live_files(orders)

    result = _widen(ws, "orders", "amount", pa.float64(), reason="the source sends 12.5")

    assert result == WidenResult("amount", "long", "double", rows=4, rewritten=True)
    table = _load(ws, "orders")
    assert _field_types(table) == [("id", "long"), ("amount", "double"), ("city", "string"), ("day", "date")]
    assert table.schema().find_field("amount").field_id != orders.schema().find_field("amount").field_id
    after = table.scan().to_arrow()
    assert after.num_rows == 4
    assert after.column("amount").to_pylist() == [12.0, -7.0, None, 9_007_199_254_740_992.0]
    for name in ("id", "city", "day"):
        assert after.column(name).to_pylist() == before.column(name).to_pylist()
    # pipeline cursors and every other table property: byte-identical
    assert table.properties == old_props
    assert table.properties[STATE] == STATE_VALUE
    # one OVERWRITE snapshot on top of the old one, which still reads the old values with the old type
    snap = table.current_snapshot()
    assert snap is not None and snap.summary is not None
    assert snap.parent_snapshot_id == old_snapshot.snapshot_id
    assert snap.summary.operation.value == "overwrite"
    assert snap.summary["manara.widen"] == "amount" and snap.summary["manara.actor"] == "steward@x"
    assert snap.summary["total-records"] == "4"
    assert _live_files(table).isdisjoint(old_files)
    assert [s.snapshot_id for s in table.snapshots()][:-1] == [s.snapshot_id for s in orders.snapshots()]
    old = table.scan(snapshot_id=old_snapshot.snapshot_id).to_arrow()
    assert old.schema.field("amount").type == pa.int64()
    assert old.column("amount").to_pylist() == [12, -7, None, 9_007_199_254_740_992]
    # SQL reads the widened column now, and the old one as of the old snapshot
    sql = "SELECT amount FROM orders ORDER BY id"
    now = run_query(ws, operator, sql).table
    assert now.schema.field("amount").type == pa.float64()
    assert now.column("amount").to_pylist() == [12.0, -7.0, None, 9_007_199_254_740_992.0]
    then = run_query(ws, operator, sql, as_of=str(old_snapshot.snapshot_id)).table
    assert then.column("amount").to_pylist() == [12, -7, None, 9_007_199_254_740_992]
    # the pipeline can now append doubles
    tbl = _load(ws, "orders")
    tbl.append(
        pa.table(
            {"id": [5], "amount": [12.5], "city": ["Tanger"], "day": [None]}, schema=tbl.schema().as_arrow()
        )
    )
    assert sorted(v for v in _load(ws, "orders").scan().to_arrow().column("amount").to_pylist() if v) == [
        -7.0, 12.0, 12.5, 9_007_199_254_740_992.0,
    ]  # fmt: skip


def test_long_to_string_renders_numbers_as_written(ws: Workspace, orders: Table) -> None:
    result = _widen(ws, "orders", "amount", pa.string())
    assert (result.from_type, result.to_type, result.rewritten) == ("long", "string", True)
    table = _load(ws, "orders")
    assert _field_types(table)[1] == ("amount", "string")
    assert table.scan().to_arrow().column("amount").to_pylist() == ["12", "-7", None, "9007199254740992"]
    assert table.properties[STATE] == STATE_VALUE
    tbl = _load(ws, "orders")
    tbl.append(
        pa.table(
            {"id": [5], "amount": ["12 MAD"], "city": [None], "day": [None]}, schema=tbl.schema().as_arrow()
        )
    )
    assert "12 MAD" in _load(ws, "orders").scan().to_arrow().column("amount").to_pylist()


def test_every_simple_type_to_string_uses_the_text_a_user_expects(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    utc = dt.UTC
    data = pa.table(
        {
            "flag": [True, False, None],
            "ratio": [12.5, 1.0, 0.1],
            "price": pa.array([Decimal("12.50"), Decimal("-0.05"), None], pa.decimal128(9, 2)),
            "day": [dt.date(2024, 5, 1), None, dt.date(1999, 12, 31)],
            "at": pa.array(
                [dt.datetime(2024, 5, 1, 10), dt.datetime(2024, 5, 1, 10, 0, 0, 120000), None],
                pa.timestamp("us"),
            ),
            "at_utc": pa.array(
                [
                    dt.datetime(2024, 5, 1, 10, tzinfo=utc),
                    None,
                    dt.datetime(2024, 5, 1, 23, 59, 59, 5, tzinfo=utc),
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "clock": pa.array([dt.time(10, 0), dt.time(23, 59, 59, 500), None], pa.time64("us")),
        }
    )
    _ingest(ws, operator, tmp_path, "kinds", data)
    for column in data.column_names:
        assert _widen(ws, "kinds", column, pa.string()).rewritten
    table = _load(ws, "kinds")
    assert [t for _, t in _field_types(table)] == ["string"] * 7
    assert table.schema().as_arrow().names == data.column_names
    assert table.scan().to_arrow().to_pydict() == {
        "flag": ["true", "false", None],
        "ratio": ["12.5", "1", "0.1"],
        "price": ["12.50", "-0.05", None],
        "day": ["2024-05-01", None, "1999-12-31"],
        "at": ["2024-05-01T10:00:00", "2024-05-01T10:00:00.120000", None],
        "at_utc": ["2024-05-01T10:00:00Z", None, "2024-05-01T23:59:59.000005Z"],
        "clock": ["10:00:00", "23:59:59.000500", None],
    }


def test_date_to_timestamp_and_first_column_keeps_its_position(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    data = pa.table({"day": pa.array([dt.date(2024, 5, 1), None, dt.date(1900, 1, 1)]), "n": [1, 2, 3]})
    _ingest(ws, operator, tmp_path, "days", data)
    result = _widen(ws, "days", "day", pa.timestamp("us", tz="UTC"))
    assert (result.from_type, result.to_type, result.rows) == ("date", "timestamptz", 3)
    table = _load(ws, "days")
    assert _field_types(table) == [("day", "timestamptz"), ("n", "long")]
    utc = dt.UTC
    assert table.scan().to_arrow().to_pydict() == {
        "day": [dt.datetime(2024, 5, 1, tzinfo=utc), None, dt.datetime(1900, 1, 1, tzinfo=utc)],
        "n": [1, 2, 3],
    }
    # naive timestamp → timestamptz, in its turn: the last column
    _widen(ws, "days", "n", pa.string())
    assert _field_types(_load(ws, "days")) == [("day", "timestamptz"), ("n", "string")]


def test_many_batches_are_rewritten_exactly_once(ws: Workspace, operator: Principal, tmp_path: Path) -> None:
    n = 100_000
    for part in range(3):
        start = part * n
        _ingest(ws, operator, tmp_path, "big", pa.table({
            "id": pa.array(range(start, start + n), pa.int64()),
            "amount": pa.array([(i * 7919) % 1_000_003 - 500_000 for i in range(start, start + n)], pa.int64()),
            "label": pa.array([f"row-{i}" for i in range(start, start + n)]),
        }))  # fmt: skip
    # small target files: the rewrite writes several files, one at a time
    _set_props(ws, "big", {"write.target-file-size-bytes": str(1 << 20), STATE: STATE_VALUE})
    table = _load(ws, "big")
    assert len(table.snapshots()) == 3
    old_files = _live_files(table)
    before = table.scan().to_arrow()
    props = dict(table.properties)

    result = _widen(ws, "big", "amount", pa.float64())

    assert (result.rows, result.rewritten) == (3 * n, True)
    table = _load(ws, "big")
    after = table.scan().to_arrow()
    assert after.num_rows == 3 * n
    expected = before.set_column(1, "amount", before.column("amount").cast(pa.float64()))
    assert after.sort_by("id").equals(expected.sort_by("id"))
    assert len(set(after.column("id").to_pylist())) == 3 * n  # once each
    new_files = _live_files(table)
    assert new_files.isdisjoint(old_files) and len(new_files) > 1
    assert table.properties == props
    # nothing written besides the live files and the old ones kept for time travel
    assert _data_files_on_disk(table) == old_files | new_files


# --- in-place promotions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "to", "values", "to_type"),
    [
        (pa.int32(), pa.int64(), [1, -2, None], "long"),
        (pa.float32(), pa.float64(), [1.5, None, -0.25], "double"),
        (
            pa.decimal128(5, 2),
            pa.decimal128(9, 2),
            [Decimal("1.50"), None, Decimal("-999.99")],
            "decimal(9, 2)",
        ),
    ],
)
def test_iceberg_promotion_is_in_place_without_rewriting(
    ws: Workspace, stored: pa.DataType, to: pa.DataType, values: list[Any], to_type: str
) -> None:
    catalog = ws.catalog
    table = catalog.create_table(
        (TENANT, "promo"), schema=pa.schema([("k", pa.int64()), ("v", stored)]),
        properties={**TABLE_DEFAULTS, STATE: STATE_VALUE},
    )  # fmt: skip
    table.append(pa.table({"k": [1, 2, 3], "v": pa.array(values, stored)}, schema=table.schema().as_arrow()))
    table = _load(ws, "promo")
    snapshot_id = table.metadata.current_snapshot_id
    files = _live_files(table)
    field_id = table.schema().find_field("v").field_id

    result = _widen(ws, "promo", "v", to)

    assert (result.to_type, result.rows, result.rewritten) == (to_type, 3, False)
    table = _load(ws, "promo")
    assert table.metadata.current_snapshot_id == snapshot_id  # no data commit at all
    assert _live_files(table) == files == _data_files_on_disk(table)
    assert table.schema().find_field("v").field_id == field_id
    assert str(table.schema().find_field("v").field_type) == to_type
    assert table.scan().to_arrow().column("v").to_pylist() == values
    assert table.properties[STATE] == STATE_VALUE


# --- refusals leave the dataset untouched -------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "to", "message"),
    [
        ("nope", pa.float64(), "has no column 'nope'"),
        ("amount", pa.int32(), "cannot be narrowed from long to int"),
        (
            "amount",
            pa.float32(),
            "cannot be narrowed from long to float: float does not hold every long value; double would",
        ),
        ("city", pa.int64(), "cannot be narrowed from string to long"),
        ("day", pa.time64("us"), "cannot be narrowed from date to time"),
        ("amount", pa.list_(pa.int64()), "is not a type a dataset column can be widened to"),
        ("amount", pa.decimal128(10, 0), "cannot be narrowed from long to decimal(10, 0)"),
    ],
)
def test_refused_widen_changes_nothing(
    ws: Workspace, orders: Table, column: str, to: pa.DataType, message: str
) -> None:
    with pytest.raises(BadRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
        _widen(ws, "orders", column, to)
    table = _load(ws, "orders")
    assert table.metadata_location == orders.metadata_location
    assert table.metadata.current_snapshot_id == orders.metadata.current_snapshot_id
    assert table.schema() == orders.schema()
    [event] = audit.query(ws.engine, action="dataset.widen")
    assert event["outcome"] == "error" and message.split(":")[0] in event["detail"]["error"]


def test_a_value_that_does_not_fit_names_its_row_and_leaves_no_files(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    big = 2**53 + 1  # no double is exactly this long
    values = list(range(300_000))
    values[299_000] = big
    # one data file read in several batches, each written to a file of its own before the bad value
    _ingest(ws, operator, tmp_path, "ids", pa.table({"v": pa.array(values, pa.int64())}))
    _set_props(ws, "ids", {"write.target-file-size-bytes": "1"})
    table = _load(ws, "ids")
    assert len(list(table.scan().to_arrow_batch_reader())) > 1
    on_disk = _data_files_on_disk(table)

    with pytest.raises(BadRequest) as err:
        _widen(ws, "ids", "v", pa.float64())
    assert f"row 299001 holds {big}" in err.value.detail
    assert err.value.extra == {"column": "v", "row": 299001}
    after = _load(ws, "ids")
    assert after.metadata_location == table.metadata_location
    assert _data_files_on_disk(after) == on_disk  # the files written before the bad value are removed
    # a long that a double holds exactly is fine however large: 2^60
    _ingest(ws, operator, tmp_path, "pow", pa.table({"v": pa.array([2**60, -(2**62), 3], pa.int64())}))
    _widen(ws, "pow", "v", pa.float64())
    assert _load(ws, "pow").scan().to_arrow().column("v").to_pylist() == [2.0**60, -(2.0**62), 3.0]


def test_nested_columns_and_missing_datasets_are_refused(ws: Workspace) -> None:
    table = ws.catalog.create_table(
        (TENANT, "nested"), schema=pa.schema([("s", pa.struct([("a", pa.int64())])), ("n", pa.int64())])
    )
    table.append(pa.table({"s": [{"a": 1}], "n": [1]}, schema=table.schema().as_arrow()))
    with pytest.raises(BadRequest, match="only columns of a simple type"):
        _widen(ws, "nested", "s", pa.string())
    with pytest.raises(BadRequest, match="has no column 's.a'"):
        _widen(ws, "nested", "s.a", pa.string())
    assert _load(ws, "nested").metadata_location == table.metadata_location
    with pytest.raises(DatasetNotFound):
        _widen(ws, "absent", "x", pa.string())


def test_partitioned_tables_are_only_widened_in_place(ws: Workspace) -> None:
    schema = Schema(NestedField(1, "k", IntegerType()), NestedField(2, "v", LongType()))
    spec = PartitionSpec(PartitionField(source_id=1, field_id=1000, transform=IdentityTransform(), name="k"))
    table = ws.catalog.create_table((TENANT, "parts"), schema=schema, partition_spec=spec)
    table.append(
        pa.table({"k": pa.array([1, 2], pa.int32()), "v": [10, 20]}, schema=table.schema().as_arrow())
    )
    with pytest.raises(BadRequest, match="partitions the dataset"):
        _widen(ws, "parts", "k", pa.string())
    assert _load(ws, "parts").metadata_location == table.metadata_location
    with pytest.raises(BadRequest, match="is partitioned: its columns can only be widened in place"):
        _widen(ws, "parts", "v", pa.string())
    assert _load(ws, "parts").metadata_location == table.metadata_location
    assert not _widen(ws, "parts", "k", pa.int64()).rewritten  # an Iceberg promotion keeps the field id
    result = _load(ws, "parts").scan().to_arrow().sort_by("k")
    assert result.to_pydict() == {"k": [1, 2], "v": [10, 20]}
    assert result.schema.field("k").type == pa.int64()


def test_snapshot_isolated_tables_are_refused(ws: Workspace, orders: Table) -> None:
    _set_props(ws, "orders", {"write.delete.isolation-level": "snapshot"})
    table = _load(ws, "orders")
    with pytest.raises(BadRequest, match="serializable isolation"):
        _widen(ws, "orders", "amount", pa.float64())
    assert _load(ws, "orders").metadata_location == table.metadata_location


def test_same_type_changes_nothing(ws: Workspace, orders: Table) -> None:
    assert _widen(ws, "orders", "amount", pa.int64()) == WidenResult("amount", "long", "long", 4, False)
    assert _load(ws, "orders").metadata_location == orders.metadata_location


# --- concurrency -----------------------------------------------------------------------------------


def _before_commit(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> None:
    """Run `action` (another writer, through its own catalog) just before the widen's commit."""
    real = Transaction.commit_transaction
    done: list[bool] = []

    def commit(self: Transaction) -> Table:
        if not done:
            done.append(True)
            action()
        return real(self)

    monkeypatch.setattr(Transaction, "commit_transaction", commit)


def test_a_concurrent_append_makes_the_widen_a_conflict(
    ws: Workspace, orders: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = open_catalog(ws.settings)

    def append() -> None:
        table = other.load_table((TENANT, "orders"))
        table.append(
            pa.table(
                {"id": [9], "amount": [99], "city": ["Agadir"], "day": [None]},
                schema=table.schema().as_arrow(),
            )
        )

    _before_commit(monkeypatch, append)
    with pytest.raises(Conflict, match="changed by another writer"):
        _widen(ws, "orders", "amount", pa.float64())
    other.engine.dispose()
    table = _load(ws, "orders")
    assert _field_types(table)[1] == ("amount", "long")
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [1, 2, 3, 4, 9]
    assert _data_files_on_disk(table) == _live_files(table)  # the widen's files were removed
    assert len(table.snapshots()) == len(orders.snapshots()) + 1
    assert audit.query(ws.engine, action="dataset.widen")[0]["outcome"] == "error"


def test_a_concurrent_cursor_update_is_kept(
    ws: Workspace, orders: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = open_catalog(ws.settings)
    moved = json.dumps({"seq": 8, "cursor": {"file": "c.csv"}, "run": "r2"})

    def set_cursor() -> None:
        tx = other.load_table((TENANT, "orders")).transaction()
        tx.set_properties({STATE: moved})
        tx.commit_transaction()

    _before_commit(monkeypatch, set_cursor)
    assert _widen(ws, "orders", "amount", pa.float64()).rewritten
    other.engine.dispose()
    table = _load(ws, "orders")
    assert table.properties[STATE] == moved
    assert _field_types(table)[1] == ("amount", "double")
    assert table.scan().to_arrow().num_rows == 4


def test_a_concurrent_first_append_to_an_empty_table_is_a_conflict(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws.catalog.create_table(
        (TENANT, "fresh"), schema=pa.schema([("a", pa.int64())]), properties=TABLE_DEFAULTS
    )
    other = open_catalog(ws.settings)

    def append() -> None:
        table = other.load_table((TENANT, "fresh"))
        table.append(pa.table({"a": [1, 2]}, schema=table.schema().as_arrow()))

    _before_commit(monkeypatch, append)
    with pytest.raises(Conflict):
        _widen(ws, "fresh", "a", pa.string())
    other.engine.dispose()
    table = _load(ws, "fresh")
    assert _field_types(table) == [("a", "long")]
    assert table.scan().to_arrow().column("a").to_pylist() == [1, 2]


# --- empty tables, required columns, audit ---------------------------------------------------------


def test_empty_table_without_snapshot(ws: Workspace) -> None:
    ws.catalog.create_table(
        (TENANT, "fresh"), schema=pa.schema([("a", pa.int64()), ("b", pa.int64()), ("c", pa.int64())]),
        properties={**TABLE_DEFAULTS, STATE: STATE_VALUE},
    )  # fmt: skip
    result = _widen(ws, "fresh", "b", pa.string())
    assert result == WidenResult("b", "long", "string", rows=0, rewritten=False)
    table = _load(ws, "fresh")
    assert _field_types(table) == [("a", "long"), ("b", "string"), ("c", "long")]
    snap = table.current_snapshot()  # an empty one: its commit required the table to have no data
    assert snap is not None and snap.summary is not None
    assert (snap.summary["total-records"], snap.summary["manara.widen"]) == ("0", "b")
    assert table.scan().to_arrow().num_rows == 0
    assert table.properties[STATE] == STATE_VALUE
    assert _widen(ws, "fresh", "a", pa.float64()).to_type == "double"


def test_a_required_column_stays_required_and_documented(ws: Workspace) -> None:
    schema = Schema(
        NestedField(1, "k", LongType(), required=True, doc="the key"),
        NestedField(2, "note", StringType(), required=False),
    )
    table = ws.catalog.create_table((TENANT, "strict"), schema=schema, properties=TABLE_DEFAULTS)
    table.append(pa.table({"k": [1, 2], "note": ["a", None]}, schema=table.schema().as_arrow()))
    _widen(ws, "strict", "k", pa.string())
    field = _load(ws, "strict").schema().find_field("k")
    assert (str(field.field_type), field.required, field.doc) == ("string", True, "the key")
    assert _load(ws, "strict").scan().to_arrow().column("k").to_pylist() == ["1", "2"]


def test_the_widen_is_audited_with_its_commit(ws: Workspace, orders: Table) -> None:
    _widen(ws, "orders", "amount", pa.float64(), reason="source sends 12.5")
    [event] = audit.query(ws.engine, action="dataset.widen")
    assert (event["actor"], event["tenant"], event["target"], event["outcome"]) == (
        "steward@x", TENANT, "orders", "ok",
    )  # fmt: skip
    assert event["detail"] == {
        "column": "amount", "from": "long", "to": "double", "rows": 4, "rewritten": True,
        "reason": "source sends 12.5",
    }  # fmt: skip
    assert audit.verify(ws.engine).ok
