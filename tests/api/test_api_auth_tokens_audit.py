"""Authentication, tokens, the audit API, request ids, health, metrics, OpenAPI and unknown routes."""

from __future__ import annotations

import re
import secrets
import string
from datetime import timedelta
from pathlib import Path

import pytest
from api_checks import PROBLEM  # noqa: F401
from api_checks import assert_problem as _problem
from api_checks import auth as _auth
from fastapi.testclient import TestClient

from manara.api.app import create_app
from manara.govern import audit, identity
from manara.lake.ingest import ingest_file
from manara.meta.db import session_scope
from manara.meta.models import Role
from manara.workspace import Workspace

URLSAFE = string.ascii_letters + string.digits + "-_"


def _issue(
    ws: Workspace, role: Role, *, tenant: str = "default", expires_in: timedelta | None = None
) -> tuple[str, str]:
    """(token id, secret)."""
    with session_scope(ws.engine) as s:
        t = identity.get_tenant(s, tenant)
        issued = identity.create_token(
            s, t, role=role, name=f"{role.value} test", actor="test", expires_in=expires_in
        )
        return issued.token.id, issued.secret


# --- authentication --------------------------------------------------------------------------------


def test_missing_header_is_401_unauthenticated(client: TestClient, ws: Workspace) -> None:
    resp = client.get("/api/v1/datasets")
    body = _problem(resp, 401, "unauthenticated")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Bearer" in body["detail"]
    [ev] = audit.query(ws.engine, action="auth.denied")
    assert ev["outcome"] == "denied"
    assert ev["actor"] == "anonymous"
    assert ev["target"] == "GET /api/v1/datasets"
    assert ev["detail"]["reason"] == body["detail"]


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token mnr_abc", "bearer"])
def test_wrong_scheme_is_401(client: TestClient, ws: Workspace, header: str) -> None:
    resp = client.get("/api/v1/datasets", headers={"Authorization": header})
    body = _problem(resp, 401, "unauthenticated")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    [ev] = audit.query(ws.engine, action="auth.denied")
    assert ev["detail"]["reason"] == body["detail"]


def test_bad_tokens_are_401_invalid_token_with_distinct_reasons(
    client: TestClient, ws: Workspace, admin_token: str
) -> None:
    revoked_id, revoked = _issue(ws, Role.analyst)
    with session_scope(ws.engine) as s:
        identity.revoke_token(s, identity.get_tenant(s, "default"), revoked_id, "test")
    expired_id, expired = _issue(ws, Role.analyst, expires_in=timedelta(seconds=-5))
    unknown = "mnr_" + "".join(secrets.choice(URLSAFE) for _ in range(43))
    assert len(unknown) == 47

    cases = {
        "malformed": "not-a-manara-token",
        "malformed-short": "mnr_short",
        "unknown": unknown,
        "revoked": revoked,
        "expired": expired,
    }
    details: dict[str, str] = {}
    for label, secret in cases.items():
        resp = client.post("/api/v1/sql", headers=_auth(secret), json={"sql": "SELECT 1"})
        body = _problem(resp, 401, "invalid-token")
        assert resp.headers["WWW-Authenticate"].startswith("Bearer"), label
        assert secret not in body["detail"], "the detail must not echo the secret"
        details[label] = body["detail"]

    assert "malformed" in details["malformed"]
    assert details["malformed"] == details["malformed-short"]
    assert details["unknown"] == "unknown token"
    assert revoked_id in details["revoked"] and "revoked" in details["revoked"]
    assert expired_id in details["expired"] and "expired" in details["expired"]
    assert len({details[k] for k in ("malformed", "unknown", "revoked", "expired")}) == 4

    denied = audit.query(ws.engine, action="auth.denied")
    assert len(denied) == len(cases)
    assert [e["detail"]["reason"] for e in reversed(denied)] == list(details.values())
    assert all(e["target"] == "POST /api/v1/sql" and e["outcome"] == "denied" for e in denied)
    # no query ran for any of them
    assert audit.query(ws.engine, action="sql.query") == []
    # and the admin token still works
    assert client.post("/api/v1/sql", headers=_auth(admin_token), json={"sql": "SELECT 1 AS x"}).json()[
        "rows"
    ] == [{"x": 1}]


# --- tokens ----------------------------------------------------------------------------------------


