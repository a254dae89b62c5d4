"""POST /api/v1/sql: result formats, time travel, the read-only guard, tenant isolation, roles, limits."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
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

FIRST = (
    "id,commune,demande,montant,depose_le\n"
    "1,الدار البيضاء,شهادة السكنى,10.5,2025-01-02\n"
    "2,Mohammedia,Extrait d'acte de naissance,0,2025-01-03\n"
    "3,El Jadida,Légalisation de signature,20,2025-01-04\n"
)
SECOND = (
    "id,commune,demande,montant,depose_le\n4,Settat,رخصة,7.25,2025-02-01\n5,Berrechid,Permis,1,2025-02-02\n"
)


def _token(ws: Workspace, role: Role, tenant: str = "default") -> str:
    with session_scope(ws.engine) as s:
        t = identity.get_tenant(s, tenant)
        return identity.create_token(s, t, role=role, name=f"{role.value} test", actor="test").secret


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, "utf-8")
    return p


@pytest.fixture
def snapshots(ws: Workspace, tmp_path: Path) -> tuple[int, int]:
    """`demandes` with two snapshots (3 rows, then 5); returns their ids."""
    principal = ws.principal()
    first = ingest_file(ws, principal, _write(tmp_path, "a.csv", FIRST), "demandes")
    second = ingest_file(ws, principal, _write(tmp_path, "b.csv", SECOND), "demandes")
    return first.snapshot_id, second.snapshot_id


def _sql(client: TestClient, token: str, **body: Any) -> Any:
    return client.post("/api/v1/sql", headers=_auth(token), json=body)


def test_json_result(client: TestClient, admin_token: str, snapshots: tuple[int, int]) -> None:
    resp = _sql(
        client, admin_token, sql="SELECT id, commune, montant FROM demandes WHERE id <= 3 ORDER BY id"
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert [c["name"] for c in body["columns"]] == ["id", "commune", "montant"]
    assert body["columns"][0]["type"] == "int64"
    assert body["columns"][1]["type"] == "string"
    assert body["rows"] == [
        {"id": 1, "commune": "الدار البيضاء", "montant": 10.5},
        {"id": 2, "commune": "Mohammedia", "montant": 0.0},
        {"id": 3, "commune": "El Jadida", "montant": 20.0},
    ]
    assert body["row_count"] == 3
    assert body["truncated"] is False
    assert body["datasets"] == ["demandes"]
    assert body["snapshots"] == {"demandes": str(snapshots[1])}  # the current snapshot
    assert resp.headers["X-Manara-Rows"] == "3"
    assert resp.headers["X-Manara-Truncated"] == "false"


def test_aggregate_and_cte(client: TestClient, admin_token: str, snapshots: tuple[int, int]) -> None:
    sql = "WITH m AS (SELECT montant FROM demandes) SELECT count(*) AS n, sum(montant) AS total FROM m"
    body = _sql(client, admin_token, sql=sql).json()
    assert body["rows"] == [{"n": 5, "total": 38.75}]
    assert body["datasets"] == ["demandes"]


def test_csv_format(client: TestClient, admin_token: str, snapshots: tuple[int, int]) -> None:
    resp = _sql(
        client, admin_token, sql="SELECT id, commune, demande FROM demandes ORDER BY id", format="csv"
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.content.decode("utf-8"))))
    assert [r["id"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert rows[0]["commune"] == "الدار البيضاء"
    assert rows[0]["demande"] == "شهادة السكنى"
    assert rows[1]["demande"] == "Extrait d'acte de naissance"
    assert rows[2]["demande"] == "Légalisation de signature"
    assert resp.headers["X-Manara-Rows"] == "5"


def test_arrow_format(client: TestClient, admin_token: str, snapshots: tuple[int, int]) -> None:
    resp = _sql(
        client, admin_token, sql="SELECT id, commune, depose_le FROM demandes ORDER BY id", format="arrow"
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(io.BytesIO(resp.content)).read_all()
    assert table.column_names == ["id", "commune", "depose_le"]
    assert table.num_rows == 5
    assert table.column("id").to_pylist() == [1, 2, 3, 4, 5]
    assert table.column("commune").to_pylist()[0] == "الدار البيضاء"
    assert pa.types.is_date(table.schema.field("depose_le").type)


def test_parquet_format(client: TestClient, admin_token: str, snapshots: tuple[int, int]) -> None:
    resp = _sql(client, admin_token, sql="SELECT id, demande FROM demandes ORDER BY id", format="parquet")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/vnd.apache.parquet"
    assert "result.parquet" in resp.headers["content-disposition"]
    table = pq.read_table(io.BytesIO(resp.content))
    assert table.num_rows == 5
    assert table.column("demande").to_pylist()[3] == "رخصة"


def test_unknown_format_is_validation_error(
    client: TestClient, admin_token: str, snapshots: tuple[int, int]
) -> None:
    _problem(_sql(client, admin_token, sql="SELECT 1", format="xml"), 422, "validation-error")
    _problem(client.post("/api/v1/sql", headers=_auth(admin_token), json={}), 422, "validation-error")


def test_as_of_time_travel(client: TestClient, admin_token: str, snapshots: tuple[int, int]) -> None:
    first, second = snapshots
    count = "SELECT count(*) AS n FROM demandes"
    old = _sql(client, admin_token, sql=count, as_of=str(first)).json()
    assert old["rows"] == [{"n": 3}]
    assert old["snapshots"] == {"demandes": str(first)}
    now = _sql(client, admin_token, sql=count, as_of=str(second)).json()
    assert now["rows"] == [{"n": 5}]
    assert _sql(client, admin_token, sql=count).json()["rows"] == [{"n": 5}]

    # an ISO timestamp in the future resolves to the current snapshot
    future = _sql(client, admin_token, sql=count, as_of="2999-01-01T00:00:00Z").json()
    assert future["rows"] == [{"n": 5}]

    _problem(_sql(client, admin_token, sql=count, as_of="123456789"), 404, "not-found")
    _problem(_sql(client, admin_token, sql=count, as_of="2000-01-01T00:00:00Z"), 404, "not-found")
    _problem(_sql(client, admin_token, sql=count, as_of="last tuesday"), 400, "bad-request")


HOSTILE = [
    "DROP TABLE demandes",
    "DELETE FROM demandes",
    "INSERT INTO demandes (id) VALUES (99)",
    "UPDATE demandes SET montant = 0",
    "CREATE TABLE x AS SELECT * FROM demandes",
    "SELECT * FROM demandes; DROP TABLE demandes",
    "COPY demandes TO '/tmp/out.csv'",
    "ATTACH '/tmp/evil.db' AS evil",
    "PRAGMA database_list",
    "SET memory_limit = '100GB'",
    "INSTALL httpfs",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT getenv('HOME')",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM default.demandes",
    "SELECT read_text('/etc/hostname')",
    "SELECT * FROM glob('/*')",
    "SELECT * FROM manara_api_tokens",
    "SELECT * FROM iceberg_tables",
    "",
    "SELEC nonsense FROM",
]


@pytest.mark.parametrize("sql", HOSTILE)
def test_hostile_sql_is_rejected(
    client: TestClient, admin_token: str, ws: Workspace, snapshots: tuple[int, int], sql: str
) -> None:
    resp = _sql(client, admin_token, sql=sql)
    body = _problem(resp, 400, "sql-rejected")
    assert body["detail"]
    # the data is untouched and the attempt is audited as denied
    assert _sql(client, admin_token, sql="SELECT count(*) AS n FROM demandes").json()["rows"] == [{"n": 5}]
    denied = audit.query(ws.engine, action="sql.query", outcome="denied", limit=1)
    assert denied and denied[0]["detail"]["sql"] == sql


def test_runtime_sql_error(client: TestClient, admin_token: str, snapshots: tuple[int, int]) -> None:
    body = _problem(_sql(client, admin_token, sql="SELECT no_such_column FROM demandes"), 400, "sql-error")
    assert "no_such_column" in body["detail"]


def test_limit_truncation(client: TestClient, admin_token: str, snapshots: tuple[int, int]) -> None:
    resp = _sql(client, admin_token, sql="SELECT id FROM demandes ORDER BY id", limit=2)
    assert resp.status_code == 200
    body = resp.json()
    assert body["rows"] == [{"id": 1}, {"id": 2}]
    assert body["row_count"] == 2
    assert body["truncated"] is True
    assert body["row_limit"] == 2
    assert resp.headers["X-Manara-Truncated"] == "true"
    assert resp.headers["X-Manara-Rows"] == "2"

    # exactly at the limit is not truncated
    exact = _sql(client, admin_token, sql="SELECT id FROM demandes", limit=5)
    assert exact.json()["truncated"] is False
    assert exact.headers["X-Manara-Truncated"] == "false"

    # the header is set on the binary formats too
    arrow = _sql(client, admin_token, sql="SELECT id FROM demandes ORDER BY id", limit=3, format="arrow")
    assert arrow.headers["X-Manara-Truncated"] == "true"
    assert pa.ipc.open_stream(io.BytesIO(arrow.content)).read_all().num_rows == 3

    # generated rows obey the limit too
    gen = _sql(client, admin_token, sql="SELECT * FROM range(100000)", limit=10).json()
    assert gen["row_count"] == 10 and gen["truncated"] is True

    _problem(_sql(client, admin_token, sql="SELECT 1", limit=0), 422, "validation-error")


def test_server_row_limit_caps_client_limit(
    ws: Workspace, admin_token: str, snapshots: tuple[int, int]
) -> None:
    capped = ws.settings.model_copy(update={"sql_row_limit": 4})
    with TestClient(create_app(capped, Workspace.open(capped))) as c:
        body = _sql(c, admin_token, sql="SELECT id FROM demandes", limit=1000).json()
        assert body["row_count"] == 4
        assert body["row_limit"] == 4
        assert body["truncated"] is True


def test_viewer_cannot_run_sql(client: TestClient, ws: Workspace, snapshots: tuple[int, int]) -> None:
    viewer = _token(ws, Role.viewer)
    body = _problem(_sql(client, viewer, sql="SELECT count(*) FROM demandes"), 403, "forbidden")
    assert body["required_role"] == "analyst"
    analyst = _token(ws, Role.analyst)
    assert _sql(client, analyst, sql="SELECT count(*) AS n FROM demandes").json()["rows"] == [{"n": 5}]


def test_tenants_are_isolated(
    client: TestClient, ws: Workspace, admin_token: str, tmp_path: Path, snapshots: tuple[int, int]
) -> None:
    with session_scope(ws.engine) as s:
        identity.create_tenant(s, "rival", "Rival SARL", "test")
    ingest_file(
        ws, ws.principal("rival"), _write(tmp_path, "s.csv", "code,secret\n1,كلمة السر\n2,top\n"), "secrets"
    )
    rival = _token(ws, Role.admin, tenant="rival")

    # the default tenant cannot see or query the rival's dataset
    body = _problem(_sql(client, admin_token, sql="SELECT * FROM secrets"), 400, "sql-rejected")
    assert "secrets" in body["detail"]
    _problem(_sql(client, admin_token, sql="SELECT * FROM rival.secrets"), 400, "sql-rejected")
    _problem(client.get("/api/v1/datasets/secrets", headers=_auth(admin_token)), 404, "dataset-not-found")
    _problem(
        client.get("/api/v1/datasets/secrets/history", headers=_auth(admin_token)), 404, "dataset-not-found"
    )
    assert [d["name"] for d in client.get("/api/v1/datasets", headers=_auth(admin_token)).json()] == [
        "demandes"
    ]

    # the rival sees its own dataset and not the default tenant's
    mine = _sql(client, rival, sql="SELECT code, secret FROM secrets ORDER BY code").json()
    assert mine["rows"] == [{"code": 1, "secret": "كلمة السر"}, {"code": 2, "secret": "top"}]
    assert [d["name"] for d in client.get("/api/v1/datasets", headers=_auth(rival)).json()] == ["secrets"]
    _problem(_sql(client, rival, sql="SELECT * FROM demandes"), 400, "sql-rejected")
    _problem(_sql(client, rival, sql="SELECT * FROM default.demandes"), 400, "sql-rejected")
    _problem(client.get("/api/v1/datasets/demandes", headers=_auth(rival)), 404, "dataset-not-found")
    # the rival's ingest into a same-named dataset does not touch the default tenant's
    assert _sql(client, admin_token, sql="SELECT count(*) AS n FROM demandes").json()["rows"] == [{"n": 5}]


def test_sql_is_audited_with_snapshot(
    client: TestClient, ws: Workspace, admin_token: str, snapshots: tuple[int, int]
) -> None:
    resp = _sql(client, admin_token, sql="SELECT count(*) AS n FROM demandes", as_of=str(snapshots[0]))
    assert resp.status_code == 200
    [ev] = audit.query(ws.engine, action="sql.query", outcome="ok", limit=1)
    assert ev["tenant"] == "default"
    assert ev["actor"] == "user:admin"
    assert ev["target"] == "demandes"
    assert ev["detail"]["rows"] == 1
    assert ev["detail"]["snapshots"] == {"demandes": snapshots[0]}
    assert ev["request_id"] == resp.headers["X-Request-ID"]
