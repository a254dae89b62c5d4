"""The OPC UA source against a real asyncua server simulating a controller (scripts/opcua_test_server.py):
value changes of several variables loaded with their types and timestamps, a value written during a
run, runs that continue without loading a sample twice, structures quarantined, readable errors,
the egress check, and the same pipeline through the CLI and the HTTP API."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from cli_runner import Cli
from fastapi.testclient import TestClient

from manara.api.app import create_app
from manara.config import Settings
from manara.connect.pipelines import apply_pipeline, committed_state, parse_spec, run_pipeline
from manara.connect.protocol import Context
from manara.connect.sources.opcua import CONNECTOR
from manara.errors import BadRequest, Forbidden
from manara.govern import identity
from manara.govern.principal import Principal
from manara.meta.db import session_scope
from manara.meta.models import Role
from manara.workspace import Workspace

LINE = "ns=2;s=Line1"
TEXTS = {"تشغيل / en marche", "توقف / à l'arrêt"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"egress_allow": ["127.0.0.1"]})


def spec(endpoint: str, name: str = "plant", max_seconds: float = 1.5, **options: Any) -> str:
    opts = {"endpoint": endpoint, "sampling_ms": 100, "publishing_ms": 100, "max_seconds": max_seconds,
            "idle_seconds": 1.0, **options}  # fmt: skip
    return f"""
name: {name}
source:
  type: opcua
  options: {json.dumps(opts, ensure_ascii=False)}
destination:
  dataset: {name}