def test_create_list_revoke_token(client: TestClient, ws: Workspace, admin_token: str) -> None:
    created = client.post(
        "/api/v1/tokens", headers=_auth(admin_token), json={"name": "tableau de bord", "role": "analyst"}
    )
    assert created.status_code == 201, created.text
    tok = created.json()
    secret = tok["secret"]
    assert secret.startswith("mnr_") and len(secret) == 47
    assert tok["role"] == "analyst"
    assert tok["name"] == "tableau de bord"
    assert tok["user"] == "admin"
    assert tok["expires_at"] is not None  # 90 days by default

    # the new token works, as an analyst
    q = client.post("/api/v1/sql", headers=_auth(secret), json={"sql": "SELECT 2 AS two"})
    assert q.status_code == 200 and q.json()["rows"] == [{"two": 2}]
    _problem(client.get("/api/v1/audit", headers=_auth(secret)), 403, "forbidden")

    listed = client.get("/api/v1/tokens", headers=_auth(admin_token))
    assert listed.status_code == 200
    assert secret not in listed.text
    assert all("secret" not in row and "secret_hash" not in row for row in listed.json())
    ids = {row["id"]: row for row in listed.json()}
    assert tok["id"] in ids
    assert ids[tok["id"]]["revoked_at"] is None
    assert ids[tok["id"]]["last_used_at"] is not None  # it was used above

    # the secret is never stored in the clear, nor written to the audit log
    [ev] = audit.query(ws.engine, action="token.create", target=tok["id"])
    assert secret not in str(ev)

    revoked = client.delete(f"/api/v1/tokens/{tok['id']}", headers=_auth(admin_token))
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert "secret" not in revoked.json()
    body = _problem(
        client.post("/api/v1/sql", headers=_auth(secret), json={"sql": "SELECT 1"}), 401, "invalid-token"
    )
    assert "revoked" in body["detail"]
    assert audit.query(ws.engine, action="token.revoke", target=tok["id"])

    _problem(client.delete("/api/v1/tokens/tok_doesnotexist", headers=_auth(admin_token)), 404, "not-found")


def test_token_role_ceiling(client: TestClient, ws: Workspace) -> None:
    _, analyst = _issue(ws, Role.analyst)
    body = _problem(
        client.post("/api/v1/tokens", headers=_auth(analyst), json={"name": "escalate", "role": "admin"}),
        403,
        "forbidden",
    )
    assert "admin" in body["detail"]
    _problem(
        client.post("/api/v1/tokens", headers=_auth(analyst), json={"name": "up", "role": "steward"}),
        403,
        "forbidden",
    )
    _problem(
        client.post(
            "/api/v1/tokens",
            headers=_auth(analyst),
            json={"name": "forever", "role": "viewer", "expires_days": None},
        ),
        403,
        "forbidden",
    )
    # an analyst may create a token of its own role or lower, that expires
    ok = client.post("/api/v1/tokens", headers=_auth(analyst), json={"name": "lower", "role": "viewer"})
    assert ok.status_code == 201, ok.text
    assert ok.json()["role"] == "viewer"
    # no admin token was created by the refused requests
    with session_scope(ws.engine) as s:
        roles = [t.role for t in identity.list_tokens(s, identity.get_tenant(s, "default"))]
    assert roles.count("admin") == 1  # the first admin token only

    _problem(
        client.post("/api/v1/tokens", headers=_auth(analyst), json={"name": "x", "role": "superuser"}),
        422,
        "validation-error",
    )
    _problem(
        client.post("/api/v1/tokens", headers=_auth(analyst), json={"name": "", "role": "viewer"}),
        422,
        "validation-error",
    )


def test_non_admin_sees_and_revokes_only_own_tokens(
    client: TestClient, ws: Workspace, admin_token: str
) -> None:
    # an analyst token bound to no user sees no tokens and cannot revoke the admin's
    _, analyst = _issue(ws, Role.analyst)
    assert client.get("/api/v1/tokens", headers=_auth(analyst)).json() == []
    admin_tokens = client.get("/api/v1/tokens", headers=_auth(admin_token)).json()
    first_admin = next(t for t in admin_tokens if t["role"] == "admin")
    _problem(client.delete(f"/api/v1/tokens/{first_admin['id']}", headers=_auth(analyst)), 404, "not-found")
    assert client.get("/api/v1/datasets", headers=_auth(admin_token)).status_code == 200


