"""Benchmark: safe SQL over a dataset against DuckDB reading the same Parquet files directly.

Manara side: `manara.lake.sql.run_query` end to end (sqlglot checks, snapshot planning, a fresh
locked DuckDB, the scan, the row limit, the audit event). Reference: one DuckDB connection running
the same query over `read_parquet([the snapshot's data files])`, in the same process. The dataset is
the 1,000,000-row CSV of `bench/ingest_csv.py`, ingested once.

    .venv/bin/python bench/sql_scan.py [--rows 1000000] [--repeat 7] [--json]

Each query's ratio is reference seconds / Manara seconds (1.0 = no overhead); the median over
repeats is printed per query. There is no pass/fail target: this tracks the cost of the safety layers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_csv import generate_csv, machine_info  # noqa: E402

from manara.config import Settings  # noqa: E402
from manara.lake.ingest import ingest_file  # noqa: E402
from manara.lake.sql import run_query  # noqa: E402
from manara.workspace import init_workspace  # noqa: E402

QUERIES = {
    "count": "SELECT count(*) FROM big",
    "group_by": "SELECT province, avg(amount) AS avg_amount, count(*) AS n FROM big GROUP BY province",
    "point": "SELECT * FROM big WHERE id = 123456",
    "top_k": "SELECT id, amount FROM big ORDER BY amount DESC LIMIT 10",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the medians")
    args = parser.parse_args(argv)

    csv = generate_csv(args.rows, 42)
    home = Path(tempfile.mkdtemp(prefix="manara-sqlbench-")) / "home"
    ws = init_workspace(Settings(home=home)).workspace
    principal = ws.principal()
    ingest_file(ws, principal, csv, "big")
    table = ws.catalog.load_table(("default", "big"))
    files = [t.file.file_path.removeprefix("file://") for t in table.scan().plan_files()]
    ref = duckdb.connect()
    ref.execute(f"CREATE VIEW big AS SELECT * FROM read_parquet({files!r})")

    print(f"Manara SQL vs DuckDB on the same Parquet files: {args.rows:,} rows, {len(files)} files")
    print(f"machine: {json.dumps(machine_info())}")
    print(f"{'query':<10} {'manara ms':>10} {'duckdb ms':>10} {'ratio':>6}")
    results: dict[str, dict[str, float]] = {}
    for name, sql in QUERIES.items():
        m_times, d_times = [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            manara_rows = run_query(ws, principal, sql).table.to_pylist()
            m_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            duck_rows = ref.sql(sql).fetchall()
            d_times.append(time.perf_counter() - t)
            if len(manara_rows) != len(duck_rows):
                raise SystemExit(f"{name}: Manara returned {len(manara_rows)} rows, DuckDB {len(duck_rows)}")
        m, d = statistics.median(m_times), statistics.median(d_times)
        ratios = [dd / mm for mm, dd in zip(m_times, d_times, strict=True)]
        results[name] = {"manara_ms": m * 1000, "duckdb_ms": d * 1000, "ratio": statistics.median(ratios)}
        print(f"{name:<10} {m * 1000:>10.1f} {d * 1000:>10.1f} {results[name]['ratio']:>6.2f}")
    ws.close()
    if args.json:
        print(json.dumps({"rows": args.rows, "queries": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
