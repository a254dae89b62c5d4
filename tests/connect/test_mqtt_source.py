"""The MQTT source against a real Mosquitto broker: persistent session, QoS 1, spool, quarantine,
exactly-once across kill -9, and the same pipeline through the CLI and the HTTP API."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from cli_runner import Cli
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from manara.api.app import create_app
from manara.config import Settings
from manara.connect.pipelines import apply_pipeline, parse_spec, run_pipeline
from manara.errors import BadRequest, Forbidden
from manara.govern import identity
from manara.govern.principal import Principal
from manara.meta.db import session_scope
from manara.meta.models import Role
from manara.workspace import Workspace


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"egress_allow": ["127.0.0.1"]})


@pytest.fixture
def prefix() -> str:
    """A topic prefix of this test's own: tests never see each other's messages."""
    return f"plant-{uuid.uuid4().hex[:8]}"


class Publisher:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes | str | dict[str, object], qos: int = 1) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode() if isinstance(payload, dict) else payload
        self.client.publish(topic, body, qos=qos).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(mqtt_url: str) -> Publisher:
    pub = Publisher(mqtt_url)
    yield pub  # type: ignore[misc]
    pub.close()


def spec(mqtt_url: str, prefix: str, name: str = "telemetry", **options: object) -> str:
    opts = {"url": mqtt_url, "topics": [f"{prefix}/+/temperature", f"{prefix}/alarms/#"],
            "idle_seconds": 1.0, **options}  # fmt: skip
    return json.dumps({"name": name, "source": {"type": "mqtt", "options": opts},
                       "destination": {"dataset": name, "commit_seconds": 0.5}})  # fmt: skip


def rows(ws: Workspace, dataset: str, *columns: str) -> list[dict[str, object]]:
    table = ws.catalog.load_table(("default", dataset)).scan().to_arrow()
    return sorted(table.select(list(columns)).to_pylist(), key=lambda r: json.dumps(r, default=str))


def test_messages_sent_before_the_first_run_are_kept_by_the_session(
    ws: Workspace, operator: Principal, mqtt_url: str, prefix: str, publisher: Publisher
) -> None:
    apply_pipeline(ws, operator, parse_spec(spec(mqtt_url, prefix)))
    # Manara is not listening: the broker keeps these for the pipeline's persistent session
    publisher.send(f"{prefix}/line1/temperature", {"sensor": "t1", "value": 21, "site": "الدار البيضاء"})
    publisher.send(f"{prefix}/line2/temperature", {"sensor": "t2", "value": 21.5, "site": "Fès"})
    publisher.send(f"{prefix}/alarms/line1/door", {"sensor": "d1", "open": True})
    publisher.send(f"{prefix}/line1/pressure", {"sensor": "p1", "value": 3})  # not subscribed

    result = run_pipeline(ws, operator, "telemetry")

    assert (result.status, result.rows_loaded, result.rows_quarantined) == ("succeeded", 3, 0), result.error
    got = rows(ws, "telemetry", "topic", "sensor", "value", "site", "open")
    assert got == sorted([
        {"topic": f"{prefix}/line1/temperature", "sensor": "t1", "value": 21.0, "site": "الدار البيضاء", "open": None},
        {"topic": f"{prefix}/line2/temperature", "sensor": "t2", "value": 21.5, "site": "Fès", "open": None},
        {"topic": f"{prefix}/alarms/line1/door", "sensor": "d1", "value": None, "site": None, "open": True},
    ], key=lambda r: json.dumps(r, default=str))  # fmt: skip
    table = ws.catalog.load_table(("default", "telemetry")).scan().to_arrow()
    assert str(table.schema.field("received_at").type).startswith("timestamp[us")


def test_a_second_run_loads_only_what_is_new(
    ws: Workspace, operator: Principal, mqtt_url: str, prefix: str, publisher: Publisher
) -> None:
    apply_pipeline(ws, operator, parse_spec(spec(mqtt_url, prefix)))
    for i in range(5):
        publisher.send(f"{prefix}/l/temperature", {"n": i})
    assert run_pipeline(ws, operator, "telemetry").rows_loaded == 5
    for i in range(5, 8):
        publisher.send(f"{prefix}/l/temperature", {"n": i})
    second = run_pipeline(ws, operator, "telemetry")
    assert second.rows_loaded == 3
    assert [r["n"] for r in rows(ws, "telemetry", "n")] == [float(i) for i in range(8)]


def test_bad_payloads_go_to_the_quarantine_and_the_rest_loads(
    ws: Workspace, operator: Principal, mqtt_url: str, prefix: str, publisher: Publisher
) -> None:
    apply_pipeline(ws, operator, parse_spec(spec(mqtt_url, prefix)))
    topic = f"{prefix}/l/temperature"
    publisher.send(topic, {"n": 1})
    publisher.send(topic, b'{"n": 2, "broken"')
    publisher.send(topic, b"[1, 2, 3]")
    publisher.send(topic, b"\xff\xfe not text")
    publisher.send(topic, {"n": 3})

    result = run_pipeline(ws, operator, "telemetry")

    assert (result.rows_loaded, result.rows_quarantined) == (2, 3)
    quarantine = ws.catalog.load_table(("default", "telemetry__quarantine")).scan().to_arrow().to_pylist()
    reasons = sorted(q["reason"] for q in quarantine)
    assert any("not JSON" in r for r in reasons) and any("not an object" in r for r in reasons)
    assert any("UTF-8" in r for r in reasons)
    assert {q["payload"] for q in quarantine} >= {'{"n": 2, "broken"', "[1, 2, 3]"}
    assert all(topic in q["position"] for q in quarantine)


def test_text_payloads_and_fixed_types(
    ws: Workspace, operator: Principal, mqtt_url: str, prefix: str, publisher: Publisher
) -> None:
    apply_pipeline(ws, operator, parse_spec(spec(mqtt_url, prefix, name="counts", types={"count": "long"})))
    publisher.send(f"{prefix}/a/temperature", {"count": 7, "ratio": 1})
    assert run_pipeline(ws, operator, "counts").rows_loaded == 1
    table = ws.catalog.load_table(("default", "counts")).scan().to_arrow()
    assert (
        str(table.schema.field("count").type) == "int64" and str(table.schema.field("ratio").type) == "double"
    )

    apply_pipeline(ws, operator, parse_spec(spec(mqtt_url, prefix, name="logs", payload="text")))
    publisher.send(f"{prefix}/alarms/x", "وقف الآلة رقم 3 — arrêt machine")
    assert run_pipeline(ws, operator, "logs").rows_loaded == 1
    assert rows(ws, "logs", "payload") == [{"payload": "وقف الآلة رقم 3 — arrêt machine"}]


def test_unreachable_broker_and_refused_hosts_fail_clearly(
    ws: Workspace, operator: Principal, mqtt_url: str, prefix: str
) -> None:
    with pytest.raises(BadRequest, match="cannot reach the broker"):
        apply_pipeline(ws, operator, parse_spec(spec("mqtt://127.0.0.1:9", prefix)))
    with pytest.raises(Forbidden):
        apply_pipeline(ws, operator, parse_spec(spec("mqtt://10.1.2.3:1883", prefix)))
    with pytest.raises(BadRequest, match="not an MQTT topic filter"):
        apply_pipeline(ws, operator, parse_spec(spec(mqtt_url, prefix, topics=["a/#/b"])))
    assert ws.catalog.table_exists(("default", "telemetry")) is False


def test_run_stops_when_asked_and_commits_what_it_received(
    ws: Workspace, operator: Principal, mqtt_url: str, prefix: str, publisher: Publisher
) -> None:
    apply_pipeline(ws, operator, parse_spec(spec(mqtt_url, prefix, idle_seconds=None)))
    stop = threading.Event()
    results = []
    runner = threading.Thread(
        target=lambda: results.append(run_pipeline(ws, operator, "telemetry", stop=stop))
    )
    runner.start()
    for i in range(20):
        publisher.send(f"{prefix}/l/temperature", {"n": i})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # committed by time (commit_seconds 0.5) while still listening
        ident = ("default", "telemetry")
        if ws.catalog.table_exists(ident) and ws.catalog.load_table(ident).scan().to_arrow().num_rows == 20:
            break
        time.sleep(0.2)
    assert runner.is_alive(), "with idle_seconds null the run listens until stopped"
    stop.set()
    runner.join(20)
    assert results and results[0].status == "succeeded" and results[0].rows_loaded == 20


KILLED_RUN = """
import sys, runpy
sys.argv = ["manara", "pipeline", "run", "feed", "--json"]
runpy.run_module("manara.cli.main", run_name="__main__")
"""


@pytest.mark.slow
def test_kill_9_while_messages_stream_in_loses_and_duplicates_nothing(
    ws: Workspace, operator: Principal, settings: Settings, mqtt_url: str, prefix: str, publisher: Publisher
) -> None:
    total = 3000
    apply_pipeline(
        ws, operator, parse_spec(spec(mqtt_url, prefix, name="feed", idle_seconds=2.0, flush_ms=5))
    )
    env = {**os.environ, "MANARA_HOME": str(settings.home), "MANARA_EGRESS_ALLOW": '["127.0.0.1"]'}
    env.pop("MANARA_WAREHOUSE", None)
    if settings.database_url:
        env["MANARA_DATABASE_URL"] = settings.database_url.get_secret_value()
    sent = threading.Event()

    def produce() -> None:
        for i in range(total):
            publisher.send(f"{prefix}/m/temperature", {"id": i}, qos=1) if i % 50 == 0 else \
                publisher.client.publish(f"{prefix}/m/temperature", json.dumps({"id": i}), qos=1)  # fmt: skip
            if i % 100 == 0:
                time.sleep(0.02)
        sent.set()

    producer = threading.Thread(target=produce)
    producer.start()
    rng = random.Random(11)
    kills = 0
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)  # fmt: skip
        try:
            proc.wait(timeout=rng.uniform(1.5, 3.5))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
    producer.join(60)
    assert sent.is_set()
    for _ in range(3):  # then let it finish for real
        last = run_pipeline(ws, operator, "feed")
        assert last.status == "succeeded", last.error
    ids = ws.catalog.load_table(("default", "feed")).scan().to_arrow().column("id").to_pylist()
    assert kills >= 2
    assert sorted(ids) == [float(i) for i in range(total)]  # every message, once


def test_the_same_pipeline_through_the_cli_and_the_api(
    ws: Workspace, settings: Settings, database_url: str | None, mqtt_url: str, prefix: str,
    publisher: Publisher, tmp_path: Path,
) -> None:  # fmt: skip
    cli = Cli(settings.home, database_url)
    cli.env["MANARA_EGRESS_ALLOW"] = '["127.0.0.1"]'
    path = tmp_path / "telemetry.yaml"
    path.write_text(
        f"name: telemetry\nsource:\n  type: mqtt\n  options:\n    url: {mqtt_url}\n"
        f"    topics: ['{prefix}/+/temperature']\n    idle_seconds: 1\ndestination: {{dataset: telemetry}}\n",
        encoding="utf-8",
    )
    assert "created" in cli.ok("pipeline", "apply", str(path)).stdout
    publisher.send(f"{prefix}/cli/temperature", {"v": 1})
    run = cli.json("pipeline", "run", "telemetry", "--json")
    assert (run["status"], run["rows_loaded"]) == ("succeeded", 1)

    with session_scope(ws.engine) as s:
        tok = identity.create_token(
            s, identity.get_tenant(s, "default"), role=Role.steward, name="s", actor="t"
        ).secret
    with TestClient(create_app(ws.settings, ws)) as client:
        headers = {"Authorization": f"Bearer {tok}", "Content-Type": "application/json"}
        body = spec(mqtt_url, prefix, name="api_feed")
        assert client.put("/api/v1/pipelines/api_feed", headers=headers, content=body).status_code in (
            200,
            201,
        )
        publisher.send(f"{prefix}/api/temperature", {"v": 2})
        answer = client.post("/api/v1/pipelines/api_feed/runs", headers=headers)
        assert answer.status_code in (200, 201), answer.text
        assert answer.json()["rows_loaded"] == 1
        bad = client.put("/api/v1/pipelines/nowhere", headers=headers,
                         content=spec("mqtt://127.0.0.1:9", prefix, name="nowhere"))  # fmt: skip
        assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
        assert "cannot reach the broker" in bad.json()["detail"]


def test_a_continuous_pipeline_listens_under_the_scheduler_and_commits_on_shutdown(
    ws: Workspace, operator: Principal, mqtt_url: str, prefix: str, publisher: Publisher
) -> None:
    from manara.connect.scheduler import Scheduler

    body = json.loads(spec(mqtt_url, prefix, idle_seconds=None))
    body["schedule"] = "@continuous"
    body["destination"]["commit_seconds"] = 60  # nothing committed by time: only the shutdown commits
    apply_pipeline(ws, operator, parse_spec(json.dumps(body)))
    scheduler = Scheduler(ws, tick=0.2)
    scheduler.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(w.is_alive() for w in scheduler.running.values()):
            time.sleep(0.1)
        for i in range(10):
            publisher.send(f"{prefix}/l/temperature", {"n": i})
        time.sleep(1.0)
        assert not ws.catalog.table_exists(("default", "telemetry"))  # still listening, not yet committed
    finally:
        scheduler.stop()
    assert not any(w.is_alive() for w in scheduler.running.values())
    assert sorted(r["n"] for r in rows(ws, "telemetry", "n")) == [float(i) for i in range(10)]
