"""/api/v1/subscriptions: a webhook subscribed through the API receives signed pipeline events."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from api_checks import assert_problem, auth
from fastapi.testclient import TestClient

from manara.connect.bus import Dispatcher
from manara.govern import identity
from manara.meta.db import session_scope
from manara.meta.models import Role
from manara.workspace import Workspace


def viewer_token(ws: Workspace) -> str:
    with session_scope(ws.engine) as s:
        tenant = identity.get_tenant(s, "default")
        return identity.create_token(s, tenant, role=Role.viewer, name="v", actor="test").secret


def test_subscribe_run_and_receive(
    client: TestClient, ws: Workspace, admin_token: str, tmp_path: Path
) -> None:
    got: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            got.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/events"
        created = client.post("/api/v1/subscriptions", json={"url": url, "events": ["pipeline.run"]},
                              headers=auth(admin_token))  # fmt: skip
        assert created.status_code == 201, created.text
        sub = created.json()
        (tmp_path / "a.csv").write_text("id\n1\n2\n3\n", encoding="utf-8")
        spec = f"name: p1\nsource: {{type: files, options: {{path: '{tmp_path}'}}}}\ndestination: {{dataset: p1}}\n"
        put = client.put("/api/v1/pipelines/p1", content=spec,
                         headers={**auth(admin_token), "Content-Type": "application/yaml"})  # fmt: skip
        assert put.status_code == 201, put.text
        assert client.post("/api/v1/pipelines/p1/runs", headers=auth(admin_token)).json()["rows_loaded"] == 3
        Dispatcher(ws).dispatch_once()
        (headers, body) = got[0]
        assert len(got) == 1 and json.loads(body)["data"]["rows_loaded"] == 3
        mac = hmac.new(
            sub["secret"].encode(), headers["X-Manara-Timestamp"].encode() + b"." + body, hashlib.sha256
        )
        assert headers["X-Manara-Signature"] == "sha256=" + mac.hexdigest()
        log = client.get(f"/api/v1/subscriptions/{sub['id']}/deliveries", headers=auth(admin_token)).json()
        assert [(d["event"], d["status"], d["last_status"]) for d in log] == [
            ("pipeline.run", "delivered", 200)
        ]
        listed = client.get("/api/v1/subscriptions", headers=auth(admin_token)).json()
        assert [s["id"] for s in listed] == [sub["id"]] and "secret" not in listed[0]
        assert (
            client.delete(f"/api/v1/subscriptions/{sub['id']}", headers=auth(admin_token)).status_code == 204
        )
        assert_problem(client.delete(f"/api/v1/subscriptions/{sub['id']}", headers=auth(admin_token)), 404,
                       "subscription-not-found")  # fmt: skip
    finally:
        server.shutdown()


def test_bad_subscriptions_are_problems(client: TestClient, ws: Workspace, admin_token: str) -> None:
    bad = client.post("/api/v1/subscriptions", json={"url": "http://x/", "events": ["nope"]},
                      headers=auth(admin_token))  # fmt: skip
    assert "no event matches" in assert_problem(bad, 400, "bad-request")["detail"]
    denied = client.post("/api/v1/subscriptions", json={"url": "http://x/", "events": ["*"]},
                         headers=auth(viewer_token(ws)))  # fmt: skip
    assert_problem(denied, 403, "forbidden")
