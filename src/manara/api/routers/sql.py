"""/api/v1/sql: read-only SQL over the caller's tenant, as JSON, CSV, Arrow IPC or Parquet."""

from __future__ import annotations

import io
from typing import Annotated, Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from manara.api.deps import get_principal, get_workspace
from manara.errors import ManaraError
from manara.govern.principal import Principal
from manara.lake.sql import QueryResult, run_query
from manara.workspace import Workspace

router = APIRouter(tags=["sql"])
ARROW = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"


class SqlRequest(BaseModel):
    sql: str = Field(
        ..., description="one SELECT (or WITH … SELECT) over the tenant's datasets", max_length=100_000
    )
    as_of: str | None = Field(None, description="snapshot id or ISO-8601 timestamp (time travel)")
    limit: int | None = Field(None, ge=1, description="most rows to return (capped by sql_row_limit)")
    format: Literal["json", "csv", "arrow", "parquet"] = "json"


def _headers(result: QueryResult) -> dict[str, str]:
    return {
        "X-Manara-Rows": str(result.table.num_rows),
        "X-Manara-Truncated": str(result.truncated).lower(),
    }


def _json(result: QueryResult) -> dict[str, Any]:
    return {
        "columns": [{"name": f.name, "type": str(f.type)} for f in result.table.schema],
        "rows": jsonable_encoder(result.table.to_pylist()),
        "row_count": result.table.num_rows,
        "truncated": result.truncated,
        "row_limit": result.row_limit,
        "datasets": result.datasets,
        "snapshots": {k: str(v) if v is not None else None for k, v in result.snapshots.items()},
        "elapsed_ms": round(result.seconds * 1000, 2),
    }


@router.post("/sql", response_model=None)
def sql(
    body: SqlRequest,
    request: Request,
    ws: Annotated[Workspace, Depends(get_workspace)],
    principal: Annotated[Principal, Depends(get_principal)],
) -> Response:
    """Run a read-only query. `format` picks JSON (default), CSV, Arrow IPC stream or Parquet."""
    counter = request.app.state.metrics.sql_queries
    try:
        result = run_query(ws, principal, body.sql, as_of=body.as_of, limit=body.limit)
    except ManaraError as e:
        counter.labels(principal.tenant, e.type).inc()
        raise
    counter.labels(principal.tenant, "ok").inc()
    headers = _headers(result)
    if body.format == "json":
        return JSONResponse(_json(result), headers=headers)
    buf = io.BytesIO()
    if body.format == "csv":
        pacsv.write_csv(result.table, buf)
        return Response(buf.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
    if body.format == "arrow":
        with pa.ipc.new_stream(buf, result.table.schema) as writer:
            writer.write_table(result.table)
        return Response(buf.getvalue(), media_type=ARROW, headers=headers)
    pq.write_table(result.table, buf, compression="zstd")
    headers["Content-Disposition"] = 'attachment; filename="result.parquet"'
    return Response(buf.getvalue(), media_type=PARQUET, headers=headers)
