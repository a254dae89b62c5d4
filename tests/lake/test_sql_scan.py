"""SQL reads what Iceberg holds: evolved schemas, promoted types and old snapshots, through the fast scan."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from manara.govern.principal import Principal
from manara.lake.ingest import ingest_file
from manara.lake.sql import _arrow_source, run_query
from manara.workspace import Workspace


def _parquet(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


def test_evolved_and_promoted_columns_read_back_through_sql(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    first = pa.table({"id": pa.array([1, 2], pa.int32()), "city": ["Rabat", "Fès"]})
    r1 = ingest_file(ws, operator, _parquet(tmp_path / "a.parquet", first), "sites")
    second = pa.table({"id": pa.array([3_000_000_000], pa.int64()), "city": ["Oujda"], "note": ["جديد"]})
    r2 = ingest_file(ws, operator, _parquet(tmp_path / "b.parquet", second), "sites")
    assert r2.columns_added == ["note"] and r2.columns_promoted == ["id"]

    table = ws.catalog.load_table(("default", "sites"))
    assert not isinstance(_arrow_source(table, None), pa.Table), (
        "local copy-on-write data takes the fast scan"
    )

    now = run_query(ws, operator, "SELECT id, city, note FROM sites ORDER BY id").table.to_pylist()
    assert now == [
        {"id": 1, "city": "Rabat", "note": None},
        {"id": 2, "city": "Fès", "note": None},
        {"id": 3_000_000_000, "city": "Oujda", "note": "جديد"},
    ]
    before = run_query(ws, operator, "SELECT * FROM sites ORDER BY id", as_of=str(r1.snapshot_id)).table
    assert before.column_names == ["id", "city"]
    assert before.to_pylist() == [{"id": 1, "city": "Rabat"}, {"id": 2, "city": "Fès"}]


def test_overwritten_rows_are_not_read_after_overwrite(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("k,v\n1,a\n2,b\n", "utf-8")
    ingest_file(ws, operator, csv, "kv")
    csv.write_text("k,v\n3,c\n", "utf-8")
    ingest_file(ws, operator, csv, "kv", mode="overwrite")
    csv.write_text("k,v\n1,z\n", "utf-8")
    ingest_file(ws, operator, csv, "kv", mode="upsert", key="k")
    rows = run_query(ws, operator, "SELECT k, v FROM kv ORDER BY k").table.to_pylist()
    assert rows == [{"k": 1, "v": "z"}, {"k": 3, "v": "c"}]


def test_history_marks_the_inner_steps_of_an_upsert(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    from manara.lake.datasets import dataset_history

    csv = tmp_path / "u.csv"
    csv.write_text("k,v\n1,a\n2,b\n3,c\n", "utf-8")
    ingest_file(ws, operator, csv, "kv")
    csv.write_text("k,v\n2,B\n4,d\n", "utf-8")
    result = ingest_file(ws, operator, csv, "kv", mode="upsert", key="k")

    history = dataset_history(ws, operator, "kv")
    visible = [h for h in history if not h["intermediate"]]
    assert [h["total_rows"] for h in visible] == [4, 3], "one visible entry per ingest, newest first"
    assert visible[0]["snapshot_id"] == result.snapshot_id and visible[0]["current"]
    inner = [h for h in history if h["intermediate"]]
    assert inner and all(h["ingest_id"] == visible[0]["ingest_id"] for h in inner)
