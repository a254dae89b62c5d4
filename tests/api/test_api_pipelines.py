"""/api/v1/pipelines and /api/v1/connectors over HTTP: declare a files pipeline as YAML or JSON, run it,
read its status and runs, and the problem+json answers for bad declarations, roles and pauses."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Any

import pytest
from api_checks import assert_problem, auth
from fastapi.testclient import TestClient

from manara.govern import audit, identity
from manara.lake.catalog import identifier
from manara.meta.db import session_scope
from manara.meta.models import Role
from manara.workspace import Workspace

YAML = {"Content-Type": "application/yaml"}


def token(ws: Workspace, role: Role) -> str:
    with session_scope(ws.engine) as s:
        tenant = identity.get_tenant(s, "default")
        return identity.create_token(s, tenant, role=role, name=role.value, actor="test").secret


def spec_yaml(folder: Path, name: str = "visits", transforms: str = "") -> str:
    return f"""
name: {name}
source:
  type: files
  options: {{path: "{folder}", pattern: "*.csv"}}
{transforms}
destination:
  dataset: visits
"""


def write_csv(path: Path, start: int, n: int) -> None:
    lines = [f"{i},{i * 1.5}" for i in range(start, start + n)]
    path.write_text("id,amount\n" + "\n".join(lines) + "\n", encoding="utf-8")


def put(client: TestClient, tok: str, name: str, body: str, content_type: str = "application/yaml") -> Any:
    return client.put(
        f"/api/v1/pipelines/{name}",
        headers={**auth(tok), "Content-Type": content_type},
        content=body.encode(),
    )


def run(client: TestClient, tok: str, name: str = "visits") -> Any:
    return client.post(f"/api/v1/pipelines/{name}/runs", headers=auth(tok))


def dataset_ids(ws: Workspace) -> list[int]:
    table = ws.catalog.load_table(identifier("default", "visits"))
    return sorted(table.scan().to_arrow().column("id").to_pylist())


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    write_csv(folder / "a.csv", 1, 6)
    write_csv(folder / "b.csv", 7, 3)
    return folder


def test_declare_run_and_inspect_a_files_pipeline(
    client: TestClient, ws: Workspace, admin_token: str, landing: Path
) -> None:
    created = put(client, admin_token, "visits", spec_yaml(landing))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["created"] is True and body["name"] == "visits" and body["paused"] is None
    assert body["spec"]["source"]["options"]["path"] == str(landing)
    assert body["spec"]["destination"]["dataset"] == "visits"

    ran = run(client, admin_token)
    assert ran.status_code == 200, ran.text
    result = ran.json()
    assert ran.headers["X-Manara-Run-Status"] == "succeeded"
    assert (result["status"], result["rows_in"], result["rows_loaded"], result["rows_quarantined"]) == (
        "succeeded",
        9,
        9,
        0,
    )
    assert result["commits"] >= 1
    assert dataset_ids(ws) == list(range(1, 10))

    status = client.get("/api/v1/pipelines/visits", headers=auth(admin_token))
    assert status.status_code == 200, status.text
    st = status.json()
    assert st["dataset"] == "visits" and st["source"] == "files" and st["paused"] is None
    assert st["last_run"]["id"] == result["run_id"] and st["last_run"]["trigger"] == "api"
    assert st["committed"]["run"] == result["run_id"]
    assert st["committed"]["seq"] >= result["commits"]
    assert set(st["committed"]["cursor"]["done"]) == {"a.csv", "b.csv"}

    # a rerun loads nothing twice; a new file is picked up from the committed cursor
    again = run(client, admin_token).json()
    assert (again["status"], again["rows_loaded"], again["commits"]) == ("succeeded", 0, 0)
    write_csv(landing / "c.csv", 100, 2)
    third = run(client, admin_token).json()
    assert third["rows_loaded"] == 2
    assert dataset_ids(ws) == [*range(1, 10), 100, 101]

    runs = client.get("/api/v1/pipelines/visits/runs", headers=auth(admin_token))
    assert runs.status_code == 200, runs.text
    assert [r["rows_loaded"] for r in runs.json()] == [2, 0, 9]
    assert all(r["status"] == "succeeded" and r["trigger"] == "api" for r in runs.json())
    limited = client.get("/api/v1/pipelines/visits/runs?limit=1", headers=auth(admin_token)).json()
    assert [r["id"] for r in limited] == [third["run_id"]]

    listed = client.get("/api/v1/pipelines", headers=auth(admin_token))
    assert listed.status_code == 200
    [row] = listed.json()
    assert (row["name"], row["source"], row["dataset"]) == ("visits", "files", "visits")
    assert row["last_run"]["id"] == third["run_id"]


def test_put_again_replaces_the_declaration(client: TestClient, admin_token: str, landing: Path) -> None:
    assert put(client, admin_token, "visits", spec_yaml(landing)).status_code == 201
    replaced = put(
        client, admin_token, "visits", spec_yaml(landing, transforms='transforms:\n  - filter: "id > 5"')
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["created"] is False
    assert replaced.json()["spec"]["transforms"] == [{"filter": "id > 5"}]
    # the replacement is what runs
    assert run(client, admin_token).json()["rows_loaded"] == 4
    assert len(client.get("/api/v1/pipelines", headers=auth(admin_token)).json()) == 1


def test_a_json_declaration_is_accepted_too(
    client: TestClient, ws: Workspace, admin_token: str, landing: Path
) -> None:
    spec = {
        "name": "visits",
        "source": {"type": "files", "options": {"path": str(landing)}},
        "destination": {"dataset": "visits"},
    }
    resp = put(client, admin_token, "visits", json.dumps(spec, indent="\t"), "application/json")
    assert resp.status_code == 201, resp.text
    assert run(client, admin_token).json()["rows_loaded"] == 9
    assert dataset_ids(ws) == list(range(1, 10))


def test_bad_declarations_are_refused_with_a_readable_problem(
    client: TestClient, admin_token: str, landing: Path
) -> None:
    bad_yaml = assert_problem(put(client, admin_token, "visits", "name: [unclosed\n"), 400, "bad-request")
    assert "not valid YAML" in bad_yaml["detail"]
    bad_json = assert_problem(
        put(client, admin_token, "visits", "{name:", "application/json"), 400, "bad-request"
    )
    assert "not valid JSON" in bad_json["detail"]
    incomplete = assert_problem(
        put(client, admin_token, "visits", "name: visits\nsource: {type: files}\n"), 400, "bad-request"
    )
    assert "destination" in incomplete["detail"]
    mismatch = assert_problem(put(client, admin_token, "other", spec_yaml(landing)), 400, "bad-request")
    assert "'other'" in mismatch["detail"] and "'visits'" in mismatch["detail"]
    no_source = assert_problem(
        put(client, admin_token, "visits", spec_yaml(landing).replace("type: files", "type: ftp")),
        400,
        "bad-request",
    )
    assert "no source connector named 'ftp'" in no_source["detail"]
    form = client.put(
        "/api/v1/pipelines/visits",
        headers={**auth(admin_token), "Content-Type": "application/x-www-form-urlencoded"},
        content=spec_yaml(landing).encode(),
    )
    assert "application/yaml" in assert_problem(form, 415, "unsupported-media-type")["detail"]
    # nothing of it was declared
    assert client.get("/api/v1/pipelines", headers=auth(admin_token)).json() == []


def test_unknown_pipeline_is_404(client: TestClient, admin_token: str) -> None:
    for resp in (
        client.get("/api/v1/pipelines/nope", headers=auth(admin_token)),
        client.get("/api/v1/pipelines/nope/runs", headers=auth(admin_token)),
        run(client, admin_token, "nope"),
    ):
        body = assert_problem(resp, 404, "pipeline-not-found")
        assert "'nope'" in body["detail"]


def test_roles_viewer_cannot_apply_run_or_read_analyst_reads_only(
    client: TestClient, ws: Workspace, admin_token: str, landing: Path
) -> None:
    viewer, analyst, steward = (token(ws, r) for r in (Role.viewer, Role.analyst, Role.steward))
    assert_problem(put(client, viewer, "visits", spec_yaml(landing)), 403, "forbidden")
    assert_problem(put(client, analyst, "visits", spec_yaml(landing)), 403, "forbidden")
    assert put(client, steward, "visits", spec_yaml(landing)).status_code == 201
    for tok in (viewer, analyst):
        body = assert_problem(run(client, tok), 403, "forbidden")
        assert body["required_role"] == "steward"
    assert client.get("/api/v1/pipelines", headers=auth(admin_token)).json()[0]["last_run"] is None
    assert run(client, steward).json()["rows_loaded"] == 9
    for path in ("/api/v1/pipelines", "/api/v1/pipelines/visits", "/api/v1/pipelines/visits/runs"):
        assert_problem(client.get(path, headers=auth(viewer)), 403, "forbidden")
        assert client.get(path, headers=auth(analyst)).status_code == 200
    assert_problem(client.get("/api/v1/pipelines"), 401, "unauthenticated")
    assert_problem(client.post("/api/v1/pipelines/visits/runs"), 401, "unauthenticated")


def test_incompatible_schema_pauses_and_a_paused_pipeline_is_409(
    client: TestClient, ws: Workspace, admin_token: str, landing: Path
) -> None:
    assert put(client, admin_token, "visits", spec_yaml(landing)).status_code == 201
    assert run(client, admin_token).json()["rows_loaded"] == 9
    (landing / "c.csv").write_text("id,amount\nX-9,1\n", encoding="utf-8")  # id turns into text
    paused = run(client, admin_token)
    assert paused.status_code == 200, paused.text
    assert paused.headers["X-Manara-Run-Status"] == "paused"
    result = paused.json()
    assert result["status"] == "paused" and "column 'id'" in result["error"]
    assert result["rows_loaded"] == 0
    assert dataset_ids(ws) == list(range(1, 10))  # nothing of the batch was written

    again = assert_problem(run(client, admin_token), 409, "pipeline-paused")
    assert "paused" in again["detail"] and "column 'id'" in again["detail"]
    st = client.get("/api/v1/pipelines/visits", headers=auth(admin_token)).json()
    assert "column 'id'" in st["paused"] and st["last_run"]["status"] == "paused"

    # a new mapping (PUT) resumes it
    fixed = spec_yaml(landing, transforms="transforms:\n  - rename: {id: id_text}")
    assert put(client, admin_token, "visits", fixed).status_code == 200
    resumed = run(client, admin_token).json()
    assert (resumed["status"], resumed["rows_loaded"]) == ("succeeded", 1)


def test_approve_widens_the_column_and_resumes(
    client: TestClient, ws: Workspace, admin_token: str, landing: Path
) -> None:
    assert put(client, admin_token, "visits", spec_yaml(landing)).status_code == 201
    assert run(client, admin_token).json()["rows_loaded"] == 9
    not_paused = client.post("/api/v1/pipelines/visits/approve", headers=auth(admin_token))
    assert "not paused" in assert_problem(not_paused, 409, "conflict")["detail"]
    (landing / "c.csv").write_text("id,amount\nX-9,1\n", encoding="utf-8")  # id turns into text
    assert run(client, admin_token).json()["status"] == "paused"
    viewer = client.post("/api/v1/pipelines/visits/approve", headers=auth(token(ws, Role.analyst)))
    assert viewer.status_code == 403
    wrong = client.post("/api/v1/pipelines/visits/approve", params={"to": "date"}, headers=auth(admin_token))
    assert_problem(wrong, 400, "bad-request")
    ok = client.post("/api/v1/pipelines/visits/approve", headers=auth(admin_token))
    assert ok.status_code == 200, ok.text
    assert (ok.json()["column"], ok.json()["to_type"], ok.json()["rows"]) == ("id", "string", 9)
    resumed = run(client, admin_token).json()
    assert (resumed["status"], resumed["rows_loaded"]) == ("succeeded", 1)
    table = ws.catalog.load_table(identifier("default", "visits")).scan().to_arrow()
    assert sorted(table.column("id").to_pylist()) == sorted([str(i) for i in range(1, 10)] + ["X-9"])


def test_a_failed_run_answers_200_with_its_error(
    client: TestClient, admin_token: str, tmp_path: Path
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    assert put(client, admin_token, "visits", spec_yaml(gone)).status_code == 201
    gone.rmdir()  # the folder disappears after the declaration
    resp = run(client, admin_token)
    assert resp.status_code == 200, resp.text
    assert resp.headers["X-Manara-Run-Status"] == "failed"
    assert resp.json()["status"] == "failed" and "is not a folder" in resp.json()["error"]
    [last] = client.get("/api/v1/pipelines/visits/runs", headers=auth(admin_token)).json()
    assert last["status"] == "failed" and "is not a folder" in last["error"]


def test_apply_and_run_are_audited_with_the_request_id(
    client: TestClient, ws: Workspace, admin_token: str, landing: Path
) -> None:
    applied = client.put(
        "/api/v1/pipelines/visits",
        headers={**auth(admin_token), **YAML, "X-Request-ID": "req-apply"},
        content=spec_yaml(landing).encode(),
    )
    assert applied.status_code == 201
    ran = client.post(
        "/api/v1/pipelines/visits/runs", headers={**auth(admin_token), "X-Request-ID": "req-run"}
    )
    assert ran.status_code == 200
    [apply_ev] = audit.query(ws.engine, action="pipeline.apply")
    assert (apply_ev["request_id"], apply_ev["actor"], apply_ev["target"]) == (
        "req-apply",
        "user:admin",
        "visits",
    )
    [run_ev] = audit.query(ws.engine, action="pipeline.run")
    assert run_ev["request_id"] == "req-run" and run_ev["detail"]["rows_loaded"] == 9


def test_connectors_lists_files_with_its_options(client: TestClient, ws: Workspace) -> None:
    resp = client.get("/api/v1/connectors", headers=auth(token(ws, Role.viewer)))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["broken"] == []
    files = next(c for c in body["connectors"] if c["name"] == "files")
    assert files["kind"] == "source" and files["summary"]
    options = {o["name"]: o for o in files["options"]}
    assert options["path"]["required"] is True and options["path"]["type"] == "string"
    assert options["pattern"]["required"] is False and options["pattern"]["default"] == "*"
    assert_problem(client.get("/api/v1/connectors"), 401, "unauthenticated")


def test_a_pipeline_already_running_is_409(
    client: TestClient, ws: Workspace, admin_token: str, landing: Path
) -> None:
    assert put(client, admin_token, "visits", spec_yaml(landing)).status_code == 201
    lock = ws.settings.home / "locks" / "pipelines" / "default.visits.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as held:  # another process (the scheduler, the CLI) holds the run lock
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        body = assert_problem(run(client, admin_token), 409, "conflict")
        assert "already running" in body["detail"]
        fcntl.flock(held, fcntl.LOCK_UN)
    assert run(client, admin_token).json()["rows_loaded"] == 9
