"""kill -9 at many points of a pipeline run: the reruns neither lose nor duplicate a row.

The run is a real `manara pipeline run` process over 48 files, committing every 30 rows (and a
quarantine commit before most data commits), so a kill lands before, inside and between commits.
On PostgreSQL the pipeline also has a PostgreSQL sink: a kill also lands between a lake commit and
its delivery, and inside a delivery, and the sink's table must end with every row once as well.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from manara.config import Settings
from manara.connect.pipelines import apply_pipeline, parse_spec
from manara.govern.principal import Principal
from manara.lake.catalog import identifier
from manara.workspace import Workspace

FILES, ROWS = 48, 150


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"egress_allow": ["127.0.0.1"]})  # the PostgreSQL sink


def test_kill_9_anywhere_then_rerun_loads_every_row_exactly_once(
    ws: Workspace, operator: Principal, settings: Settings, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    expected_bad = 0
    for f in range(FILES):
        lines = ["id,amount"]
        for i in range(ROWS):
            rid = f * ROWS + i
            bad = i % 50 == 7  # one value in 50 cannot be cast: it must be quarantined exactly once
            expected_bad += bad
            lines.append(f"{rid},{'n/a' if bad else rid * 2}")
        (landing / f"part-{f:03}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = f"""
name: loader
source: {{type: files, options: {{path: "{landing}"}}}}
transforms: [{{cast: {{amount: long}}}}]
destination: {{dataset: loaded, commit_rows: 30}}
"""
    sink_url = None
    if settings.database_url:  # PostgreSQL pass: deliver to a table of the same database too
        from sqlalchemy.engine import make_url

        sink_url = make_url(settings.database_url.get_secret_value()).set(drivername="postgresql")
        sink_url = sink_url.render_as_string(hide_password=False)
        spec += f"sinks: [{{type: postgresql, options: {{url: '{sink_url}', table: loaded_copy}}}}]\n"
    apply_pipeline(ws, operator, parse_spec(spec))
    env = {**os.environ, "MANARA_HOME": str(settings.home), "MANARA_FILE_ROOTS": json.dumps([str(tmp_path)]),
           "MANARA_EGRESS_ALLOW": json.dumps(settings.egress_allow)}  # fmt: skip
    env.pop("MANARA_WAREHOUSE", None)
    if settings.database_url:
        env["MANARA_DATABASE_URL"] = settings.database_url.get_secret_value()
    cmd = [sys.executable, "-m", "manara.cli.main", "pipeline", "run", "loader", "--json"]
    rng = random.Random(7)
    kills = 0
    for _ in range(12):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(1.2, 4.0))  # the CLI needs ~1 s to start; then it commits every few ms
        if proc.poll() is not None:
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert kills >= 3, "the run finished before it could be killed enough times"

    table = ws.catalog.load_table(identifier(operator.tenant, "loaded")).scan().to_arrow()
    ids = Counter(table.column("id").to_pylist())
    good = {f * ROWS + i for f in range(FILES) for i in range(ROWS) if i % 50 != 7}
    assert set(ids) == good  # nothing lost
    assert max(ids.values()) == 1  # nothing twice
    quarantine = ws.catalog.load_table(identifier(operator.tenant, "loaded__quarantine")).scan().to_arrow()
    assert quarantine.num_rows == expected_bad  # quarantined exactly once too
    if sink_url:
        import psycopg

        with psycopg.connect(sink_url) as conn:
            copied = Counter(r[0] for r in conn.execute("SELECT id FROM loaded_copy").fetchall())
        assert set(copied) == good and max(copied.values()) == 1  # the sink too: once each