"""


def rows(ws: Workspace, dataset: str = "plant") -> list[dict[str, Any]]:
    table = ws.catalog.load_table(("default", dataset)).scan().to_arrow()
    return sorted(table.to_pylist(), key=lambda r: (r["node"], r["source_timestamp"], r["received_at"]))


def of(found: list[dict[str, Any]], variable: str) -> list[dict[str, Any]]:
    return [r for r in found if r["node"] == f"{LINE}.{variable}"]


def write_setpoint(endpoint: str, value: float) -> None:
    from asyncua import Client

    async def write() -> None:
        async with Client(endpoint, timeout=5) as client:
            await client.get_node(f"{LINE}.Setpoint").write_value(value)

    asyncio.run(write())


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_value_changes_of_several_variables_load_with_types_and_timestamps(
    ws: Workspace, operator: Principal, opcua_url: str
) -> None:
    nodes = [f"{LINE}.{v}" for v in ("Temperature", "Pressure", "Counter", "Running", "Status", "Setpoint")]
    apply_pipeline(ws, operator, parse_spec(spec(opcua_url, nodes=nodes)))
    setpoint = 40 + random.randint(1, 10**6) / 1000
    writer = threading.Timer(0.8, write_setpoint, (opcua_url, setpoint))
    writer.start()
    started = time.time()
    result = run_pipeline(ws, operator, "plant")
    writer.join()
    assert (result.status, result.rows_quarantined) == ("succeeded", 0), result.error
    assert result.rows_loaded == result.rows_in > 20

    schema = ws.catalog.load_table(("default", "plant")).scan().to_arrow().schema
    assert schema.field("value").type == pa.float64() and schema.field("value_text").type == pa.string()
    for col in ("source_timestamp", "server_timestamp", "received_at"):
        assert schema.field(col).type == pa.timestamp("us", tz="UTC"), col

    found = rows(ws)
    assert {r["status"] for r in found} == {"Good"}
    assert {r["node"] for r in found} == set(nodes)
    assert all(r["name"] == r["node"].rsplit(".", 1)[1] for r in found)
    for r in found:  # sampled by the controller after the run started, received after that
        assert r["source_timestamp"] <= r["server_timestamp"] <= r["received_at"]
        assert r["received_at"].timestamp() >= started - 1

    temperature = of(found, "Temperature")
    assert len(temperature) >= 8 and {r["type"] for r in temperature} == {"Double"}
    assert all(40 <= r["value"] <= 80 and r["value_text"] == json.dumps(r["value"]) for r in temperature)
    by_arrival = [r["source_timestamp"] for r in sorted(temperature, key=lambda r: r["received_at"])]
    assert by_arrival == sorted(by_arrival) and len(set(by_arrival)) == len(by_arrival)  # increasing

    counter = [r for r in of(found, "Counter") if r["source_timestamp"]]
    values = [int(r["value"]) for r in counter]
    assert {r["type"] for r in counter} == {"Int64"} and values == sorted(set(values)) and len(values) >= 8
    assert [r["value_text"] for r in counter] == [str(v) for v in values]
    assert values[-1] - values[0] == len(values) - 1  # +1 every 100 ms, no change lost

    running = of(found, "Running")
    assert {r["type"] for r in running} == {"Boolean"}
    assert all((r["value"], r["value_text"]) in ((1.0, "true"), (0.0, "false")) for r in running)
    status = of(found, "Status")
    assert {r["type"] for r in status} == {"String"} and {r["value_text"] for r in status} <= TEXTS
    assert all(r["value"] is None for r in status)

    written = [r for r in of(found, "Setpoint") if r["value"] == setpoint]
    assert len(written) == 1 and written[0]["value_text"] == json.dumps(setpoint), of(found, "Setpoint")
    assert written[0]["type"] == "Double"

    state = committed_state(ws.catalog.load_table(("default", "plant")), "plant")
    assert state is not None and state["cursor"]["seq"] >= result.rows_loaded
    assert not [t for t in threading.enumerate() if t.name == "opcua-source"]  # the listener ended


def test_a_second_run_continues_without_loading_a_sample_twice(
    ws: Workspace, operator: Principal, opcua_url: str
) -> None:
    apply_pipeline(ws, operator, parse_spec(spec(opcua_url, max_seconds=1.0, browse=LINE)))
    first = run_pipeline(ws, operator, "plant")
    assert first.status == "succeeded", first.error
    # the structure (a Range) is quarantined with its reason; every other variable loads
    assert first.rows_quarantined == 1
    quarantined = ws.catalog.load_table(("default", "plant__quarantine")).scan().to_arrow().to_pylist()
    assert len(quarantined) == 1 and "ExtensionObject" in quarantined[0]["reason"]
    assert "Limits" in quarantined[0]["reason"] and f"{LINE}.Limits" in quarantined[0]["position"]
    assert "Range" in quarantined[0]["payload"]
    loaded = rows(ws)
    names = {r["name"] for r in loaded}
    assert names == {"Temperature", "Pressure", "Counter", "Running", "Status", "Setpoint"}
    seq = committed_state(ws.catalog.load_table(("default", "plant")), "plant")["cursor"]["seq"]  # type: ignore[index]

    second = run_pipeline(ws, operator, "plant")
    assert (second.status, second.rows_quarantined) == ("succeeded", 0), second.error
    assert second.rows_loaded > 5
    after = committed_state(ws.catalog.load_table(("default", "plant")), "plant")["cursor"]["seq"]  # type: ignore[index]
    assert after > seq
    both = rows(ws)
    assert len(both) == first.rows_loaded + second.rows_loaded
    samples = Counter((r["node"], r["source_timestamp"], r["value_text"]) for r in both)
    assert max(samples.values()) == 1  # the new subscription's first values were not loaded again
    assert len(of(both, "Setpoint")) == len(of(loaded, "Setpoint"))  # unchanged: loaded once
    counts = [int(r["value"]) for r in of(both, "Counter")]
    assert counts == sorted(set(counts))


def test_an_unchanged_value_loads_once_and_a_quiet_run_ends_by_idle_seconds(
    ws: Workspace, operator: Principal, opcua_url: str
) -> None:
    apply_pipeline(ws, operator, parse_spec(spec(opcua_url, max_seconds=30, idle_seconds=0.5,
                                                 nodes=[f"{LINE}.Setpoint"])))  # fmt: skip
    started = time.monotonic()
    first = run_pipeline(ws, operator, "plant")
    assert (first.status, first.rows_loaded) == ("succeeded", 1), first.error  # its current value
    assert time.monotonic() - started < 10  # ended by idle_seconds, not max_seconds
    again = run_pipeline(ws, operator, "plant")
    assert (again.status, again.rows_loaded) == ("succeeded", 0), again.error  # the same sample
    value = 30 + random.randint(1, 10**6) / 1000
    write_setpoint(opcua_url, value)
    third = run_pipeline(ws, operator, "plant")
    assert (third.status, third.rows_loaded) == ("succeeded", 1), third.error
    assert [r["value"] for r in sorted(rows(ws), key=lambda r: r["received_at"])][-1] == value


def test_credentials_and_namespace_uris(ws: Workspace, operator: Principal, opcua_url: str) -> None:
    node = "nsu=urn:manara:test-plant;s=Line1.Counter"
    body = spec(opcua_url, max_seconds=0.6, nodes=[node], username="operator", password="manara")
    apply_pipeline(ws, operator, parse_spec(body))
    result = run_pipeline(ws, operator, "plant")
    assert result.status == "succeeded" and result.rows_loaded >= 2, result.error
    assert {r["node"] for r in rows(ws)} == {f"{LINE}.Counter"}  # stored in namespace-index form


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"nodes": [f"{LINE}.Nope"]}, f"node '{LINE}.Nope' does not exist"),
        ({"nodes": [LINE]}, f"node '{LINE}' is an Object, not a variable"),
        ({"browse": [f"{LINE}.Temperature"]}, "no variables below node"),
        ({"nodes": ["nsu=urn:elsewhere;s=X"]}, "no namespace 'urn:elsewhere' on the server"),
        ({"nodes": [f"{LINE}.Counter"], "username": "operator", "password": "wrong-secret"},
         "the server refused the session (BadUserAccessDenied): check the username and password"),
        ({"nodes": [f"{LINE}.Counter"], "endpoint": "CLOSED"}, "connection refused"),
    ],
)  # fmt: skip
def test_connection_errors_fail_the_run_with_one_line_and_load_nothing(
    ws: Workspace, operator: Principal, opcua_url: str, options: dict[str, Any], expected: str
) -> None:
    endpoint = options.pop("endpoint", opcua_url)
    if endpoint == "CLOSED":
        endpoint = f"opc.tcp://127.0.0.1:{closed_port()}/manara/"
    apply_pipeline(ws, operator, parse_spec(spec(endpoint, **options)))
    started = time.monotonic()
    result = run_pipeline(ws, operator, "plant")
    assert result.status == "failed" and result.error is not None
    assert expected in result.error and result.error.startswith("opcua source: "), result.error
    assert "\n" not in result.error and "Traceback" not in result.error and "wrong-secret" not in result.error
    assert (result.rows_in, result.rows_loaded, result.commits) == (0, 0, 0)
    assert not ws.catalog.table_exists(("default", "plant"))
    assert time.monotonic() - started < 10


def test_egress_and_bad_options_are_refused_at_apply(
    ws: Workspace, operator: Principal, opcua_url: str
) -> None:
    with pytest.raises(Forbidden, match=r"10\.9\.8\.7"):
        apply_pipeline(ws, operator, parse_spec(spec("opc.tcp://10.9.8.7:4840/", nodes=[f"{LINE}.Counter"])))
    bad = [
        ({"endpoint": "http://127.0.0.1:4840/", "nodes": ["i=2258"]}, "option 'endpoint': Value error, not an opc.tcp"),
        ({"endpoint": opcua_url}, "name the variables to subscribe to"),
        ({"endpoint": opcua_url, "nodes": ["Line1.Temperature"]}, "'Line1.Temperature' is not an OPC UA node id"),
        ({"endpoint": opcua_url, "nodes": ["i=2258"], "colour": "red"}, "option 'colour'"),
        ({"endpoint": opcua_url, "nodes": ["i=2258"], "security": "Basic256Sha256"}, "option 'security'"),
        ({"endpoint": opcua_url.replace("//", "//u:p@"), "nodes": ["i=2258"]}, "username and password options"),
    ]  # fmt: skip
    for options, expected in bad:
        with pytest.raises(BadRequest) as caught:
            CONNECTOR.create(options, Context(tmp_dir=None))
        assert expected in caught.value.detail and "\n" not in caught.value.detail, caught.value.detail
    checked: list[str] = []
    CONNECTOR.create(
        {"endpoint": opcua_url, "nodes": ["i=2258"]}, Context(tmp_dir=None, check_egress=checked.append)
    )
    assert checked == [opcua_url]


def test_the_same_pipeline_through_the_cli_and_the_api(
    ws: Workspace, settings: Settings, database_url: str | None, opcua_url: str, tmp_path: Path
) -> None:
    cli = Cli(settings.home, database_url)
    cli.env["MANARA_EGRESS_ALLOW"] = '["127.0.0.1"]'
    path = tmp_path / "plant.yaml"
    path.write_text(
        f"name: plant\nsource:\n  type: opcua\n  options:\n    endpoint: {opcua_url}\n"
        f"    nodes: ['{LINE}.Temperature', '{LINE}.Counter']\n"
        "    sampling_ms: 100\n    publishing_ms: 100\n    max_seconds: 1\n"
        "destination: {dataset: plant}\n",
        encoding="utf-8",
    )
    assert "created" in cli.ok("pipeline", "apply", str(path)).stdout
    ran = cli.ok("pipeline", "run", "plant", "--json")
    run = json.loads(ran.stdout)
    assert (run["status"], run["rows_quarantined"]) == ("succeeded", 0) and run["rows_loaded"] >= 10, run
    assert not ran.stderr.strip(), ran.stderr  # asyncua's own log lines stay quiet
    out = cli.ok(
        "sql", "SELECT count(DISTINCT node) AS nodes, min(status) AS s FROM plant", "-o", "csv"
    ).stdout
    assert out.split() == ["nodes,s", "2,Good"]
    closed = tmp_path / "closed.yaml"
    closed.write_text(
        path.read_text(encoding="utf-8").replace("name: plant", "name: closed").replace(
            opcua_url, f"opc.tcp://127.0.0.1:{closed_port()}/manara/"
        ).replace("{dataset: plant}", "{dataset: closed}"),
        encoding="utf-8",
    )  # fmt: skip
    cli.ok("pipeline", "apply", str(closed))
    failed = cli("pipeline", "run", "closed")
    said = " ".join(failed.output.split())  # stdout and stderr; the console wraps long lines
    assert failed.exit_code == 1 and said.startswith("✗ closed failed: opcua source: opc.tcp://127.0.0.1:")
    assert "connection refused" in said and "Traceback" not in said and "asyncua" not in said, said

    with session_scope(ws.engine) as s:
        tok = identity.create_token(
            s, identity.get_tenant(s, "default"), role=Role.steward, name="s", actor="t"
        ).secret
    headers = {"Authorization": f"Bearer {tok}", "Content-Type": "application/yaml"}
    with TestClient(create_app(ws.settings, ws)) as client:
        body = spec(opcua_url, name="api_plant", max_seconds=1.0, browse=[LINE])
        put = client.put("/api/v1/pipelines/api_plant", headers=headers, content=body.encode())
        assert put.status_code == 201, put.text
        answer = client.post("/api/v1/pipelines/api_plant/runs", headers=headers)
        assert answer.status_code == 200 and answer.headers["X-Manara-Run-Status"] == "succeeded", answer.text
        assert answer.json()["rows_loaded"] >= 10 and answer.json()["rows_quarantined"] == 1
        refused = client.put("/api/v1/pipelines/far", headers=headers,
                             content=spec("opc.tcp://10.9.8.7:4840/", name="far", nodes=["i=2258"]).encode())  # fmt: skip
        assert refused.status_code == 403 and refused.headers["content-type"].startswith(
            "application/problem+json"
        )
