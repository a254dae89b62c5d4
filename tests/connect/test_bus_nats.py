"""The event bus on NATS JetStream (`bus_url`), against a real nats-server with JetStream.

`MANARA_TEST_NATS_URL` names the server (scripts/services.sh starts one on loopback). Each test
publishes to a stream and subjects of its own, deleted afterwards, so tests never see each other's
messages; what they read back, they read with a real JetStream consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats
import pytest
from nats.js.api import ConsumerConfig, StorageType
from pydantic import ValidationError
from sqlalchemy import select, update

from manara.config import Settings
from manara.connect.bus import (
    BUS_RETRY,
    DUPLICATE_WINDOW,
    Dispatcher,
    bus_subject,
    create_subscription,
)
from manara.connect.pipelines import apply_pipeline, parse_spec, run_pipeline
from manara.govern import audit
from manara.govern.egress import check_egress
from manara.govern.principal import Principal
from manara.meta.db import session_scope
from manara.meta.models import AuditEvent, OutboxEvent
from manara.workspace import Workspace, init_workspace

# --- helpers: the stream of a test, a webhook receiver, a TCP relay ------------------------------


@dataclass
class Message:
    subject: str
    body: bytes
    headers: dict[str, str]
    seq: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class Bus:
    """A JetStream stream and subject prefix of one test, and the dispatchers publishing to it."""

    url: str
    stream: str
    prefix: str
    dispatchers: list[Dispatcher] = field(default_factory=list)

    def dispatcher(self, ws: Workspace, url: str | None = None, **kwargs: Any) -> Dispatcher:
        d = Dispatcher(ws, bus_url=url or self.url, bus_stream=self.stream, bus_subject_prefix=self.prefix,
                       **kwargs)  # fmt: skip
        self.dispatchers.append(d)
        return d

    def messages(self) -> list[Message]:
        """Every message of the stream, in stream order, read by an ephemeral pull consumer."""
        return asyncio.run(self._read())

    def stored(self) -> int:
        """How many messages the stream holds (its state, not a consumer's view)."""
        return asyncio.run(self._info()).state.messages  # type: ignore[no-any-return]

    def info(self) -> Any:
        return asyncio.run(self._info())

    async def _info(self) -> Any:
        nc = await nats.connect(self.url)
        try:
            return await nc.jetstream().stream_info(self.stream)
        finally:
            await nc.close()

    async def _read(self) -> list[Message]:
        nc = await nats.connect(self.url)
        try:
            js = nc.jetstream()
            total = (await js.stream_info(self.stream)).state.messages
            sub = await js.pull_subscribe(f"{self.prefix}.>", stream=self.stream, config=ConsumerConfig())
            out: list[Message] = []
            while len(out) < total:
                for m in await sub.fetch(total - len(out), timeout=5):
                    await m.ack()
                    out.append(Message(m.subject, m.data, dict(m.headers or {}), m.metadata.sequence.stream))
            await sub.unsubscribe()
            return out
        finally:
            await nc.close()

    async def _delete(self) -> None:
        nc = await nats.connect(self.url)
        try:
            await nc.jetstream().delete_stream(self.stream)
        except nats.js.errors.NotFoundError:
            pass
        finally:
            await nc.close()


@pytest.fixture
def bus(nats_url: str) -> Iterator[Bus]:
    tag = uuid.uuid4().hex[:12]
    b = Bus(nats_url, stream=f"MANARA_TEST_{tag}", prefix=f"manara_test_{tag}")
    yield b
    for d in b.dispatchers:
        d.stop()
    asyncio.run(b._delete())


class Receiver:
    """A real HTTP endpoint on loopback recording the webhook deliveries it receives."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"headers": dict(self.headers), "body": body})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def free_port() -> int:
    """A loopback port on which nothing listens (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Relay:
    """A TCP relay from a loopback port to the NATS server: the server 'comes back' on that port."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.target = target
        self.sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()
        for s in self.sockets:
            s.close()


def run_a_pipeline(ws: Workspace, operator: Principal, folder: Path) -> None:
    """A run that commits one row and quarantines one: events quarantine, pipeline_commit, run."""
    (folder / "a.csv").write_text("id,amount\n1,5\n2,x\n", encoding="utf-8")
    spec = (f"name: feed\nsource: {{type: files, options: {{path: '{folder}'}}}}\n"
            "transforms: [{cast: {amount: long}}]\ndestination: {dataset: feed}\n")  # fmt: skip
    apply_pipeline(ws, operator, parse_spec(spec))
    assert run_pipeline(ws, operator, "feed").status == "succeeded"


def outbox(ws: Workspace) -> list[OutboxEvent]:
    with session_scope(ws.engine) as s:
        return list(s.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all())


def unpublished(ws: Workspace) -> int:
    return sum(ev.bus_published_at is None for ev in outbox(ws))


def bus_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "manara.bus" and r.levelno >= logging.WARNING]


# --- the tests ----------------------------------------------------------------------------------


def test_a_pipeline_run_is_published_to_jetstream_and_to_webhooks(
    ws: Workspace, operator: Principal, tmp_path: Path, bus: Bus, receiver: Receiver
) -> None:
    create_subscription(ws, operator, receiver.url, ["*"])
    run_a_pipeline(ws, operator, tmp_path)
    dispatcher = bus.dispatcher(ws)
    assert dispatcher.dispatch_once() == {"events": 3, "delivered": 3, "failed": 0, "published": 3}

    messages = bus.messages()
    assert [m.subject for m in messages] == [
        f"{bus.prefix}.default.dataset.quarantine",
        f"{bus.prefix}.default.dataset.pipeline_commit",
        f"{bus.prefix}.default.pipeline.run",
    ]
    run = messages[2].event
    assert (run["type"], run["tenant"], run["subject"]) == ("pipeline.run", "default", "feed")
    assert (run["data"]["rows_loaded"], run["data"]["rows_quarantined"]) == (1, 1)
    commit = messages[1].event
    assert (commit["type"], commit["subject"], commit["outcome"]) == ("dataset.pipeline_commit", "feed", "ok")
    # the body is the webhook's, byte for byte (the webhooks kept working beside the bus)
    webhook_bodies = {json.loads(r["body"])["id"]: r["body"] for r in receiver.received}
    assert {m.event["id"]: m.body for m in messages} == webhook_bodies
    # Nats-Msg-Id: the hash of the event's audit-log entry, one per event
    events = outbox(ws)
    with session_scope(ws.engine) as s:
        hashes = {a.seq: a.hash for a in s.scalars(select(AuditEvent))}
    assert [m.headers["Nats-Msg-Id"] for m in messages] == [hashes[ev.audit_seq] for ev in events]
    assert all(ev.bus_published_at is not None for ev in events)
    # the stream was created as a deployment's MANARA would be
    config = bus.info().config
    assert (config.subjects, config.storage) == ([f"{bus.prefix}.>"], StorageType.FILE)
    assert config.duplicate_window == DUPLICATE_WINDOW.total_seconds()

    assert dispatcher.dispatch_once() == {"events": 0, "delivered": 0, "failed": 0, "published": 0}
    assert bus.stored() == 3


def test_events_are_published_in_outbox_order(ws: Workspace, bus: Bus) -> None:
    for i in range(40):  # two tenants, two kinds of events, interleaved
        tenant = "default" if i % 3 else "other"
        action = "dataset.ingest" if i % 2 else "dataset.quarantine"
        audit.write(
            ws.engine, audit.EventFields("test", action, tenant=tenant, target=f"d{i}", detail={"i": i})
        )
    dispatcher = bus.dispatcher(ws)
    assert dispatcher.dispatch_once()["published"] == 40
    messages = bus.messages()
    assert [m.event["data"]["i"] for m in messages] == list(range(40))
    assert [m.event["id"] for m in messages] == [ev.id for ev in outbox(ws)]
    assert [m.seq for m in messages] == sorted(m.seq for m in messages)
    assert [m.subject for m in messages[:3]] == [
        f"{bus.prefix}.other.dataset.quarantine",
        f"{bus.prefix}.default.dataset.ingest",
        f"{bus.prefix}.default.dataset.quarantine",
    ]
    # what comes later follows, in order too
    audit.write(ws.engine, audit.EventFields("test", "dataset.ingest", tenant="default", target="late"))
    assert dispatcher.dispatch_once()["published"] == 1
    assert bus.messages()[-1].event["subject"] == "late"


def test_a_republication_after_a_crash_is_dropped_by_jetstream(
    ws: Workspace, operator: Principal, tmp_path: Path, bus: Bus
) -> None:
    run_a_pipeline(ws, operator, tmp_path)
    assert bus.dispatcher(ws).dispatch_once()["published"] == 3
    first = bus.messages()

    # the crash: JetStream acknowledged the events, but the marks never reached the database
    with session_scope(ws.engine) as s:
        s.execute(update(OutboxEvent).values(bus_published_at=None))
    restarted = bus.dispatcher(ws)  # a new process
    assert restarted.dispatch_once()["published"] == 3  # published again, and marked this time
    assert unpublished(ws) == 0
    assert bus.stored() == 3  # JetStream kept one copy of each (same Nats-Msg-Id)
    assert [(m.seq, m.body) for m in bus.messages()] == [(m.seq, m.body) for m in first]

    audit.write(ws.engine, audit.EventFields("test", "dataset.ingest", tenant="default", target="next"))
    assert restarted.dispatch_once()["published"] == 1
    assert [m.seq for m in bus.messages()] == [m.seq for m in first] + [first[-1].seq + 1]


def test_unreachable_nats_keeps_the_events_and_a_later_pass_publishes_them(
    ws: Workspace,
    operator: Principal,
    tmp_path: Path,
    bus: Bus,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # nothing listens there yet
    dispatcher = bus.dispatcher(ws, url=f"nats://127.0.0.1:{port}")
    create_subscription(ws, operator, receiver.url, ["*"])
    run_a_pipeline(ws, operator, tmp_path)
    now = datetime.now(UTC)

    caplog.set_level(logging.DEBUG, logger="manara.bus")
    counts = dispatcher.dispatch_once(now)
    assert counts == {"events": 3, "delivered": 3, "failed": 0, "published": 0}  # webhooks unaffected
    assert unpublished(ws) == 3
    (warning,) = bus_warnings(caplog)
    assert warning.levelno == logging.WARNING and warning.exc_info is None  # one line, no traceback
    message = warning.getMessage()
    assert "\n" not in message
    assert f"3 event(s) wait to be published to NATS nats://127.0.0.1:{port}" in message
    assert "ConnectionRefusedError" in message and "next try in 5 s" in message

    caplog.clear()
    assert dispatcher.dispatch_once(now + BUS_RETRY - timedelta(seconds=1))["published"] == 0
    assert bus_warnings(caplog) == []  # backing off: not even a try

    target = urlsplit(bus.url)
    relay = Relay(port, (target.hostname or "127.0.0.1", target.port or 4222))  # the server is back
    try:
        assert dispatcher.dispatch_once(now + BUS_RETRY)["published"] == 3
        assert bus_warnings(caplog) == []
        assert "publishing to NATS" in caplog.text and "again" in caplog.text
        assert unpublished(ws) == 0
        assert [m.event["type"] for m in bus.messages()] == [
            "dataset.quarantine", "dataset.pipeline_commit", "pipeline.run"
        ]  # fmt: skip
        assert len(receiver.received) == 3  # each webhook delivered once
    finally:
        dispatcher.stop()
        relay.close()


def test_the_backoff_grows_while_nats_stays_down(ws: Workspace, bus: Bus) -> None:
    audit.write(ws.engine, audit.EventFields("test", "dataset.ingest", tenant="default", target="t"))
    dispatcher = bus.dispatcher(ws, url=f"nats://127.0.0.1:{free_port()}")
    now = datetime.now(UTC)
    dispatcher.dispatch_once(now)  # fails: next try in 5 s
    dispatcher.dispatch_once(now + BUS_RETRY)  # fails again: next try in 10 s
    assert dispatcher._bus_retry_at == now + BUS_RETRY * 3
    assert unpublished(ws) == 1


@pytest.fixture
def guarded_ws(settings: Settings, nats_url: str) -> Iterator[Workspace]:
    """A workspace whose egress allow-list lets in the NATS server's loopback port, nothing else."""
    port = urlsplit(nats_url).port or 4222
    result = init_workspace(settings.model_copy(update={"egress_allow": [f"127.0.0.1:{port}"]}))
    yield result.workspace
    result.workspace.close()


def test_nats_servers_must_pass_the_egress_check(
    guarded_ws: Workspace, bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    ws = guarded_ws
    audit.write(ws.engine, audit.EventFields("test", "dataset.ingest", tenant="default", target="t"))
    egress = functools.partial(
        check_egress, ws, actor="bus", tenant=None, purpose="event bus (webhook or NATS)"
    )

    caplog.set_level(logging.WARNING, logger="manara.bus")
    for url in ("nats://manara:s3cret@10.20.0.5:4222", "nats://169.254.169.254:4222"):
        refused = bus.dispatcher(ws, url=url, check_egress=egress)
        started = time.monotonic()
        assert refused.dispatch_once()["published"] == 0
        assert time.monotonic() - started < 2  # refused before any connection attempt
    assert unpublished(ws) == 1
    with session_scope(ws.engine) as s:
        denied = s.scalars(select(AuditEvent).where(AuditEvent.action == "egress.denied")
                           .order_by(AuditEvent.seq)).all()  # fmt: skip
    assert [(e.actor, e.outcome, e.target) for e in denied] == [
        ("bus", "denied", "nats://manara:***@10.20.0.5:4222"),
        ("bus", "denied", "nats://169.254.169.254:4222"),
    ]
    assert "cloud-metadata" in json.loads(denied[1].detail)["reason"]
    assert "s3cret" not in caplog.text
    assert [("refused" in r.getMessage(), r.exc_info) for r in bus_warnings(caplog)] == [(True, None)] * 2

    allowed = bus.dispatcher(ws, check_egress=egress)  # loopback, at the allowed port
    assert allowed.dispatch_once()["published"] == 1
    assert [m.event["subject"] for m in bus.messages()] == ["t"]


def test_the_dispatcher_thread_publishes_and_stop_closes_the_connection(ws: Workspace, bus: Bus) -> None:
    audit.write(ws.engine, audit.EventFields("test", "dataset.ingest", tenant="default", target="t"))
    dispatcher = bus.dispatcher(ws, interval=0.05)
    dispatcher.start()
    deadline = time.monotonic() + 20
    while unpublished(ws) and time.monotonic() < deadline:
        time.sleep(0.05)
    connection = dispatcher._nc
    dispatcher.stop()
    assert unpublished(ws) == 0 and bus.stored() == 1
    assert connection is not None and connection.is_closed
    assert dispatcher._nc is None and dispatcher._aloop is None


def test_defaults_and_the_bus_url_setting(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = Dispatcher(ws, bus_url="nats://127.0.0.1:4222")
    assert (d.bus_stream, d.bus_subject_prefix) == ("MANARA", "manara")
    assert bus_subject("manara", "default", "pipeline.run") == "manara.default.pipeline.run"
    assert bus_subject("manara", "a.b *>", "dataset.ingest") == "manara.a_b___.dataset.ingest"
    assert bus_subject("manara", None, "dataset.ingest") == "manara._.dataset.ingest"
    assert Dispatcher(ws).dispatch_once() == {"events": 0, "delivered": 0, "failed": 0}  # no bus: no key

    assert Settings(home=tmp_path).bus_url is None
    monkeypatch.setenv(
        "MANARA_BUS_URL", " nats://manara:s3cret@bus-1.example.ma:4222 , nats://bus-2.example.ma "
    )
    s = Settings(home=tmp_path)
    assert s.bus_url == "nats://manara:s3cret@bus-1.example.ma:4222,nats://bus-2.example.ma"
    assert s.redacted()["bus_url"] == "nats://manara:***@bus-1.example.ma:4222,nats://bus-2.example.ma"
    assert Dispatcher(ws, bus_url=s.bus_url).bus_servers == [
        "nats://manara:s3cret@bus-1.example.ma:4222",
        "nats://bus-2.example.ma",
    ]
    monkeypatch.setenv("MANARA_BUS_URL", "")
    assert Settings(home=tmp_path).bus_url is None
    for wrong in ("http://bus.example.ma", "bus.example.ma:4222", "nats://", "nats://h:4222/x"):
        monkeypatch.setenv("MANARA_BUS_URL", wrong)
        with pytest.raises(ValidationError, match="not a NATS server URL"):
            Settings(home=tmp_path)
    with pytest.raises(ValueError, match="not a NATS server URL"):
        Dispatcher(ws, bus_url="https://bus.example.ma")
