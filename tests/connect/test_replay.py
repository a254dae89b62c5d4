"""Quarantine and replay: a record refused by the mapping loads, once, after the mapping is fixed."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from manara.connect.pipelines import apply_pipeline, parse_spec, run_pipeline
from manara.connect.quarantine import replay_quarantine, show_quarantine
from manara.errors import BadRequest
from manara.govern.principal import Principal
from manara.lake.catalog import identifier
from manara.workspace import Workspace


def spec(folder: Path, transforms: str) -> str:
    return (f"name: fees\nsource: {{type: files, options: {{path: '{folder}'}}}}\n"
            f"transforms:\n{transforms}\ndestination: {{dataset: fees}}\n")  # fmt: skip


def amounts(ws: Workspace, operator: Principal) -> list[tuple[int, float]]:
    rows = ws.catalog.load_table(identifier(operator.tenant, "fees")).scan().to_arrow().to_pylist()
    return sorted((r["id"], r["amount"]) for r in rows)


def test_a_fixed_mapping_replays_the_quarantine_exactly_once(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    # French decimal commas ("12,5") do not cast to double: those rows are quarantined
    (tmp_path / "fees.csv").write_text('id;amount\n1;5\n2;"12,5"\n3;7\n4;"n/a"\n', encoding="utf-8")
    apply_pipeline(ws, operator, parse_spec(spec(tmp_path, "  - cast: {amount: double}")))
    first = run_pipeline(ws, operator, "fees")
    assert (first.rows_loaded, first.rows_quarantined) == (2, 2)
    held = show_quarantine(ws, operator, "fees")
    assert {json.loads(r["payload"])["amount"] for r in held} == {"12,5", "n/a"}  # as the source sent them

    fixed = "  - derive: {amount: \"replace(amount, ',', '.')\"}\n  - cast: {amount: double}"
    apply_pipeline(ws, operator, parse_spec(spec(tmp_path, fixed)))
    replay = replay_quarantine(ws, operator, "fees", "fees")
    assert (replay.status, replay.rows_in, replay.rows_loaded, replay.rows_quarantined) == (
        "succeeded",
        2,
        1,
        1,
    )
    assert amounts(ws, operator) == [(1, 5.0), (2, 12.5), (3, 7.0)]
    (left,) = show_quarantine(ws, operator, "fees")
    assert "'n/a' is not a double" in left["reason"] and left["replay_id"] is None

    again = replay_quarantine(ws, operator, "fees", "fees")  # the fixed record is not loaded twice
    assert (again.rows_loaded, again.rows_quarantined) == (0, 1)
    assert amounts(ws, operator) == [(1, 5.0), (2, 12.5), (3, 7.0)]
    assert run_pipeline(ws, operator, "fees").rows_loaded == 0  # nor does the source re-deliver it
    with pytest.raises(BadRequest, match="loads 'fees', not 'other'"):
        replay_quarantine(ws, operator, "other", "fees")


def test_a_replay_interrupted_after_marking_is_undone(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    (tmp_path / "fees.csv").write_text('id;amount\n1;5\n2;"12,5"\n', encoding="utf-8")
    apply_pipeline(ws, operator, parse_spec(spec(tmp_path, "  - cast: {amount: double}")))
    run_pipeline(ws, operator, "fees")
    qtable = ws.catalog.load_table(identifier(operator.tenant, "fees__quarantine"))
    rows = qtable.scan().to_arrow()  # a replay marked the record, then the process died
    index = rows.schema.get_field_index("replay_id")
    marked = rows.set_column(index, "replay_id", pa.array(["dead-replay"], pa.string()))
    qtable.overwrite(marked)
    assert run_pipeline(ws, operator, "fees").status == "succeeded"  # the next run un-marks it
    (row,) = show_quarantine(ws, operator, "fees")
    assert row["replay_id"] is None and amounts(ws, operator) == [(1, 5.0)]
