"""/api/v1/datasets over HTTP: upload-and-ingest, catalog views, and problem+json failures that
leave the dataset exactly as it was."""

from __future__ import annotations

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
from manara.config import Settings
from manara.govern import audit, identity
from manara.meta.db import session_scope
from manara.meta.models import Role
from manara.workspace import Workspace

ARABIC_FRENCH_CSV = (
    "id,ville,objet,montant\n"
    "1,الدار البيضاء,Demande d'extrait d'acte de naissance — état civil,120\n"
    '2,Fès,"طلب رخصة البناء, حي النهضة",75\n'
    "3,Marrakech,Réclamation: éclairage public défaillant à Guéliz,0\n"
).encode()


# --- helpers ---------------------------------------------------------------------------------------


def _token(ws: Workspace, role: Role, name: str = "test token") -> str:
    with session_scope(ws.engine) as s:
        tenant = identity.get_tenant(s, "default")
        return identity.create_token(s, tenant, role=role, name=name, actor="test").secret


def _upload(
    client: TestClient,
    token: str,
    name: str,
    content: bytes,
    filename: str = "upload.csv",
    **form: str,
) -> Any:
    return client.post(
        f"/api/v1/datasets/{name}/ingest",
        headers=_auth(token),
        files={"file": (filename, content, "application/octet-stream")},
        data=form,
    )


def _state(client: TestClient, token: str, name: str) -> dict[str, Any]:
    resp = client.get(f"/api/v1/datasets/{name}", headers=_auth(token))
    assert resp.status_code == 200, resp.text
    info: dict[str, Any] = resp.json()
    return info


def _rows(client: TestClient, token: str, sql: str) -> list[dict[str, Any]]:
    resp = client.post("/api/v1/sql", headers=_auth(token), json={"sql": sql})
    assert resp.status_code == 200, resp.text
    rows: list[dict[str, Any]] = resp.json()["rows"]
    return rows


def _tmp_files(ws: Workspace) -> list[Path]:
    tmp = ws.settings.tmp_path
    return sorted(tmp.rglob("*")) if tmp.exists() else []


@pytest.fixture
def loaded(client: TestClient, admin_token: str) -> dict[str, Any]:
    """A dataset `requests_ar` made from the Arabic/French CSV; returns its state."""
    resp = _upload(client, admin_token, "requests_ar", ARABIC_FRENCH_CSV, "demandes.csv")
    assert resp.status_code == 201, resp.text
    return _state(client, admin_token, "requests_ar")


# --- the happy paths -------------------------------------------------------------------------------


