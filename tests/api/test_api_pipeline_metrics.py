"""Pipeline runs appear in /metrics, whichever process ran them (the counts come from the run history)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from manara.connect.pipelines import apply_pipeline, parse_spec, run_pipeline
from manara.govern.principal import Principal
from manara.workspace import Workspace


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_pipeline_runs_rows_and_pause_are_exported(
    client: TestClient, ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    (tmp_path / "a.csv").write_text("id,amount\n1,5\n2,x\n", encoding="utf-8")
    spec = (f"name: loads\nsource: {{type: files, options: {{path: '{tmp_path}'}}}}\n"
            "transforms: [{cast: {amount: long}}]\ndestination: {dataset: loads}\n")  # fmt: skip
    apply_pipeline(ws, operator, parse_spec(spec))
    run_pipeline(ws, operator, "loads")  # in this process but outside the API, as the CLI would
    run_pipeline(ws, operator, "loads")
    got = samples(client)
    labels = (("pipeline", "loads"), ("tenant", "default"))
    assert got[("manara_pipeline_runs_total", (*labels[:1], ("status", "succeeded"), labels[1]))] == 2
    for kind, value in (("in", 2), ("loaded", 1), ("quarantined", 1)):
        assert got[("manara_pipeline_rows_total", (("kind", kind), *labels))] == value
    assert got[("manara_pipeline_paused", labels)] == 0
    (tmp_path / "b.csv").write_text("id,amount\nA-1,1\n", encoding="utf-8")  # id turns into text: pause
    assert run_pipeline(ws, operator, "loads").status == "paused"
    got = samples(client)
    assert got[("manara_pipeline_paused", labels)] == 1
    assert got[("manara_pipeline_runs_total", (*labels[:1], ("status", "paused"), labels[1]))] == 1
