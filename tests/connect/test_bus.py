"""The event bus: outbox rows with the change, signed webhook deliveries, retries, delivery log."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from manara.connect.bus import (
    BACKOFF,
    Dispatcher,
    create_subscription,
    delete_subscription,
    list_subscriptions,
    sign,
    subscription_deliveries,
)
from manara.connect.pipelines import apply_pipeline, parse_spec, run_pipeline
from manara.errors import BadRequest, Forbidden
from manara.govern.principal import Principal
from manara.meta.db import session_scope
from manara.meta.models import OutboxEvent, Role
from manara.workspace import Workspace


class Receiver:
    """A real HTTP endpoint on loopback that records what it receives and answers `codes` in turn."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[dict[str, Any]] = []
        self.codes: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"headers": dict(self.headers), "body": body})
                self.send_response(receiver.codes.pop(0) if receiver.codes else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def run_a_pipeline(ws: Workspace, operator: Principal, folder: Path) -> None:
    (folder / "a.csv").write_text("id,amount\n1,5\n2,x\n", encoding="utf-8")
    spec = (f"name: feed\nsource: {{type: files, options: {{path: '{folder}'}}}}\n"
            "transforms: [{cast: {amount: long}}]\ndestination: {dataset: feed}\n")  # fmt: skip
    apply_pipeline(ws, operator, parse_spec(spec))
    assert run_pipeline(ws, operator, "feed").status == "succeeded"


def test_pipeline_events_reach_a_signed_webhook(
    ws: Workspace, operator: Principal, tmp_path: Path, receiver: Receiver
) -> None:
    sub = create_subscription(ws, operator, receiver.url, ["pipeline.*", "dataset.quarantine"])
    run_a_pipeline(ws, operator, tmp_path)
    counts = Dispatcher(ws).dispatch_once()
    assert counts["delivered"] == 2  # the run and the quarantine; the data commit is not subscribed
    events = [json.loads(r["body"]) for r in receiver.received]
    assert sorted(e["type"] for e in events) == ["dataset.quarantine", "pipeline.run"]
    run = next(e for e in events if e["type"] == "pipeline.run")
    assert (run["subject"], run["data"]["rows_loaded"], run["data"]["rows_quarantined"]) == ("feed", 1, 1)
    for r in receiver.received:  # every delivery verifies with the subscription's secret
        h = r["headers"]
        assert h["X-Manara-Signature"] == sign(sub["secret"], h["X-Manara-Timestamp"], r["body"])
        assert h["X-Manara-Event"] in ("pipeline.run", "dataset.quarantine")
    assert Dispatcher(ws).dispatch_once() == {"events": 0, "delivered": 0, "failed": 0}  # exactly once
    log = subscription_deliveries(ws, operator, sub["id"])
    assert {(d["event"], d["status"], d["attempts"], d["last_status"]) for d in log} == {
        ("pipeline.run", "delivered", 1, 204),
        ("dataset.quarantine", "delivered", 1, 204),
    }
    assert "secret" not in list_subscriptions(ws, operator)[0]


def test_failed_deliveries_are_retried_with_backoff(
    ws: Workspace, operator: Principal, tmp_path: Path, receiver: Receiver
) -> None:
    sub = create_subscription(ws, operator, receiver.url, ["pipeline.run"])
    run_a_pipeline(ws, operator, tmp_path)
    receiver.codes = [503, 500]
    now = datetime.now(UTC)
    dispatcher = Dispatcher(ws)
    assert dispatcher.dispatch_once(now)["delivered"] == 0
    assert dispatcher.dispatch_once(now + BACKOFF - timedelta(seconds=1))["delivered"] == 0  # not due yet
    assert len(receiver.received) == 1
    assert dispatcher.dispatch_once(now + BACKOFF)["delivered"] == 0  # second answer: 500
    assert dispatcher.dispatch_once(now + BACKOFF * 3)["delivered"] == 1
    (d,) = subscription_deliveries(ws, operator, sub["id"])
    assert (d["status"], d["attempts"], d["last_status"]) == ("delivered", 3, 204)
    bodies = {r["body"] for r in receiver.received}
    assert len(bodies) == 1  # the same event each time


def test_a_refused_host_fails_at_once_and_an_unreachable_one_is_retried(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    refused = create_subscription(ws, operator, "http://169.254.169.254/latest", ["pipeline.run"])
    down = create_subscription(ws, operator, "http://127.0.0.1:9/hook", ["pipeline.run"])
    run_a_pipeline(ws, operator, tmp_path)

    def egress(url: str) -> None:
        if "169.254" in url:
            raise Forbidden("cloud metadata addresses are never reachable")

    Dispatcher(ws, check_egress=egress, timeout=2).dispatch_once()
    (r,) = subscription_deliveries(ws, operator, refused["id"])
    assert (r["status"], r["attempts"]) == ("failed", 1) and "metadata" in r["last_error"]
    (d,) = subscription_deliveries(ws, operator, down["id"])
    assert (d["status"], d["attempts"], d["last_status"]) == ("pending", 1, None) and d["last_error"]


def test_events_are_written_with_the_change_or_not_at_all(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    run_a_pipeline(ws, operator, tmp_path)
    with session_scope(ws.engine) as s:
        types = s.scalars(select(OutboxEvent.type).order_by(OutboxEvent.id)).all()
    assert types == ["dataset.quarantine", "dataset.pipeline_commit", "pipeline.run"]
    with pytest.raises(RuntimeError), session_scope(ws.engine) as s:  # a change that rolls back…
        from manara.govern import audit

        audit.record(s.connection(), audit.EventFields("x", "dataset.ingest", tenant="default", target="t"))
        raise RuntimeError("the commit fails")
    with session_scope(ws.engine) as s:  # …announces nothing
        assert s.scalars(select(OutboxEvent.type)).all() == types


def test_subscriptions_are_checked_and_owned(ws: Workspace, operator: Principal) -> None:
    with pytest.raises(BadRequest, match="no event matches"):
        create_subscription(ws, operator, "http://127.0.0.1/x", ["datasets.*"])
    with pytest.raises(BadRequest, match="http"):
        create_subscription(ws, operator, "ftp://x/", ["*"])
    viewer = Principal(operator.tenant, operator.tenant_id, "viewer", Role.viewer)
    with pytest.raises(Forbidden):
        create_subscription(ws, viewer, "http://127.0.0.1/x", ["*"])
    sub = create_subscription(ws, operator, "http://127.0.0.1/x", ["*"])
    delete_subscription(ws, operator, sub["id"])
    assert list_subscriptions(ws, operator) == []
