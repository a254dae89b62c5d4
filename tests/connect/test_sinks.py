"""Sinks: committed groups go to a webhook, a PostgreSQL table and MQTT topics, in order, caught up
from the lake after a failure, exactly once into PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select, update
from test_bus import Receiver

from manara.config import Settings
from manara.connect.bus import sign
from manara.connect.delivery import committed_groups
from manara.connect.pipelines import apply_pipeline, parse_spec, pipeline_status, run_pipeline
from manara.errors import BadRequest, Forbidden
from manara.govern.principal import Principal
from manara.lake.catalog import identifier
from manara.meta.db import session_scope
from manara.meta.models import AuditEvent, PipelineSink
from manara.workspace import Workspace


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"egress_allow": ["127.0.0.1"]})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def write_csv(path: Path, start: int, n: int) -> None:
    lines = [f"{i},{'site-' + str(i % 3)},{i * 1.5}" for i in range(start, start + n)]
    path.write_text("id,site,amount\n" + "\n".join(lines) + "\n", encoding="utf-8")


def spec(folder: Path, sinks: list[dict[str, Any]], commit_rows: int = 100_000) -> str:
    return json.dumps({
        "name": "visits",
        "source": {"type": "files", "options": {"path": str(folder), "pattern": "*.csv"}},
        "transforms": [{"cast": {"id": "long"}}],
        "destination": {"dataset": "visits", "commit_rows": commit_rows},
        "sinks": sinks,
    })  # fmt: skip


def received_rows(receiver: Receiver) -> list[dict[str, Any]]:
    return [row for r in receiver.received for row in json.loads(r["body"])["rows"]]


def progress(ws: Workspace) -> dict[str, tuple[int, str | None]]:
    with session_scope(ws.engine) as s:
        return {r.name: (r.delivered_seq, r.error) for r in s.scalars(select(PipelineSink))}


# --- webhook ------------------------------------------------------------------------------------


def test_each_committed_group_is_posted_signed_with_an_idempotency_key(
    ws: Workspace, operator: Principal, tmp_path: Path, receiver: Receiver
) -> None:
    write_csv(tmp_path / "a.csv", 1, 25)
    sink = {"type": "webhook", "options": {"url": receiver.url, "secret": "s3cret", "batch_rows": 10}}
    apply_pipeline(ws, operator, parse_spec(spec(tmp_path, [sink], commit_rows=25)))
    result = run_pipeline(ws, operator, "visits")
    assert result.status == "succeeded", result.error
    assert len(receiver.received) == 3  # 25 rows in parts of 10
    bodies = [json.loads(r["body"]) for r in receiver.received]
    assert [(b["seq"], b["part"], b["parts"]) for b in bodies] == [(1, 1, 3), (1, 2, 3), (1, 3, 3)]
    assert [row["id"] for row in received_rows(receiver)] == list(range(1, 26))
    assert received_rows(receiver)[0] == {"id": 1, "site": "site-1", "amount": 1.5}
    for r in receiver.received:
        h = {k.lower(): v for k, v in r["headers"].items()}
        assert h["x-manara-signature"] == sign("s3cret", h["x-manara-timestamp"], r["body"])
    keys = [{k.lower(): v for k, v in r["headers"].items()}["idempotency-key"] for r in receiver.received]
    assert keys == [f"{operator.tenant}/visits:1:{p}" for p in (1, 2, 3)]
    committed = pipeline_status(ws, operator, "visits")["committed"]["seq"]  # then a cursor-only group
    assert committed == 2 and progress(ws) == {"webhook": (committed, None)}
    # delivering rows out of the lake is a data access: audited
    with session_scope(ws.engine) as s:
        exports = s.scalars(select(AuditEvent).where(AuditEvent.action == "dataset.export")).all()
    assert [json.loads(e.detail)["rows"] for e in exports] == [25]


def test_a_busy_receiver_is_retried_and_a_refusing_one_stops_the_sink(
    ws: Workspace, operator: Principal, tmp_path: Path, receiver: Receiver
) -> None:
    write_csv(tmp_path / "a.csv", 1, 5)
    receiver.codes = [503, 429]
    sink = {"type": "webhook", "options": {"url": receiver.url, "backoff_s": 0.01}}
    apply_pipeline(ws, operator, parse_spec(spec(tmp_path, [sink])))
    assert run_pipeline(ws, operator, "visits").status == "succeeded"
    assert len(receiver.received) == 3 and len(received_rows(receiver)) == 5 + 5 + 5  # two retries
    # a 4xx other than 408/429 is the receiver refusing the data: no retry, the run says why
    write_csv(tmp_path / "b.csv", 6, 5)
    receiver.codes = [422]
    result = run_pipeline(ws, operator, "visits")
    assert result.status == "failed" and result.rows_loaded == 5
    assert "refused part" in (result.error or "") and "HTTP 422" in (result.error or "")
    assert "the next run delivers what the sink missed" in (result.error or "")


def test_a_sink_that_was_down_is_caught_up_from_the_lake_in_order(
    ws: Workspace, operator: Principal, tmp_path: Path, receiver: Receiver
) -> None:
    url = receiver.url
    receiver.server.shutdown()
    receiver.server.server_close()  # the receiver is down
    for n in range(3):  # a file is one chunk: three groups
        write_csv(tmp_path / f"a{n}.csv", 1 + 10 * n, 10)
    sink = {"type": "webhook", "options": {"url": url, "retries": 1, "backoff_s": 0.01, "timeout_s": 2}}
    apply_pipeline(ws, operator, parse_spec(spec(tmp_path, [sink], commit_rows=10)))
    result = run_pipeline(ws, operator, "visits")
    # the lake is not held up by its sink: every group is loaded, the run says the sink is behind
    assert (result.status, result.rows_loaded, result.commits) == ("failed", 30, 4)  # 3 + a cursor move
    assert "sink 'webhook' (webhook) stopped at group 1" in (result.error or "")
    status = pipeline_status(ws, operator, "visits")
    assert status["sinks"][0]["behind"] == 4 and status["sinks"][0]["error"]
    # the receiver is back: the next run sends groups 1-3 from the lake, then the new file's group
    back = Receiver(urlsplit(url).port or 0)
    try:
        write_csv(tmp_path / "b.csv", 31, 5)
        again = run_pipeline(ws, operator, "visits")
        assert again.status == "succeeded", again.error
        bodies = [json.loads(r["body"]) for r in back.received]
        assert [b["seq"] for b in bodies] == [1, 2, 3, 5]  # group 4 moved the cursor only
        assert [row["id"] for b in bodies for row in b["rows"]] == list(range(1, 36))
        committed = pipeline_status(ws, operator, "visits")["committed"]["seq"]
        assert committed == 5 and progress(ws) == {"webhook": (5, None)}
        assert pipeline_status(ws, operator, "visits")["sinks"][0]["behind"] == 0
    finally:
        back.server.shutdown()
        back.server.server_close()


def test_committed_groups_are_read_back_from_the_lake(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    for n, (start, rows) in enumerate([(1, 10), (11, 10), (21, 5)]):
        write_csv(tmp_path / f"a{n}.csv", start, rows)
    apply_pipeline(ws, operator, parse_spec(spec(tmp_path, [], commit_rows=10)))
    assert run_pipeline(ws, operator, "visits").commits == 3
    table = ws.catalog.load_table(identifier(operator.tenant, "visits"))
    groups = list(committed_groups(table, "visits", 1, 3))
    assert [seq for seq, _ in groups] == [2, 3]
    assert [rows.column("id").to_pylist() for _, rows in groups] == [list(range(11, 21)), list(range(21, 26))]


def test_a_new_sink_starts_at_the_current_group_unless_from_start(
    ws: Workspace, operator: Principal, tmp_path: Path, receiver: Receiver
) -> None:
    write_csv(tmp_path / "a.csv", 1, 4)
    apply_pipeline(ws, operator, parse_spec(spec(tmp_path, [])))
    run_pipeline(ws, operator, "visits")
    hooks = [{"type": "webhook", "name": "now", "options": {"url": receiver.url}},
             {"type": "webhook", "name": "history", "from_start": True, "options": {"url": receiver.url}}]  # fmt: skip
    apply_pipeline(ws, operator, parse_spec(spec(tmp_path, hooks)))
    write_csv(tmp_path / "b.csv", 5, 2)
    assert run_pipeline(ws, operator, "visits").status == "succeeded"
    ids = sorted(row["id"] for row in received_rows(receiver))
    assert ids == [1, 2, 3, 4, 5, 5, 6, 6]  # history got 1-6, now got 5-6
    assert progress(ws) == {"now": (2, None), "history": (2, None)}


def test_bad_sink_declarations_are_refused_at_apply(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    def apply(sinks: list[dict[str, Any]]) -> None:
        apply_pipeline(ws, operator, parse_spec(spec(tmp_path, sinks)))

    with pytest.raises(BadRequest, match="no sink connector named 'ftp'"):
        apply([{"type": "ftp"}])
    with pytest.raises(BadRequest, match="option 'url': Field required"):
        apply([{"type": "webhook", "options": {}}])
    with pytest.raises(BadRequest, match="not an http"):
        apply([{"type": "webhook", "options": {"url": "file:///etc/passwd"}}])
    with pytest.raises(Forbidden, match="10.1.2.3"):
        apply([{"type": "webhook", "options": {"url": "http://10.1.2.3/hook"}}])
    with pytest.raises(BadRequest, match="two sinks are named webhook"):
        apply([{"type": "webhook", "options": {"url": "http://127.0.0.1/a"}},
               {"type": "webhook", "options": {"url": "http://127.0.0.1/b"}}])  # fmt: skip
    with pytest.raises(BadRequest, match="mode upsert needs `key`"):
        apply([{"type": "postgresql", "options": {"url": "postgresql://u@127.0.0.1/x", "table": "t",
                                                   "mode": "upsert"}}])  # fmt: skip
    with pytest.raises(BadRequest, match="not a table name"):
        apply([{"type": "postgresql", "options": {"url": "postgresql://u@127.0.0.1/x", "table": "t; drop"}}])
    with pytest.raises(BadRequest, match="no wildcards"):
        apply([{"type": "mqtt", "options": {"url": "mqtt://127.0.0.1", "topic": "a/#"}}])


# --- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture
def target_url(database_url: str | None) -> Iterator[str]:
    """A database of its own on the test cluster, for the sink to write to."""
    if not database_url:
        pytest.skip("needs PostgreSQL: runs in the PostgreSQL pass of `make test` (MANARA_TEST_DATABASE_URL)")
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(database_url).set(drivername="postgresql")
    name = f"sink_{uuid.uuid4().hex[:10]}"
    admin = base.render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield base.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_postgresql_sink_appends_each_group_exactly_once(
    ws: Workspace, operator: Principal, tmp_path: Path, target_url: str
) -> None:
    for n, (start, rows) in enumerate([(1, 10), (11, 10), (21, 5)]):
        write_csv(tmp_path / f"a{n}.csv", start, rows)  # three groups
    sink = {"type": "postgresql", "options": {"url": target_url, "table": "public.visits_copy"}}
    apply_pipeline(ws, operator, parse_spec(spec(tmp_path, [sink], commit_rows=10)))
    assert run_pipeline(ws, operator, "visits").status == "succeeded"
    assert pg_rows(target_url, "SELECT count(*), count(DISTINCT id), sum(amount) FROM visits_copy") == [
        (25, 25, sum(i * 1.5 for i in range(1, 26)))
    ]
    types = dict(pg_rows(target_url, "SELECT column_name, data_type FROM information_schema.columns "
                                     "WHERE table_name = 'visits_copy'"))  # fmt: skip
    assert types == {"id": "bigint", "site": "text", "amount": "double precision"}
    assert pg_rows(target_url, "SELECT sink, seq FROM manara_sink_state") == [
        (f"{operator.tenant}/visits/public.visits_copy", 3)
    ]
    # a process that died after PostgreSQL committed but before Manara recorded the delivery:
    # Manara's record is behind, the sink's own state is not, and nothing is written twice
    with session_scope(ws.engine) as s:
        s.execute(update(PipelineSink).values(delivered_seq=1))
    write_csv(tmp_path / "b.csv", 26, 5)
    assert run_pipeline(ws, operator, "visits").status == "succeeded"
    assert pg_rows(target_url, "SELECT count(*), count(DISTINCT id) FROM visits_copy") == [(30, 30)]
    assert progress(ws)["postgresql"] == (4, None)


def test_postgresql_sink_upserts_and_adds_new_columns(
    ws: Workspace, operator: Principal, tmp_path: Path, target_url: str
) -> None:
    write_csv(tmp_path / "a.csv", 1, 5)
    sink = {"type": "postgresql", "name": "current",
            "options": {"url": target_url, "table": "visits_now", "mode": "upsert", "key": ["id"]}}  # fmt: skip
    apply_pipeline(ws, operator, parse_spec(spec(tmp_path, [sink])))
    assert run_pipeline(ws, operator, "visits").status == "succeeded"
    # the same ids again, with new amounts and a new column: updated in place, column added
    (tmp_path / "b.csv").write_text("id,site,amount,note\n1,site-1,100.0,late\n6,site-0,9.0,new\n")
    assert run_pipeline(ws, operator, "visits").status == "succeeded"
    rows = pg_rows(target_url, "SELECT id, amount, note FROM visits_now ORDER BY id")
    assert rows == [(1, 100.0, "late"), (2, 3.0, None), (3, 4.5, None), (4, 6.0, None), (5, 7.5, None),
                    (6, 9.0, "new")]  # fmt: skip


def test_an_unreachable_database_leaves_the_sink_behind_with_a_masked_error(
    ws: Workspace, operator: Principal, tmp_path: Path, target_url: str
) -> None:
    write_csv(tmp_path / "a.csv", 1, 3)
    url = "postgresql://manara:pw-secret@127.0.0.1:1/nowhere"
    sink = {"type": "postgresql", "options": {"url": url, "table": "t"}}
    apply_pipeline(ws, operator, parse_spec(spec(tmp_path, [sink])))
    result = run_pipeline(ws, operator, "visits")
    assert result.status == "failed" and "cannot connect" in (result.error or "")
    assert "pw-secret" not in (result.error or "")


# --- MQTT ---------------------------------------------------------------------------------------


class Subscriber:
    def __init__(self, url: str, topic: str) -> None:
        parts = urlsplit(url)
        self.messages: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)  # fmt: skip

        def on_message(c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
            props = dict(getattr(msg.properties, "UserProperty", []) or [])
            self.messages.append((msg.topic, json.loads(msg.payload), props))

        self.client.on_message = on_message
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        assert self.ready.wait(10)

    def wait(self, n: int, timeout: float = 10.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_mqtt_sink_publishes_a_message_per_row_on_topics_named_by_columns(
    ws: Workspace, operator: Principal, tmp_path: Path, mqtt_url: str
) -> None:
    prefix = f"out-{uuid.uuid4().hex[:8]}"
    sub = Subscriber(mqtt_url, f"{prefix}/#")
    try:
        write_csv(tmp_path / "a.csv", 1, 6)
        sink = {"type": "mqtt", "options": {"url": mqtt_url, "topic": prefix + "/{site}/visits"}}
        apply_pipeline(ws, operator, parse_spec(spec(tmp_path, [sink])))
        assert run_pipeline(ws, operator, "visits").status == "succeeded"
        sub.wait(6)
        assert sorted((t, m["id"]) for t, m, _ in sub.messages) == sorted(
            (f"{prefix}/site-{i % 3}/visits", i) for i in range(1, 7)
        )
        keys = sorted(p["manara-key"] for _, _, p in sub.messages)
        assert keys == sorted(f"{operator.tenant}/visits:1:{n}" for n in range(1, 7))
    finally:
        sub.close()


def test_mqtt_sink_publishes_groups_and_a_missing_broker_stops_it(
    ws: Workspace, operator: Principal, tmp_path: Path, mqtt_url: str
) -> None:
    topic = f"out-{uuid.uuid4().hex[:8]}/visits"
    sub = Subscriber(mqtt_url, topic)
    try:
        write_csv(tmp_path / "a.csv", 1, 5)
        sink = {
            "type": "mqtt",
            "options": {"url": mqtt_url, "topic": topic, "format": "group", "batch_rows": 2},
        }
        apply_pipeline(ws, operator, parse_spec(spec(tmp_path, [sink])))
        assert run_pipeline(ws, operator, "visits").status == "succeeded"
        sub.wait(3)
        assert [(m["part"], m["parts"], [r["id"] for r in m["rows"]]) for _, m, _ in sub.messages] == [
            (1, 3, [1, 2]),
            (2, 3, [3, 4]),
            (3, 3, [5]),
        ]
    finally:
        sub.close()
    write_csv(tmp_path / "b.csv", 6, 1)
    gone = {"type": "mqtt", "options": {"url": "mqtt://127.0.0.1:1", "topic": topic}}
    apply_pipeline(ws, operator, parse_spec(spec(tmp_path, [gone])))
    result = run_pipeline(ws, operator, "visits")
    assert result.status == "failed" and "cannot reach the broker at 127.0.0.1:1" in (result.error or "")
    assert result.rows_loaded == 1
