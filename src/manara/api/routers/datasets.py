"""/api/v1/datasets: list, show, history, describe, and upload-and-ingest."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from pydantic import BaseModel

from manara.api.deps import get_principal, get_workspace
from manara.errors import BadRequest, IncompleteUpload, UploadTooLarge
from manara.govern.principal import Principal
from manara.lake import datasets as views
from manara.lake.ingest import ingest_file, parse_type_specs
from manara.workspace import Workspace

router = APIRouter(prefix="/datasets", tags=["datasets"])
Ws = Annotated[Workspace, Depends(get_workspace)]
Caller = Annotated[Principal, Depends(get_principal)]
CHUNK = 1 << 20


@router.get("")
def list_datasets(ws: Ws, principal: Caller) -> list[dict[str, Any]]:
    """The caller's tenant's datasets with rows, size and last change."""
    return views.list_datasets(ws, principal)


@router.get("/{name}")
def show_dataset(name: str, ws: Ws, principal: Caller) -> dict[str, Any]:
    """Schema, rows, size, snapshots, source, description and owner."""
    return views.show_dataset(ws, principal, name)


@router.get("/{name}/history")
def dataset_history(name: str, ws: Ws, principal: Caller) -> list[dict[str, Any]]:
    """Snapshots, newest first; pass a snapshot id as `as_of` to /sql for time travel."""
    return views.dataset_history(ws, principal, name)


class DescribeBody(BaseModel):
    description: str | None = None
    owner: str | None = None


@router.patch("/{name}")
def describe_dataset(name: str, body: DescribeBody, ws: Ws, principal: Caller) -> dict[str, Any]:
    """Set the description and/or owner."""
    return views.describe_dataset(ws, principal, name, description=body.description, owner=body.owner)


def _save_upload(upload: UploadFile, directory: Path, max_bytes: int) -> Path:
    suffix = Path(upload.filename or "upload").suffix[:16]
    directory.mkdir(parents=True, exist_ok=True)
    out = tempfile.NamedTemporaryFile(dir=directory, suffix=suffix, delete=False)  # noqa: SIM115
    size = 0
    try:
        with out:
            while chunk := upload.file.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge(
                        f"upload exceeds the {max_bytes // (1 << 20)} MiB limit (max_upload_mb)"
                    )
                out.write(chunk)
    except BaseException:
        Path(out.name).unlink(missing_ok=True)
        raise
    return Path(out.name)


@router.post("/{name}/ingest", status_code=201)
def upload_and_ingest(
    name: str,
    request: Request,
    ws: Ws,
    principal: Caller,
    file: Annotated[UploadFile | None, File(description="CSV, JSON/NDJSON, Parquet or XLSX")] = None,
    mode: Annotated[str, Form()] = "append",
    key: Annotated[str | None, Form()] = None,
    format: Annotated[str | None, Form()] = None,
    encoding: Annotated[str | None, Form()] = None,
    delimiter: Annotated[str | None, Form()] = None,
    types: Annotated[str | None, Form(description="fix CSV column types: 'ice=string,amount=double'")] = None,
    description: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
    """Upload a file and ingest it as one Iceberg commit (all rows or none)."""
    if file is None:
        # a multipart body cut off mid-file never completes its part: say so rather than "field required"
        raise IncompleteUpload(
            "the request holds no complete 'file' part: the file field is missing, or the upload was cut off "
            "before its end (nothing was ingested; send it again)"
        )
    if not file.filename:
        raise BadRequest("the upload has no file name")
    path = _save_upload(file, ws.settings.tmp_path, ws.settings.max_upload_mb << 20)
    try:
        result = ingest_file(
            ws, principal, path, name, mode=mode, key=key, format=format, encoding=encoding,
            delimiter=delimiter, types=parse_type_specs(types), description=description, source_name=Path(file.filename).name,
        )  # fmt: skip
    finally:
        path.unlink(missing_ok=True)
    request.app.state.metrics.ingested_rows.labels(principal.tenant).inc(result.rows)
    return result.as_dict()
