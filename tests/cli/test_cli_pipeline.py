"""`manara connectors`, `manara pipeline …` and `manara quarantine …` end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import Cli

from manara.config import Settings


@pytest.fixture
def cli(settings: Settings, database_url: str | None) -> Cli:
    runner = Cli(settings.home, database_url)
    runner.env["MANARA_FILE_ROOTS"] = json.dumps([str(settings.home.parent)])
    runner.ok("init")
    return runner


def test_pipeline_from_yaml_through_the_cli(cli: Cli, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text("id,amount\n1,10\n2,oops\n3,30\n", encoding="utf-8")
    spec = tmp_path / "visits.yaml"
    spec.write_text(
        f"name: visits\nsource: {{type: files, options: {{path: '{landing}'}}}}\n"
        "transforms:\n  - cast: {amount: double}\ndestination: {dataset: visits}\n",
        encoding="utf-8",
    )
    connectors = cli.json("connectors", "--json")
    assert "files" in {c["name"] for c in connectors["connectors"]}
    assert "created" in cli.ok("pipeline", "apply", str(spec)).stdout
    run = cli.json("pipeline", "run", "visits", "--json")
    assert (run["status"], run["rows_in"], run["rows_loaded"], run["rows_quarantined"]) == (
        "succeeded",
        3,
        2,
        1,
    )
    assert "visits" in cli.ok("pipeline", "list").stdout
    status = cli.json("pipeline", "status", "visits", "--json")
    assert status["committed"]["cursor"]["done"] == {"a.csv": status["committed"]["cursor"]["done"]["a.csv"]}
    runs = cli.json("pipeline", "runs", "visits", "--json")
    assert [r["rows_loaded"] for r in runs] == [2]
    listed = cli.json("quarantine", "list", "--json")
    assert [(q["dataset"], q["pipeline"], q["records"]) for q in listed] == [("visits", "visits", 1)]
    shown = cli.json("quarantine", "show", "visits", "--json")
    assert "'oops' is not a double" in shown[0]["reason"] and '"oops"' in shown[0]["payload"]
    out = cli.ok("sql", "SELECT sum(amount) AS total, count(*) AS n FROM visits", "-o", "csv").stdout
    assert out.split() == ["total,n", "40.0,2"]


def test_pipeline_errors_are_one_line(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsource: {type: ftp}\ndestination: {dataset: dd}\n", encoding="utf-8")
    assert "no source connector named 'ftp'" in cli.fails("pipeline", "apply", str(bad))
    bad.write_text("name: x\nsource: {type: files, options: {path: /nonexistent, colour: red}}\n"
                   "destination: {dataset: dd}\n", encoding="utf-8")  # fmt: skip
    assert "option 'colour'" in cli.fails("pipeline", "apply", str(bad))
    assert "does not exist" in cli.fails("pipeline", "run", "nothing")
    assert "cannot read" in cli.fails("pipeline", "apply", str(tmp_path / "missing.yaml"))
    assert "no quarantine" in cli.fails("quarantine", "show", "visits")


def test_a_sink_left_behind_shows_in_the_status(cli: Cli, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on: the receiver is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli.env["MANARA_EGRESS_ALLOW"] = json.dumps(["127.0.0.1"])
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text("id,amount\n1,10\n2,20\n", encoding="utf-8")
    spec = tmp_path / "visits.yaml"
    spec.write_text(
        f"name: visits\nsource: {{type: files, options: {{path: '{landing}'}}}}\n"
        "destination: {dataset: visits}\n"
        f"sinks: [{{type: webhook, name: hook, options: {{url: 'http://127.0.0.1:{port}/h', retries: 0}}}}]\n",
        encoding="utf-8",
    )
    cli.ok("pipeline", "apply", str(spec))
    run = cli("pipeline", "run", "visits")
    assert run.exit_code == 1 and "sink 'hook' (webhook) stopped at group 1" in run.stdout
    out = cli.ok("pipeline", "status", "visits").stdout
    assert "sink hook (webhook): group 0, 1 behind, 0 rows" in out and "ConnectError" in out
    assert {c["name"] for c in cli.json("connectors", "--json")["connectors"]} >= {"webhook", "postgresql"}