def test_upload_and_ingest_arabic_french_csv(client: TestClient, admin_token: str, ws: Workspace) -> None:
    resp = _upload(
        client, admin_token, "requests_ar", ARABIC_FRENCH_CSV, "demandes.csv", description="Demandes — طلبات"
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["dataset"] == "requests_ar"
    assert body["rows"] == 3
    assert body["created"] is True
    assert body["mode"] == "append"
    assert body["format"] == "csv"
    assert body["delimiter"] == ","
    assert isinstance(body["snapshot_id"], int) and body["snapshot_id"] != 0

    rows = _rows(client, admin_token, "SELECT id, ville, objet, montant FROM requests_ar ORDER BY id")
    assert rows == [
        {
            "id": 1,
            "ville": "الدار البيضاء",
            "objet": "Demande d'extrait d'acte de naissance — état civil",
            "montant": 120,
        },
        {"id": 2, "ville": "Fès", "objet": "طلب رخصة البناء, حي النهضة", "montant": 75},
        {
            "id": 3,
            "ville": "Marrakech",
            "objet": "Réclamation: éclairage public défaillant à Guéliz",
            "montant": 0,
        },
    ]
    info = _state(client, admin_token, "requests_ar")
    assert info["snapshot_id"] == body["snapshot_id"]
    assert info["rows"] == 3
    assert info["description"] == "Demandes — طلبات"
    assert info["source"] == "demandes.csv"  # the uploaded file's name, not the server's temp file
    assert [c["name"] for c in info["columns"]] == ["id", "ville", "objet", "montant"]
    # the ingest is audited with the upload's name
    events = audit.query(ws.engine, action="dataset.ingest", tenant="default")
    assert events[0]["outcome"] == "ok"
    assert events[0]["target"] == "requests_ar"
    assert events[0]["detail"]["source"] == "demandes.csv"
    assert events[0]["detail"]["rows"] == 3
    assert _tmp_files(ws) == []


def test_list_show_history_and_describe(client: TestClient, admin_token: str, loaded: dict[str, Any]) -> None:
    second = _upload(
        client, admin_token, "requests_ar", b"id,ville,objet,montant\n4,Rabat,x,10\n", "more.csv"
    )
    assert second.status_code == 201, second.text
    assert second.json()["created"] is False

    listed = client.get("/api/v1/datasets", headers=_auth(admin_token))
    assert listed.status_code == 200
    [entry] = listed.json()
    assert entry["name"] == "requests_ar"
    assert entry["rows"] == 4
    assert entry["snapshot_id"] == second.json()["snapshot_id"]
    assert entry["size_bytes"] > 0

    info = _state(client, admin_token, "requests_ar")
    assert info["snapshots"] == 2
    assert info["rows"] == 4
    assert info["source"] == "more.csv"
    assert {c["name"]: c["type"] for c in info["columns"]} == {
        "id": "long",
        "ville": "string",
        "objet": "string",
        "montant": "long",
    }

    hist = client.get("/api/v1/datasets/requests_ar/history", headers=_auth(admin_token))
    assert hist.status_code == 200
    history = hist.json()
    assert [h["snapshot_id"] for h in history] == [second.json()["snapshot_id"], loaded["snapshot_id"]]
    assert [h["current"] for h in history] == [True, False]
    assert [h["total_rows"] for h in history] == [4, 3]
    assert [h["added_rows"] for h in history] == [1, 3]
    assert [h["source"] for h in history] == ["more.csv", "demandes.csv"]
    assert history[0]["parent_id"] == loaded["snapshot_id"]
    assert all(h["actor"] == "user:admin" for h in history)

    patched = client.patch(
        "/api/v1/datasets/requests_ar",
        headers=_auth(admin_token),
        json={"description": "Demandes des citoyens — طلبات المواطنين", "owner": "data-team@region.ma"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["description"] == "Demandes des citoyens — طلبات المواطنين"
    after = _state(client, admin_token, "requests_ar")
    assert after["description"] == "Demandes des citoyens — طلبات المواطنين"
    assert after["owner"] == "data-team@region.ma"
    # describing changes properties, not data: same snapshot, same rows
    assert after["snapshot_id"] == info["snapshot_id"]
    assert after["rows"] == 4

    empty = client.patch("/api/v1/datasets/requests_ar", headers=_auth(admin_token), json={})
    _problem(empty, 400, "bad-request")
    assert _state(client, admin_token, "requests_ar")["description"] == after["description"]


def test_upsert_via_api(client: TestClient, admin_token: str, loaded: dict[str, Any]) -> None:
    update = "id,ville,objet,montant\n2,Fès,طلب رخصة البناء — تم التحديث,80\n4,Tanger,Nouvelle demande,15\n"
    resp = _upload(client, admin_token, "requests_ar", update.encode(), "maj.csv", mode="upsert", key="id")
    assert resp.status_code == 201, resp.text
    assert resp.json()["mode"] == "upsert"
    assert resp.json()["rows"] == 2
    rows = _rows(client, admin_token, "SELECT id, ville, objet, montant FROM requests_ar ORDER BY id")
    assert [r["id"] for r in rows] == [1, 2, 3, 4]  # 2 replaced, not duplicated; 4 inserted
    assert rows[1] == {"id": 2, "ville": "Fès", "objet": "طلب رخصة البناء — تم التحديث", "montant": 80}
    assert rows[3]["ville"] == "Tanger"
    assert rows[0]["objet"] == "Demande d'extrait d'acte de naissance — état civil"  # untouched
    assert _state(client, admin_token, "requests_ar")["rows"] == 4

    # upsert without a key is refused before anything is written
    before = _state(client, admin_token, "requests_ar")
    _problem(_upload(client, admin_token, "requests_ar", update.encode(), mode="upsert"), 400, "bad-request")
    _problem(
        _upload(client, admin_token, "requests_ar", update.encode(), mode="upsert", key="nope"),
        400,
        "bad-request",
    )
    _problem(_upload(client, admin_token, "requests_ar", update.encode(), mode="merge"), 400, "bad-request")
    assert _state(client, admin_token, "requests_ar") == before


def test_overwrite_replaces_rows(client: TestClient, admin_token: str, loaded: dict[str, Any]) -> None:
    resp = _upload(
        client, admin_token, "requests_ar", b"id,ville,objet,montant\n9,Agadir,x,1\n", mode="overwrite"
    )
    assert resp.status_code == 201, resp.text
    assert _rows(client, admin_token, "SELECT id FROM requests_ar") == [{"id": 9}]


def test_new_column_evolves_schema(client: TestClient, admin_token: str, loaded: dict[str, Any]) -> None:
    later = "id,ville,objet,montant,canal\n5,Oujda,Demande,30,guichet\n6,Kénitra,طلب,40,بوابة إلكترونية\n"
    resp = _upload(client, admin_token, "requests_ar", later.encode(), "avec_canal.csv")
    assert resp.status_code == 201, resp.text
    assert resp.json()["columns_added"] == ["canal"]
    info = _state(client, admin_token, "requests_ar")
    assert [c["name"] for c in info["columns"]] == ["id", "ville", "objet", "montant", "canal"]
    assert info["rows"] == 5
    rows = _rows(client, admin_token, "SELECT id, canal FROM requests_ar ORDER BY id")
    assert rows == [
        {"id": 1, "canal": None},
        {"id": 2, "canal": None},
        {"id": 3, "canal": None},
        {"id": 5, "canal": "guichet"},
        {"id": 6, "canal": "بوابة إلكترونية"},
    ]
    # a file lacking the new column still appends (nulls for it)
    resp = _upload(client, admin_token, "requests_ar", b"id,ville,objet,montant\n7,Safi,x,1\n")
    assert resp.status_code == 201, resp.text
    assert _rows(client, admin_token, "SELECT canal FROM requests_ar WHERE id = 7") == [{"canal": None}]


def test_parquet_upload(client: TestClient, admin_token: str) -> None:
    buf = io.BytesIO()
    pq.write_table(pa.table({"code": ["01", "002"], "nom": ["سطات", "Settat"], "n": [1, 2]}), buf)
    resp = _upload(client, admin_token, "communes_pq", buf.getvalue(), "communes.parquet")
    assert resp.status_code == 201, resp.text
    assert resp.json()["format"] == "parquet"
    assert _rows(client, admin_token, "SELECT code, nom, n FROM communes_pq ORDER BY n") == [
        {"code": "01", "nom": "سطات", "n": 1},
        {"code": "002", "nom": "Settat", "n": 2},
    ]


# --- failures: problem+json, and the dataset is left as it was --------------------------------------


def _truncated_parquet() -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(1000)), "ville": ["Fès"] * 1000}), buf)
    data = buf.getvalue()
    return data[: len(data) // 2]


FAILURES = [
    pytest.param(
        b"id,ville,objet,montant\n10,Rabat,x,cent vingt\n", "bad_type.csv", {}, 409, "schema-mismatch",
        id="schema-mismatch",
    ),
    pytest.param(
        b"id,ville,objet,montant\n10,Rabat,x,1\n11,Rabat,x,2,EXTRA,MORE\n12,Rabat,x,3\n",
        "ragged.csv", {}, 422, "malformed-file", id="malformed-csv",
    ),
    pytest.param(_truncated_parquet(), "cut.parquet", {}, 422, "malformed-file", id="truncated-parquet"),
    pytest.param(b"PAR1 this is not parquet", "fake.parquet", {}, 422, "malformed-file", id="fake-parquet"),
    pytest.param(b"", "empty.csv", {}, 422, "empty-file", id="zero-bytes"),
    pytest.param(b"id,ville,objet,montant\n", "header_only.csv", {}, 422, "empty-file", id="header-only"),
    pytest.param(
        "id,ville,objet,montant\n10,Fès,é,1\n".encode("latin-1"), "latin1.csv", {"encoding": "utf-8"},
        422, "bad-encoding", id="declared-utf8-but-latin1",
    ),
    pytest.param(
        b"id,ville,objet,montant\n10,a,b,1\n", "x.csv", {"encoding": "klingon"}, 422, "bad-encoding",
        id="unknown-encoding",
    ),
    pytest.param(b"id\n1\n", "x.exe", {}, 422, "unsupported-format", id="unknown-extension"),
]  # fmt: skip


@pytest.mark.parametrize(("content", "filename", "form", "status", "slug"), FAILURES)
def test_failed_upload_is_a_problem_and_changes_nothing(
    client: TestClient,
    admin_token: str,
    ws: Workspace,
    loaded: dict[str, Any],
    content: bytes,
    filename: str,
    form: dict[str, str],
    status: int,
    slug: str,
) -> None:
    rows_before = _rows(client, admin_token, "SELECT * FROM requests_ar ORDER BY id")
    resp = _upload(client, admin_token, "requests_ar", content, filename, **form)
    body = _problem(resp, status, slug)
    assert body["instance"] == "/api/v1/datasets/requests_ar/ingest"
    assert body["request_id"] == resp.headers["X-Request-ID"]
    after = _state(client, admin_token, "requests_ar")
    assert after == loaded  # same snapshot, schema, rows, properties
    assert _rows(client, admin_token, "SELECT * FROM requests_ar ORDER BY id") == rows_before
    failed = audit.query(ws.engine, action="dataset.ingest", outcome="error")
    assert failed and failed[0]["target"] == "requests_ar"
    assert _tmp_files(ws) == []


def test_schema_mismatch_names_column_and_row(
    client: TestClient, admin_token: str, loaded: dict[str, Any]
) -> None:
    content = b"id,ville,objet,montant\n10,Rabat,x,5\n11,Rabat,y,beaucoup\n"
    body = _problem(_upload(client, admin_token, "requests_ar", content, "bad.csv"), 409, "schema-mismatch")
    assert body["column"] == "montant"
    assert body["expected_type"] == "long"
    assert "montant" in body["detail"]
    assert _state(client, admin_token, "requests_ar") == loaded


def test_failed_first_ingest_creates_no_dataset(client: TestClient, admin_token: str) -> None:
    _problem(_upload(client, admin_token, "never_made", b"", "empty.csv"), 422, "empty-file")
    _problem(client.get("/api/v1/datasets/never_made", headers=_auth(admin_token)), 404, "dataset-not-found")
    assert client.get("/api/v1/datasets", headers=_auth(admin_token)).json() == []


def test_unknown_dataset_is_404(client: TestClient, admin_token: str) -> None:
    h = _auth(admin_token)
    for resp in (
        client.get("/api/v1/datasets/ghost", headers=h),
        client.get("/api/v1/datasets/ghost/history", headers=h),
        client.patch("/api/v1/datasets/ghost", headers=h, json={"description": "x"}),
    ):
        body = _problem(resp, 404, "dataset-not-found")
        assert "ghost" in body["detail"]


@pytest.mark.parametrize("name", ["Bad-Name", "1abc", "x", "drop;table", "UPPER"])
def test_invalid_dataset_name(client: TestClient, admin_token: str, ws: Workspace, name: str) -> None:
    _problem(_upload(client, admin_token, name, ARABIC_FRENCH_CSV), 422, "invalid-name")
    _problem(client.get(f"/api/v1/datasets/{name}", headers=_auth(admin_token)), 422, "invalid-name")
    assert client.get("/api/v1/datasets", headers=_auth(admin_token)).json() == []
    assert _tmp_files(ws) == []


def test_missing_file_field_is_an_incomplete_upload(
    client: TestClient, admin_token: str, loaded: dict[str, Any]
) -> None:
    resp = client.post(
        "/api/v1/datasets/requests_ar/ingest", headers=_auth(admin_token), data={"mode": "append"}
    )
    body = _problem(resp, 400, "incomplete-upload")
    assert "'file' part" in body["detail"]
    assert _state(client, admin_token, "requests_ar") == loaded


def test_truncated_multipart_upload_ingests_nothing(
    client: TestClient, ws: Workspace, admin_token: str, loaded: dict[str, Any]
) -> None:
    """A body cut off mid-file (client crash, dropped connection behind a proxy) must not load a partial file."""
    csv = "id,commune,demande,montant,depose_le\n" + "".join(
        f"{i},Settat,طلب,{i}.5,2025-03-01\n" for i in range(10, 2000)
    )
    boundary = "manaraBoundary42"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{csv}\r\n--{boundary}--\r\n"
    ).encode()
    resp = client.post(
        "/api/v1/datasets/requests_ar/ingest",
        content=body[: len(body) // 2],
        headers={**_auth(admin_token), "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert "cut off" in _problem(resp, 400, "incomplete-upload")["detail"]
    assert _state(client, admin_token, "requests_ar") == loaded
    assert _tmp_files(ws) == []


def test_upload_over_size_limit(
    settings: Settings, ws: Workspace, admin_token: str, loaded: dict[str, Any]
) -> None:
    small = settings.model_copy(update={"max_upload_mb": 1})
    small_ws = Workspace.open(small)
    with TestClient(create_app(small, small_ws)) as c:
        row = "99,Rabat,Demande de certificat de résidence — طلب شهادة السكنى,1\n".encode()
        big = b"id,ville,objet,montant\n" + row * ((1 << 20) // len(row) + 200)
        assert len(big) > 1 << 20
        resp = _upload(c, admin_token, "requests_ar", big, "big.csv")
        body = _problem(resp, 413, "upload-too-large")
        assert "1 MiB" in body["detail"]
        assert _state(c, admin_token, "requests_ar") == loaded
        # a file under the limit still goes through this app
        ok = _upload(c, admin_token, "requests_ar", b"id,ville,objet,montant\n4,Rabat,x,1\n")
        assert ok.status_code == 201, ok.text
    assert _tmp_files(ws) == []


def test_viewer_and_analyst_cannot_ingest(
    client: TestClient, ws: Workspace, admin_token: str, loaded: dict[str, Any]
) -> None:
    for role in (Role.viewer, Role.analyst):
        token = _token(ws, role, f"{role.value} token")
        body = _problem(_upload(client, token, "requests_ar", ARABIC_FRENCH_CSV), 403, "forbidden")
        assert body["required_role"] == "steward"
        _problem(
            client.patch("/api/v1/datasets/requests_ar", headers=_auth(token), json={"description": "x"}),
            403,
            "forbidden",
        )
        # but they may read the catalog
        assert client.get("/api/v1/datasets", headers=_auth(token)).status_code == 200
    steward = _token(ws, Role.steward)
    ok = _upload(client, steward, "requests_ar", b"id,ville,objet,montant\n4,Rabat,x,1\n")
    assert ok.status_code == 201, ok.text
    after = _state(client, admin_token, "requests_ar")
    assert after["snapshots"] == 2 and after["rows"] == 4  # only the steward's ingest landed
    assert _tmp_files(ws) == []


def test_ingest_without_token_is_401(client: TestClient, loaded: dict[str, Any], admin_token: str) -> None:
    resp = client.post(
        "/api/v1/datasets/requests_ar/ingest", files={"file": ("a.csv", ARABIC_FRENCH_CSV, "text/csv")}
    )
    _problem(resp, 401, "unauthenticated")
    assert _state(client, admin_token, "requests_ar") == loaded


# --- bugs found while writing these tests ------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "form", "slug"),
    [
        (b"", {}, "empty-file"),
        ("id,ville,objet,montant\n10,Fès,é,1\n".encode("latin-1"), {"encoding": "utf-8"}, "bad-encoding"),
        (b"id,ville,objet,montant\n10,a,b,1\n11,a,b,1,2,3\n12,a,b,1\n", {}, "malformed-file"),
    ],
    ids=["empty-file", "bad-encoding", "malformed-file"],
)
def test_error_detail_names_the_uploaded_file(
    client: TestClient,
    admin_token: str,
    loaded: dict[str, Any],
    content: bytes,
    form: dict[str, str],
    slug: str,
) -> None:
    body = _problem(
        _upload(client, admin_token, "requests_ar", content, "mon_fichier.csv", **form), 422, slug
    )
    assert "mon_fichier.csv" in body["detail"], body["detail"]
    assert "tmp" not in body["detail"], body["detail"]


def test_ragged_csv_detail_is_not_about_line_size(
    client: TestClient, admin_token: str, loaded: dict[str, Any]
) -> None:
    content = b"id,ville,objet,montant\n10,Rabat,x,1\n11,Rabat,x,2,EXTRA,MORE\n12,Rabat,x,3\n"
    body = _problem(_upload(client, admin_token, "requests_ar", content, "ragged.csv"), 422, "malformed-file")
    assert "line limit" not in body["detail"], body["detail"]


def test_short_ragged_csv_is_malformed_not_empty(client: TestClient, admin_token: str) -> None:
    body = _problem(
        _upload(client, admin_token, "ragged_small", b"a,b\n1,2\n3,4,5\n", "r.csv"), 422, "malformed-file"
    )
    assert body["detail"]


def test_upload_with_fixed_column_types(client: TestClient, admin_token: str) -> None:
    body = b"code,montant\n120,1.50\n007,2\n"
    resp = _upload(client, admin_token, "codes", body, "codes.csv", types="code=string, montant=double")
    assert resp.status_code == 201, resp.text
    sql = client.post(
        "/api/v1/sql", headers=_auth(admin_token), json={"sql": "SELECT code FROM codes ORDER BY code"}
    )
    assert [r["code"] for r in sql.json()["rows"]] == ["007", "120"]
    bad = _upload(client, admin_token, "codes", body, "codes.csv", types="code=varchar2")
    assert "unknown type 'varchar2'" in _problem(bad, 400, "bad-request")["detail"]
