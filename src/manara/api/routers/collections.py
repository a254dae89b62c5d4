"""/api/v1/collections, /api/v1/search, /api/v1/ask: documents, hybrid search and cited answers."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from pydantic import BaseModel, Field

from manara.api.deps import get_principal, get_workspace
from manara.api.routers.datasets import _save_upload
from manara.errors import BadRequest, IncompleteUpload
from manara.govern.identity import parse_classification, parse_role
from manara.govern.principal import Principal
from manara.meta.models import Classification, Role
from manara.search import answer as answers
from manara.search import collections, documents, ingest, retrieve
from manara.workspace import Workspace

router = APIRouter(tags=["search"])
Ws = Annotated[Workspace, Depends(get_workspace)]
Caller = Annotated[Principal, Depends(get_principal)]


class CollectionRequest(BaseModel):
    name: str = Field(..., description="lower-case letters, digits and _")
    description: str = ""
    read_role: Role = Role.viewer
    default_classification: Classification = Classification.internal
    embedding_model: str | None = None


@router.post("/collections", status_code=201)
def create_collection(body: CollectionRequest, ws: Ws, principal: Caller) -> dict[str, Any]:
    """Create a document collection (steward or admin)."""
    info = collections.create_collection(
        ws, principal, body.name, description=body.description, read_role=body.read_role,
        default_classification=body.default_classification, embedding_model=body.embedding_model,
    )  # fmt: skip
    return info.as_dict()


@router.get("/collections")
def list_collections(ws: Ws, principal: Caller) -> list[dict[str, Any]]:
    """Collections the caller may search."""
    return [c.as_dict() for c in collections.list_collections(ws, principal)]


@router.get("/collections/{name}")
def show_collection(name: str, ws: Ws, principal: Caller) -> dict[str, Any]:
    """A collection and the documents the caller may read."""
    return documents.collection_summary(ws, principal, name)


@router.post("/collections/{name}/documents", status_code=201)
def upload_documents(
    name: str,
    ws: Ws,
    principal: Caller,
    files: Annotated[
        list[UploadFile] | None, File(description="PDF, DOCX, HTML, TXT, Markdown, images")
    ] = None,
    classification: Annotated[str | None, Form()] = None,
    read_role: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
    """Upload documents; each is parsed, chunked, embedded and indexed. Unreadable files are reported, not fatal."""
    if not files:
        raise IncompleteUpload(
            "the request holds no complete 'files' part: the field is missing, or the upload was cut off "
            "(nothing was ingested; send it again)"
        )
    folder = Path(tempfile.mkdtemp(dir=_tmp(ws)))
    try:
        paths = []
        for upload in files:
            if not upload.filename:
                raise BadRequest("an uploaded file has no name")
            named = folder / Path(upload.filename).name
            if named.exists():
                raise BadRequest(
                    f"two uploaded files are named '{named.name}'; send them in separate requests"
                )
            saved = _save_upload(upload, folder, ws.settings.max_upload_mb << 20)
            saved.rename(named)
            paths.append(named)
        result = ingest.ingest_paths(
            ws, principal, name, paths,
            classification=parse_classification(classification) if classification else None,
            read_role=parse_role(read_role) if read_role else None,
        )  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return result.as_dict()


def _tmp(ws: Workspace) -> Path:
    ws.settings.tmp_path.mkdir(parents=True, exist_ok=True)
    return ws.settings.tmp_path


class SearchRequest(BaseModel):
    query: str = Field(..., min_length=1, max_length=2000)
    collection: str
    k: int = Field(10, ge=1, le=200)
    mode: str = Field("hybrid", description="hybrid | lexical | dense")
    filters: dict[str, list[str]] | None = Field(
        None, description="allowed values per field: lang, doc_id, source, classification"
    )


@router.post("/search")
def search(body: SearchRequest, ws: Ws, principal: Caller) -> dict[str, Any]:
    """Hybrid multilingual search over the chunks the caller may read; snippets with highlight offsets."""
    result = retrieve.search(ws, principal, body.collection, body.query, k=body.k, mode=body.mode,
                             filters=body.filters)  # fmt: skip
    return result.as_dict()


class AskRequest(BaseModel):
    question: str = Field(..., min_length=1, max_length=2000)
    collection: str
    filters: dict[str, list[str]] | None = None
    generate: bool | None = Field(
        None, description="use the configured chat server (default: if one is configured)"
    )


@router.post("/ask")
def ask(body: AskRequest, ws: Ws, principal: Caller) -> dict[str, Any]:
    """An extractive answer with citations (document, page, offsets), or found=false below the threshold."""
    return answers.answer_question(ws, principal, body.collection, body.question, filters=body.filters,
                                   generate=body.generate).as_dict()  # fmt: skip