def test_tokens_are_tenant_scoped(client: TestClient, ws: Workspace, admin_token: str) -> None:
    with session_scope(ws.engine) as s:
        identity.create_tenant(s, "rival", None, "test")
    rival_id, rival = _issue(ws, Role.admin, tenant="rival")
    ids = {t["id"] for t in client.get("/api/v1/tokens", headers=_auth(admin_token)).json()}
    assert rival_id not in ids
    _problem(client.delete(f"/api/v1/tokens/{rival_id}", headers=_auth(admin_token)), 404, "not-found")
    assert client.get("/api/v1/datasets", headers=_auth(rival)).status_code == 200


# --- audit -----------------------------------------------------------------------------------------


def test_audit_admin_only_filtered_and_tenant_scoped(
    client: TestClient, ws: Workspace, admin_token: str, tmp_path: Path
) -> None:
    _, viewer = _issue(ws, Role.viewer)
    _problem(client.get("/api/v1/audit", headers=_auth(viewer)), 403, "forbidden")
    _problem(client.get("/api/v1/audit/verify", headers=_auth(viewer)), 403, "forbidden")
    _, steward = _issue(ws, Role.steward)
    _problem(client.get("/api/v1/audit", headers=_auth(steward)), 403, "forbidden")

    with session_scope(ws.engine) as s:
        identity.create_tenant(s, "rival", None, "test")
    _, rival = _issue(ws, Role.admin, tenant="rival")
    src = tmp_path / "r.csv"
    src.write_text("a,b\n1,2\n", "utf-8")
    ingest_file(ws, ws.principal("rival"), src, "rival_data")
    assert (
        client.post("/api/v1/sql", headers=_auth(rival), json={"sql": "SELECT * FROM rival_data"}).status_code
        == 200
    )
    assert client.post("/api/v1/sql", headers=_auth(admin_token), json={"sql": "SELECT 1"}).status_code == 200

    resp = client.get("/api/v1/audit", headers=_auth(admin_token))
    assert resp.status_code == 200
    events = resp.json()["events"]
    assert events
    assert {e["tenant"] for e in events} == {"default"}
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs, reverse=True)  # newest first
    actions = {e["action"] for e in events}
    assert "sql.query" in actions and "token.create" in actions
    assert "dataset.ingest" not in actions  # that was the rival's

    only_sql = client.get("/api/v1/audit", params={"action": "sql.query"}, headers=_auth(admin_token)).json()
    assert [e["action"] for e in only_sql["events"]] == ["sql.query"]
    assert only_sql["events"][0]["actor"] == "user:admin"

    rival_events = client.get("/api/v1/audit", headers=_auth(rival)).json()["events"]
    assert rival_events and {e["tenant"] for e in rival_events} == {"rival"}
    assert {"dataset.ingest", "sql.query", "tenant.create"} <= {e["action"] for e in rival_events}

    # paging
    page = client.get("/api/v1/audit", params={"limit": 2}, headers=_auth(admin_token)).json()
    assert len(page["events"]) == 2
    assert page["next_before_seq"] == page["events"][-1]["seq"]
    older = client.get(
        "/api/v1/audit",
        params={"limit": 2, "before_seq": page["next_before_seq"]},
        headers=_auth(admin_token),
    ).json()
    assert all(e["seq"] < page["next_before_seq"] for e in older["events"])

    # reading the log is itself audited
    assert audit.query(ws.engine, action="audit.read", tenant="default")

    verify = client.get("/api/v1/audit/verify", headers=_auth(admin_token))
    assert verify.status_code == 200
    result = verify.json()
    assert result["ok"] is True
    assert result["first_broken_seq"] is None
    # the endpoint verified every event before its own, then audited the verification
    assert result["checked"] == audit.verify(ws.engine).checked - 1 > 5
    [event] = audit.query(ws.engine, action="audit.verify", tenant="default")
    assert event["outcome"] == "ok" and event["detail"]["checked"] == result["checked"]


