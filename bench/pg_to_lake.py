"""Benchmark: a PostgreSQL table into the lake, Manara against dlt and against the COPY ceiling.

The table has `--rows` rows (default 1,000,000) and 6 columns (bigint id primary key, int, double,
text of 20 characters, timestamp, numeric(12,2)), made with generate_series. In the same run,
alternating, `--repeat` times:

- **ceiling**: `psql -X -c "COPY bench_pg_to_lake TO STDOUT" > /dev/null` with the cluster's own
  psql: PostgreSQL writing the table as text, read and thrown away. No reader can beat it by much.
- **Manara**: a real pipeline (`apply_pipeline` + `run_pipeline`, source `sql`, full mode, default
  engine and page size, `commit_rows` 1,000,000) into a fresh workspace each repeat: rows/s end to
  end, the Iceberg commit included (creating the workspace and declaring the pipeline are not timed).
  `manara` reads with the default `parallel: 1` (one query at a time, key order); `manara-p2` with
  `parallel: 2` (two key ranges at once, each on its own connection).
- **dlt**: `sql_database` source (dlt's `sql_table`) with `backend="connectorx"` and with
  `backend="pyarrow"`, into dlt's `filesystem` destination writing Parquet in a temporary folder
  (its fastest local destination for Arrow backends: no database load step). Each dlt run is a
  child process (`--dlt-child`), so that its memory is its own: it times `pipeline.run` and reports
  its own peak RSS.

    .venv/bin/pip install -e '.[bench]'        # dlt and connectorx, for this benchmark only
    .venv/bin/python bench/pg_to_lake.py [--rows 1000000] [--repeat 3] [--url postgresql+psycopg://…] [--json]
        [--sides ceiling,manara,manara-p2,dlt-connectorx,dlt-pyarrow]   # a subset, e.g. manara alone

Without `--url`, a throw-away cluster is started with scripts/pg-test-cluster.sh (in
/tmp/manara-pg-bench, port 54394) and stopped at the end. The figures are medians over repeats;
the ratios are Manara rows/s ÷ the best dlt backend's rows/s (target ≥ 2) and Manara rows/s ÷ the
ceiling's (target ≥ 0.4), each the median of the per-repeat ratios. Peak RSS: Manara's is the
process's (reset before each run through /proc/self/clear_refs), dlt's its child's. The script
exits 0 whether or not the targets are met: it is a measurement.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_csv import _loadavg, _peak_rss_mb, _reset_peak_rss, machine_info  # noqa: E402

from manara.config import Settings  # noqa: E402
from manara.connect.pipelines import apply_pipeline, parse_spec, run_pipeline  # noqa: E402
from manara.workspace import init_workspace  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TABLE = "bench_pg_to_lake"
TARGET_DLT = 2.0
TARGET_CEILING = 0.4
CLUSTER_ENV = {"MANARA_PG_DIR": "/tmp/manara-pg-bench", "MANARA_PG_PORT": "54394"}
DLT_BACKENDS = ("connectorx", "pyarrow")
SIDES = ("ceiling", "manara", "manara-p2", *[f"dlt-{b}" for b in DLT_BACKENDS])


@dataclass
class Run:
    seconds: float
    rows: int
    peak_rss_mb: float | None = None

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


# --- the database --------------------------------------------------------------------------------


def start_cluster() -> str:
    out = subprocess.run(
        [str(ROOT / "scripts/pg-test-cluster.sh"), "start"],
        env={**os.environ, **CLUSTER_ENV},
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def stop_cluster() -> None:
    subprocess.run(
        [str(ROOT / "scripts/pg-test-cluster.sh"), "stop"], env={**os.environ, **CLUSTER_ENV}, check=False
    )


def make_table(url: str, rows: int) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
            conn.exec_driver_sql(
                f"CREATE TABLE {TABLE} AS SELECT i::bigint AS id, (i * 7 %% 100000)::int AS qty, "
                "(i * 0.37)::double precision AS score, substr(md5(i::text), 1, 20) AS label, "
                "timestamp '2024-01-01' + i * interval '1 second' AS ts, "
                f"((i %% 100000) / 100.0)::numeric(12, 2) AS amount FROM generate_series(1, {rows}) i"
            )
            conn.exec_driver_sql(f"ALTER TABLE {TABLE} ADD PRIMARY KEY (id)")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"VACUUM ANALYZE {TABLE}")
    finally:
        engine.dispose()


def psql_binary() -> str:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"), key=lambda p: int(p.parts[-3]))
    if found:
        return str(found[-1])
    which = shutil.which("psql")
    if not which:
        raise SystemExit("psql not found (apt-get install postgresql-client)")
    return which


# --- the three sides -----------------------------------------------------------------------------


def run_ceiling(url: sa.URL, rows: int) -> Run:
    env = {**os.environ, "PGPASSWORD": str(url.password or "")}
    cmd = [psql_binary(), "-X", "-q", "-h", str(url.host), "-p", str(url.port or 5432), "-U", str(url.username),
           "-d", str(url.database), "-c", f"COPY {TABLE} TO STDOUT"]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return Run(time.perf_counter() - started, rows)


def run_manara(url: str, rows: int, parallel: int = 1) -> Run:
    spec = f"""
