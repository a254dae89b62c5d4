"""Data files written batch by batch (the pipeline's streaming write): rolled at the target size,
with pyiceberg's field ids and statistics, readable once committed, deleted when abandoned."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.io import load_file_io

from manara.lake.catalog import TABLE_DEFAULTS, ensure_namespace
from manara.lake.datafiles import DataFileWriter
from manara.workspace import Workspace

SCHEMA = pa.schema(
    [pa.field("id", pa.int64()), pa.field("name", pa.string()), pa.field("amount", pa.decimal128(12, 2))]
)


def batches(n: int, size: int) -> list[pa.RecordBatch]:
    out = []
    for start in range(0, n, size):
        ids = list(range(start, min(start + size, n)))
        out.append(pa.RecordBatch.from_arrays(
            [pa.array(ids, pa.int64()), pa.array([f"n{i}" for i in ids]),
             pa.array([Decimal(i) / 4 for i in ids], pa.decimal128(12, 2))],
            schema=SCHEMA,
        ))  # fmt: skip
    return out


@pytest.fixture
def table(ws: Workspace):  # type: ignore[no-untyped-def]
    ensure_namespace(ws.catalog, "default")
    props = {**TABLE_DEFAULTS, "write.target-file-size-bytes": str(1 << 20)}  # 1 MiB: several files
    return ws.catalog.create_table(("default", "files_test"), schema=SCHEMA, properties=props)


def test_batches_roll_into_target_sized_files_that_commit_and_read_back(ws: Workspace, table) -> None:  # type: ignore[no-untyped-def]
    writer = DataFileWriter(table.io, table.metadata, SCHEMA)
    for b in batches(100_000, 7_000):
        writer.write(b)
    files = writer.close()
    assert len(files) > 2 and sum(f.record_count for f in files) == 100_000
    assert all(Path(f.file_path.removeprefix("file://")).exists() for f in files)
    first = files[0]
    assert first.lower_bounds and first.upper_bounds and first.null_value_counts  # pyiceberg's statistics
    tx = table.transaction()
    with tx.update_snapshot(snapshot_properties={"k": "v"}).fast_append() as append:
        for f in files:
            append.append_data_file(f)
    tx.commit_transaction()
    got = ws.catalog.load_table(("default", "files_test")).scan().to_arrow().sort_by("id")
    assert got.num_rows == 100_000
    assert got.column("id").to_pylist() == list(range(100_000))
    assert got.column("amount")[5].as_py() == Decimal("1.25")
    # pruning works on the statistics: a filter on id reads only the files that may hold it
    scan = ws.catalog.load_table(("default", "files_test")).scan(row_filter="id >= 99990")
    assert len(list(scan.plan_files())) == 1 and scan.to_arrow().num_rows == 10


def test_an_abandoned_writer_deletes_its_files(table) -> None:  # type: ignore[no-untyped-def]
    writer = DataFileWriter(load_file_io({}, table.metadata.location), table.metadata, SCHEMA)
    for b in batches(50_000, 5_000):
        writer.write(b)
    assert writer.paths and Path(writer.paths[0].removeprefix("file://")).exists()
    writer.abort()
    assert not any(Path(p.removeprefix("file://")).exists() for p in writer.paths)
    assert table.current_snapshot() is None


def test_each_file_keeps_a_dictionary_only_for_columns_whose_values_repeat(ws: Workspace, table) -> None:  # type: ignore[no-untyped-def]
    schema = pa.schema(
        [pa.field("id", pa.int64()), pa.field("city", pa.string()), pa.field("note", pa.string())]
    )
    cities = ["Rabat", "Fès", "Agadir", None]
    big = pa.RecordBatch.from_pylist(
        [{"id": i, "city": cities[i % 4], "note": f"note {i}"} for i in range(5_000)], schema=schema
    )
    small = big.slice(0, 200)  # too few values to judge: Parquet's default, a dictionary everywhere
    nested = pa.RecordBatch.from_arrays(
        [pa.array(range(5_000), pa.int64()), pa.array([[i] for i in range(5_000)], pa.list_(pa.int64()))],
        names=["id", "tags"],
    )
    for first, want in ((big, {"id": False, "city": True, "note": False}),
                        (small, {"id": True, "city": True, "note": True}),
                        (nested, {"id": True, "tags.list.element": True})):  # fmt: skip
        ensure_namespace(ws.catalog, "default")
        name = f"dict_{first.num_columns}_{first.num_rows}"
        t = ws.catalog.create_table(("default", name), schema=first.schema, properties=TABLE_DEFAULTS)
        writer = DataFileWriter(t.io, t.metadata, first.schema)
        writer.write(first)
        writer.write(first)  # a second row group follows the file's choice
        (data_file,) = writer.close()
        meta = pq.ParquetFile(data_file.file_path.removeprefix("file://")).metadata
        assert meta.num_row_groups == 2
        for rg in range(meta.num_row_groups):
            got = {
                meta.row_group(rg).column(c).path_in_schema: meta.row_group(rg).column(c).has_dictionary_page
                for c in range(meta.num_columns)
            }
            assert got == want, (name, rg)
        tx = t.transaction()
        with tx.update_snapshot().fast_append() as append:
            append.append_data_file(data_file)
        tx.commit_transaction()
        back = ws.catalog.load_table(("default", name)).scan().to_arrow()
        assert back.num_rows == 2 * first.num_rows
        assert back.slice(0, first.num_rows).equals(pa.Table.from_batches([first]).cast(back.schema))