def test_request_id_is_echoed_and_audited(client: TestClient, ws: Workspace, admin_token: str) -> None:
    rid = "req-" + secrets.token_hex(8)
    resp = client.post(
        "/api/v1/sql", headers={**_auth(admin_token), "X-Request-ID": rid}, json={"sql": "SELECT 42 AS x"}
    )
    assert resp.status_code == 200
    assert resp.headers["X-Request-ID"] == rid
    [ev] = audit.query(ws.engine, action="sql.query")
    assert ev["request_id"] == rid

    # failures carry it in the problem body and in the auth.denied event
    rid2 = "req-" + secrets.token_hex(8)
    denied = client.get("/api/v1/datasets", headers={"X-Request-ID": rid2})
    assert denied.headers["X-Request-ID"] == rid2
    assert denied.json()["request_id"] == rid2
    [ev2] = audit.query(ws.engine, action="auth.denied")
    assert ev2["request_id"] == rid2

    # without one, the server makes one up, different per request
    a = client.get("/healthz").headers["X-Request-ID"]
    b = client.get("/healthz").headers["X-Request-ID"]
    assert a and b and a != b

    # an overlong id is cut, not refused
    long = client.get("/healthz", headers={"X-Request-ID": "x" * 500})
    assert long.status_code == 200 and long.headers["X-Request-ID"] == "x" * 64


# --- health, metrics, OpenAPI, unknown routes ------------------------------------------------------


def test_health_ready_metrics(client: TestClient, admin_token: str) -> None:
    h = client.get("/healthz")
    assert h.status_code == 200 and h.json()["status"] == "ok"
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "checks": {"database": "ok", "warehouse": "ok"}}

    client.get("/api/v1/datasets", headers=_auth(admin_token))
    client.get("/api/v1/datasets")
    m = client.get("/metrics")
    assert m.status_code == 200
    assert m.headers["content-type"].startswith("text/plain")
    text = m.text
    assert "# TYPE manara_http_requests_total counter" in text
    counts = _request_counts(text)
    datasets_route = [r for (_, r, _) in counts if r.endswith("/datasets")]
    assert datasets_route, counts
    route = datasets_route[0]
    assert counts[("GET", route, "200")] == 1.0
    assert counts[("GET", route, "401")] == 1.0
    assert counts[("GET", "/readyz", "200")] == 1.0
    assert "manara_http_request_seconds_bucket" in text

    client.get("/api/v1/no/such/route")
    assert _request_counts(client.get("/metrics").text)[("GET", "unmatched", "404")] == 1.0


def _request_counts(text: str) -> dict[tuple[str, str, str], float]:
    out = {}
    for m in re.finditer(
        r'^manara_http_requests_total\{method="([^"]+)",route="([^"]+)",status="(\d+)"\} ([0-9.e+]+)$',
        text,
        re.M,
    ):
        out[(m.group(1), m.group(2), m.group(3))] = float(m.group(4))
    return out


def test_metrics_route_label_is_the_full_template(client: TestClient, admin_token: str) -> None:
    client.get("/api/v1/datasets", headers=_auth(admin_token))
    client.get("/api/v1/datasets/nothing_here", headers=_auth(admin_token))
    counts = _request_counts(client.get("/metrics").text)
    assert counts.get(("GET", "/api/v1/datasets", "200")) == 1.0, counts
    assert counts.get(("GET", "/api/v1/datasets/{name}", "404")) == 1.0, counts


def test_readyz_reports_unwritable_warehouse(ws: Workspace, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the warehouse should be")
    broken = ws.settings.model_copy(update={"warehouse": blocker})
    with TestClient(create_app(broken, Workspace(broken))) as c:
        resp = c.get("/readyz")
    body = _problem(resp, 503, "not-ready")
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["warehouse"].startswith("failed")


def test_openapi_lists_the_api(client: TestClient) -> None:
    resp = client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    paths = resp.json()["paths"]
    for p in ("/api/v1/sql", "/api/v1/datasets", "/api/v1/tokens", "/api/v1/audit"):
        assert p in paths, p
    assert "/api/v1/datasets/{name}/ingest" in paths
    assert "post" in paths["/api/v1/sql"]


def test_unknown_route_is_problem_json(client: TestClient, admin_token: str) -> None:
    body = _problem(client.get("/api/v1/nope"), 404, "not-found")
    assert body["instance"] == "/api/v1/nope"
    _problem(client.get("/api/v2/datasets", headers=_auth(admin_token)), 404, "not-found")
    _problem(client.put("/api/v1/sql", headers=_auth(admin_token)), 405, "method-not-allowed")