name: pg
source:
  type: sql
  options: {json.dumps({"url": url, "table": TABLE, "parallel": parallel})}
destination:
  dataset: pg
  commit_rows: 1000000
"""
    with tempfile.TemporaryDirectory(prefix="manara-bench-") as tmp:
        settings = Settings(home=Path(tmp) / "home", egress_allow=[str(sa.make_url(url).host)])
        ws = init_workspace(settings).workspace
        try:
            principal = ws.principal()
            apply_pipeline(ws, principal, parse_spec(spec))
            gc.collect()
            _reset_peak_rss()
            started = time.perf_counter()
            result = run_pipeline(ws, principal, "pg")
            seconds = time.perf_counter() - started
            peak = _peak_rss_mb()
            snapshot = ws.catalog.load_table((principal.tenant, "pg")).current_snapshot()
            committed = int(snapshot.summary["total-records"]) if snapshot and snapshot.summary else -1
        finally:
            ws.close()
    if result.error or result.rows_loaded != rows or committed != rows:
        raise SystemExit(f"Manara loaded {result.rows_loaded} rows (committed {committed}): {result.error}")
    return Run(seconds, rows, peak)


def run_dlt(url: str, rows: int, backend: str) -> Run:
    out = subprocess.run(
        [sys.executable, __file__, "--dlt-child", backend, "--url", url, "--rows", str(rows)],
        check=True,
        capture_output=True,
        text=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return Run(got["seconds"], got["rows"], got["peak_rss_mb"])


def dlt_child(url: str, rows: int, backend: str) -> None:
    """One dlt run in this (child) process: prints {"seconds", "rows", "peak_rss_mb"}."""
    import dlt
    from dlt.sources.sql_database import sql_table

    plain = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with tempfile.TemporaryDirectory(prefix="dlt-bench-") as tmp:
        os.environ["DLT_DATA_DIR"] = str(Path(tmp) / "data")
        os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
        pipeline = dlt.pipeline(
            pipeline_name=f"bench_{backend}",
            pipelines_dir=str(Path(tmp) / "pipelines"),
            destination=dlt.destinations.filesystem(bucket_url=f"file://{tmp}/lake"),
            dataset_name="bench",
        )
        source = sql_table(credentials=plain, table=TABLE, backend=backend, chunk_size=100_000)
        started = time.perf_counter()
        info = pipeline.run(source, loader_file_format="parquet")
        seconds = time.perf_counter() - started
        info.raise_on_failed_jobs()
        loaded = pipeline.last_trace.last_normalize_info.row_counts.get(TABLE, -1)
    if loaded != rows:
        raise SystemExit(f"dlt ({backend}) loaded {loaded} rows, expected {rows}")
    print(json.dumps({"seconds": seconds, "rows": loaded, "peak_rss_mb": _peak_rss_mb()}))


# --- report --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", help="a PostgreSQL SQLAlchemy URL (default: start a throw-away cluster)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--sides",
        default=",".join(SIDES),
        help=f"comma-separated, of {', '.join(SIDES)} (default all; the ratios need manara, a dlt side and the ceiling)",
    )
    parser.add_argument("--dlt-child", choices=DLT_BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dlt_child:
        dlt_child(args.url, args.rows, args.dlt_child)
        return 0

    started_cluster = args.url is None
    url = args.url or start_cluster()
    try:
        print(f"table {TABLE}: {args.rows:,} rows, 6 columns, at {sa.make_url(url).render_as_string()}")
        make_table(url, args.rows)
        run_manara(url, args.rows)  # warm-up, untimed: imports and the table in PostgreSQL's cache
        sides = [s.strip() for s in args.sides.split(",") if s.strip()]
        unknown = sorted(set(sides) - set(SIDES))
        if unknown:
            raise SystemExit(f"unknown side(s) {', '.join(unknown)}: choose among {', '.join(SIDES)}")
        runs: dict[str, list[Run]] = {s: [] for s in sides}
        print(f"{'repeat':>6}  " + "  ".join(f"{s:>15}" for s in sides) + "   rows/s (peak RSS MB)")
        for i in range(args.repeat):
            order = sides if i % 2 == 0 else list(reversed(sides))
            for side in order:
                if side == "ceiling":
                    run = run_ceiling(sa.make_url(url), args.rows)
                elif side == "manara":
                    run = run_manara(url, args.rows)
                elif side == "manara-p2":
                    run = run_manara(url, args.rows, parallel=2)
                else:
                    run = run_dlt(url, args.rows, side.removeprefix("dlt-"))
                runs[side].append(run)
            cells = [f"{runs[s][-1].rate:>15,.0f}" for s in sides]
            rss = " ".join(f"{runs[s][-1].peak_rss_mb:.0f}" for s in sides if runs[s][-1].peak_rss_mb)
            print(f"{i + 1:>6}  " + "  ".join(cells) + f"   ({rss})  load {_loadavg()}")
        med = {s: statistics.median(r.rate for r in runs[s]) for s in sides}
        rss_med = {s: statistics.median(r.peak_rss_mb for r in runs[s] if r.peak_rss_mb) for s in sides
                   if any(r.peak_rss_mb for r in runs[s])}  # fmt: skip
        print(f"{'median':>6}  " + "  ".join(f"{med[s]:>15,.0f}" for s in sides))
        dlts = [f"dlt-{b}" for b in DLT_BACKENDS if f"dlt-{b}" in sides]
        best_dlt = [max(runs[d][i].rate for d in dlts) for i in range(args.repeat)] if dlts else []
        ratios: dict[str, dict[str, float]] = {}
        for side in [s for s in ("manara", "manara-p2") if s in sides]:
            ratios[side] = {}
            if best_dlt:
                vs_dlt = statistics.median(runs[side][i].rate / best_dlt[i] for i in range(args.repeat))
                ratios[side]["vs_best_dlt"] = vs_dlt
                verdict = "PASS" if vs_dlt >= TARGET_DLT else "BELOW TARGET"
                print(f"{side} / best dlt: {vs_dlt:.2f}  (target ≥ {TARGET_DLT}: {verdict})")
            if "ceiling" in sides:
                vs_ceiling = statistics.median(
                    runs[side][i].rate / runs["ceiling"][i].rate for i in range(args.repeat)
                )
                ratios[side]["vs_ceiling"] = vs_ceiling
                verdict = "PASS" if vs_ceiling >= TARGET_CEILING else "BELOW TARGET"
                print(f"{side} / ceiling:  {vs_ceiling:.2f}  (target ≥ {TARGET_CEILING}: {verdict})")
        print("peak RSS MB (median): " + ", ".join(f"{s} {v:.0f}" for s, v in rss_med.items()))
        info = machine_info()
        print(f"machine: {info['cpus']} cpus, {info['platform']}; load {_loadavg()}")
        if args.json:
            print(
                json.dumps(
                    {
                        "rows": args.rows,
                        "rows_per_s": med,
                        "ratios": ratios,
                        "peak_rss_mb": rss_med,
                        "date": datetime.now(UTC).isoformat(timespec="seconds"),
                        "machine": info,
                    }
                )
            )
    finally:
        if started_cluster:
            stop_cluster()
    return 0


if __name__ == "__main__":
    sys.exit(main())
