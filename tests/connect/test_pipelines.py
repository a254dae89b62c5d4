"""Pipelines from YAML into the lake: exactly-once commits, resume, quarantine, schema changes."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pytest

from manara.connect.pipelines import (
    PipelinePaused,
    apply_pipeline,
    approve_pipeline,
    committed_state,
    parse_spec,
    pipeline_runs,
    pipeline_status,
    run_pipeline,
)
from manara.errors import BadRequest, Conflict, Forbidden
from manara.govern.principal import Principal
from manara.lake.catalog import identifier
from manara.workspace import Workspace


def spec_text(folder: Path, *, transforms: str = "", commit_rows: int = 100_000) -> str:
    return f"""
name: visits
source:
  type: files
  options: {{path: "{folder}", pattern: "*.csv"}}
{transforms}
destination:
  dataset: visits
  commit_rows: {commit_rows}
"""


def write_csv(path: Path, start: int, n: int, extra: str = "") -> None:
    header = "id,amount" + (",region" if extra else "")
    lines = [f"{i},{i * 1.5}" + (f",{extra}" if extra else "") for i in range(start, start + n)]
    path.write_text(header + "\n" + "\n".join(lines) + "\n", encoding="utf-8")


def table_rows(ws: Workspace, operator: Principal, name: str = "visits") -> list[dict]:
    table = ws.catalog.load_table(identifier(operator.tenant, name))
    return sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r.get("id") or 0)


def test_a_folder_loads_once_and_new_files_are_picked_up(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    write_csv(landing / "a.csv", 1, 10)
    write_csv(landing / "b.csv", 11, 5)
    apply_pipeline(ws, operator, parse_spec(spec_text(landing)))
    first = run_pipeline(ws, operator, "visits")
    assert (first.status, first.rows_in, first.rows_loaded, first.rows_quarantined) == (
        "succeeded",
        15,
        15,
        0,
    )
    again = run_pipeline(ws, operator, "visits")
    assert (again.status, again.rows_loaded, again.commits) == ("succeeded", 0, 0)
    write_csv(landing / "0-late.csv", 100, 3)  # sorts before the others: still picked up
    third = run_pipeline(ws, operator, "visits")
    assert third.rows_loaded == 3
    ids = [r["id"] for r in table_rows(ws, operator)]
    assert ids == list(range(1, 16)) + [100, 101, 102]
    state = committed_state(ws.catalog.load_table(identifier(operator.tenant, "visits")), "visits")
    assert state is not None and set(state["cursor"]["done"]) == {"a.csv", "b.csv", "0-late.csv"}
    runs = pipeline_runs(ws, operator, "visits")
    assert [r["rows_loaded"] for r in runs] == [3, 0, 15] and all(r["status"] == "succeeded" for r in runs)
    assert pipeline_status(ws, operator, "visits")["committed"]["seq"] == state["seq"]


def test_bad_values_and_unreadable_files_go_to_quarantine(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text("id,amount\n1,10\n2,abc\n3,30\n", encoding="utf-8")
    (landing / "broken.csv").write_bytes(b"id,amount\n1,\xff\xfe\x00\x00garbage\x00\n")
    transforms = 'transforms:\n  - cast: {amount: double}\n  - filter: "amount > 0"'
    apply_pipeline(ws, operator, parse_spec(spec_text(landing, transforms=transforms)))
    result = run_pipeline(ws, operator, "visits")
    assert result.status == "succeeded", result.error
    assert [r["amount"] for r in table_rows(ws, operator)] == [10.0, 30.0]
    quarantine = ws.catalog.load_table(identifier(operator.tenant, "visits__quarantine")).scan().to_arrow()
    reasons = quarantine.column("reason").to_pylist()
    assert any("'abc' is not a double" in r for r in reasons)
    assert result.rows_quarantined == quarantine.num_rows >= 2
    bad = quarantine.filter(pc.match_substring(quarantine.column("reason"), "abc")).to_pylist()[0]
    assert '"abc"' in bad["payload"] and "a.csv" in bad["position"]
    # a rerun neither re-loads nor re-quarantines anything
    assert run_pipeline(ws, operator, "visits").rows_loaded == 0
    assert (
        ws.catalog.load_table(identifier(operator.tenant, "visits__quarantine")).scan().to_arrow().num_rows
        == quarantine.num_rows
    )


def test_new_columns_evolve_the_table_and_incompatible_ones_pause(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    write_csv(landing / "a.csv", 1, 3)
    apply_pipeline(ws, operator, parse_spec(spec_text(landing)))
    run_pipeline(ws, operator, "visits")
    write_csv(landing / "b.csv", 4, 2, extra="Souss")
    result = run_pipeline(ws, operator, "visits")
    assert result.columns_added == ["region"]
    rows = table_rows(ws, operator)
    assert len(rows) == 5 and rows[0]["region"] is None and rows[-1]["region"] == "Souss"
    (landing / "c.csv").write_text("id,amount\nX-9,1\n", encoding="utf-8")  # id turns into text
    paused = run_pipeline(ws, operator, "visits")
    assert paused.status == "paused" and "column 'id'" in (paused.error or "")
    assert len(table_rows(ws, operator)) == 5  # nothing lost, nothing half-written
    with pytest.raises(PipelinePaused, match="paused"):
        run_pipeline(ws, operator, "visits")
    # the steward changes the mapping: ids become text in a new column, the pipeline resumes
    fixed = "transforms:\n  - rename: {id: id_text}"
    apply_pipeline(ws, operator, parse_spec(spec_text(landing, transforms=fixed)))
    resumed = run_pipeline(ws, operator, "visits")
    assert resumed.status == "succeeded" and resumed.rows_loaded == 1
    assert len(table_rows(ws, operator)) == 6


def test_an_approved_widening_keeps_every_row_and_resumes(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text("id,amount\n1,10\n2,20\n3,30\n", encoding="utf-8")
    apply_pipeline(ws, operator, parse_spec(spec_text(landing)))
    run_pipeline(ws, operator, "visits")
    with pytest.raises(Conflict, match="not paused"):
        approve_pipeline(ws, operator, "visits")
    # the source starts sending decimals: long cannot hold 12.5, double holds both
    (landing / "b.csv").write_text("id,amount\n4,12.5\n", encoding="utf-8")
    paused = run_pipeline(ws, operator, "visits")
    assert paused.status == "paused"
    assert "widen the dataset's column 'amount' from long to double" in (paused.error or "")
    assert "manara pipeline approve visits" in (paused.error or "")
    # a type that does not hold the stored values is refused, and the pipeline stays paused
    with pytest.raises(BadRequest, match="boolean|does not|cannot"):
        approve_pipeline(ws, operator, "visits", column="amount", to="boolean")
    assert pipeline_status(ws, operator, "visits")["paused"]
    done = approve_pipeline(ws, operator, "visits")
    assert (done["column"], done["to_type"], done["rows"]) == ("amount", "double", 3)
    assert pipeline_status(ws, operator, "visits")["paused"] is None
    resumed = run_pipeline(ws, operator, "visits")
    assert resumed.status == "succeeded" and resumed.rows_loaded == 1
    assert [(r["id"], r["amount"]) for r in table_rows(ws, operator)] == [
        (1, 10.0),
        (2, 20.0),
        (3, 30.0),
        (4, 12.5),
    ]
    # text where numbers were: the proposal is string, and the stored numbers read as text
    (landing / "c.csv").write_text("id,amount\n5,12 MAD\n", encoding="utf-8")
    assert "from double to string" in (run_pipeline(ws, operator, "visits").error or "")
    approve_pipeline(ws, operator, "visits")
    assert run_pipeline(ws, operator, "visits").status == "succeeded"
    assert [r["amount"] for r in table_rows(ws, operator)] == ["10", "20", "30", "12.5", "12 MAD"]


def test_a_folder_outside_the_file_roots_is_refused(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    with pytest.raises(Forbidden, match="outside the folders pipelines may read"):
        apply_pipeline(ws, operator, parse_spec(spec_text(Path("/etc"))))
    with pytest.raises(Forbidden, match="outside"):  # no way around it through '..'
        apply_pipeline(ws, operator, parse_spec(spec_text(tmp_path / ".." / ".." / "etc")))
    landing = ws.settings.landing_path  # always readable
    landing.mkdir(parents=True)
    write_csv(landing / "a.csv", 1, 2)
    apply_pipeline(ws, operator, parse_spec(spec_text(landing)))
    assert run_pipeline(ws, operator, "visits").rows_loaded == 2


def test_bad_pipeline_files_are_refused_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="not valid YAML"):
        parse_spec("name: [unclosed", "p.yaml")
    with pytest.raises(BadRequest, match="destination"):
        parse_spec("name: p\nsource: {type: files}\n", "p.yaml")
    with pytest.raises(BadRequest, match="exactly one of"):
        parse_spec(spec_text(tmp_path, transforms="transforms:\n  - {select: [a], filter: 'a > 1'}"))
    with pytest.raises(BadRequest, match="not allowed|only expressions"):
        parse_spec(spec_text(tmp_path, transforms='transforms:\n  - filter: "id IN (SELECT 1)"'))
    with pytest.raises(BadRequest, match="read_csv"):
        parse_spec(
            spec_text(tmp_path, transforms="transforms:\n  - derive: {x: \"read_csv('/etc/passwd')\"}")
        )
    with pytest.raises(BadRequest, match="not a dataset name"):
        parse_spec(spec_text(tmp_path).replace("dataset: visits", "dataset: v"))
    with pytest.raises(BadRequest, match="cron"):
        parse_spec(spec_text(tmp_path) + "schedule: every day\n")
