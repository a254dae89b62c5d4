"""Each source type from a YAML file through the CLI and through the API, against real servers:
REST (a loopback HTTP API), SQL (the PostgreSQL test cluster in the PostgreSQL pass, SQLite in the
other). MQTT, OPC UA and MariaDB have theirs in their own modules; files in tests/cli and tests/api."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runner import Cli
from fastapi.testclient import TestClient
from test_rest_source import Api, N, api  # noqa: F401  (the loopback API and its fixture)

from manara.api.app import create_app
from manara.config import Settings
from manara.govern.principal import Principal
from manara.lake.catalog import identifier
from manara.workspace import Workspace

YAML = {"Content-Type": "application/yaml"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"egress_allow": ["127.0.0.1"]})


@pytest.fixture
def cli(settings: Settings, database_url: str | None, ws: Workspace) -> Cli:
    runner = Cli(settings.home, database_url)
    runner.env["MANARA_EGRESS_ALLOW"] = json.dumps(["127.0.0.1"])
    runner.env["MANARA_FILE_ROOTS"] = json.dumps([str(p) for p in settings.file_roots])
    return runner


@pytest.fixture
def client(ws: Workspace) -> Iterator[TestClient]:
    with TestClient(create_app(ws.settings, ws)) as c:
        yield c


def count(ws: Workspace, operator: Principal, dataset: str) -> int:
    return ws.catalog.load_table(identifier(operator.tenant, dataset)).scan().to_arrow().num_rows


def both_ways(
    cli: Cli, client: TestClient, admin_token: str, tmp_path: Path, yaml_for: dict[str, str]
) -> list[dict]:
    """Apply and run `cli_feed` with the CLI and `api_feed` with the API; the two runs' results."""
    path = tmp_path / "feed.yaml"
    path.write_text(yaml_for["cli_feed"], encoding="utf-8")
    assert "created" in cli.ok("pipeline", "apply", str(path)).stdout
    by_cli = cli.json("pipeline", "run", "cli_feed", "--json")
    auth = {"Authorization": f"Bearer {admin_token}"}
    put = client.put(
        "/api/v1/pipelines/api_feed", headers={**auth, **YAML}, content=yaml_for["api_feed"].encode()
    )
    assert put.status_code == 201, put.text
    by_api = client.post("/api/v1/pipelines/api_feed/runs", headers=auth)
    assert by_api.status_code == 200, by_api.text
    status = client.get("/api/v1/pipelines/api_feed", headers=auth).json()
    assert status["committed"]["cursor"] is not None
    return [by_cli, by_api.json()]


def test_a_rest_pipeline_through_the_cli_and_the_api(
    cli: Cli, client: TestClient, admin_token: str, ws: Workspace, operator: Principal, tmp_path: Path,
    api: Api,  # noqa: F811
) -> None:  # fmt: skip
    def yaml(name: str) -> str:
        return (f"name: {name}\nsource:\n  type: rest\n  options:\n    url: {api.base}/link\n"
                f"    records: ''\n    pagination: {{type: link}}\ndestination: {{dataset: {name}}}\n")  # fmt: skip

    runs = both_ways(cli, client, admin_token, tmp_path, {n: yaml(n) for n in ("cli_feed", "api_feed")})
    assert [(r["status"], r["rows_loaded"]) for r in runs] == [("succeeded", N)] * 2
    assert count(ws, operator, "cli_feed") == count(ws, operator, "api_feed") == N


def test_a_sql_pipeline_through_the_cli_and_the_api(
    cli: Cli, client: TestClient, admin_token: str, ws: Workspace, operator: Principal, tmp_path: Path,
    database_url: str | None, settings: Settings,
) -> None:  # fmt: skip
    rows = 1234
    if database_url:  # the PostgreSQL pass: the test's own database on the cluster, the Arrow path
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(database_url)
        with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
            conn.execute("CREATE TABLE src_orders AS SELECT i AS id, i * 1.5 AS amount, 'o' || i AS ref "
                         f"FROM generate_series(1, {rows}) i")  # fmt: skip
            conn.execute("ALTER TABLE src_orders ADD PRIMARY KEY (id)")
        source_url = url.render_as_string(hide_password=False)
        extra = "    parallel: 2\n"
    else:  # SQLite: a database file under the readable folders
        db = settings.file_roots[0] / "orders.db"
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE src_orders (id INTEGER PRIMARY KEY, amount REAL, ref TEXT)")
            conn.executemany("INSERT INTO src_orders VALUES (?, ?, ?)",
                             [(i, i * 1.5, f"o{i}") for i in range(1, rows + 1)])  # fmt: skip
        source_url = f"sqlite:///{db}"
        extra = ""

    def yaml(name: str) -> str:
        return (f"name: {name}\nsource:\n  type: sql\n  options:\n    url: '{source_url}'\n"
                f"    table: src_orders\n    batch_rows: 200\n{extra}destination: {{dataset: {name}, commit_rows: 500}}\n")  # fmt: skip

    runs = both_ways(cli, client, admin_token, tmp_path, {n: yaml(n) for n in ("cli_feed", "api_feed")})
    assert [(r["status"], r["rows_loaded"]) for r in runs] == [("succeeded", rows)] * 2
    assert count(ws, operator, "cli_feed") == count(ws, operator, "api_feed") == rows
