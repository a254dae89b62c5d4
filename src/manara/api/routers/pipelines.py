"""/api/v1/connectors and /api/v1/pipelines: declare, list, inspect and run declarative pipelines.

As thin as `manara pipeline`: each route calls the service in `manara.connect.pipelines`, which
checks roles (analyst to read, steward to apply and run) and raises the problem+json errors.

`POST /pipelines/{name}/runs` runs the pipeline synchronously. A run that took place answers 200
with the run's result whatever its outcome: `status` is `succeeded`, `failed` (the error is in
`error`) or `paused` (an incompatible schema change: nothing of the batch was written), and the
`X-Manara-Run-Status` header repeats it. A run that is refused answers problem+json: 404 for an
unknown pipeline, 403 below steward, 409 when the pipeline is paused (until a new mapping is
applied) or already running.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from manara.api.deps import get_principal, get_workspace
from manara.connect import pipelines
from manara.connect.registry import discover
from manara.errors import BadRequest, ManaraError, UploadTooLarge
from manara.govern.principal import Principal
from manara.workspace import Workspace

router = APIRouter(tags=["pipelines"])
Ws = Annotated[Workspace, Depends(get_workspace)]
Caller = Annotated[Principal, Depends(get_principal)]

MAX_SPEC_BYTES = 1 << 20
YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}
JSON_TYPES = {"application/json"}


class UnsupportedMediaType(ManaraError):
    type, title, status = "unsupported-media-type", "Unsupported media type", 415


@router.get("/connectors")
def list_connectors(principal: Caller) -> dict[str, Any]:
    """The installed connectors (Manara's and third parties', through entry points) and their options;
    `broken` lists the plug-ins that failed to load, with their error."""
    found, broken = discover()
    return {"connectors": [c.describe() for c in found.values()], "broken": [asdict(b) for b in broken]}


async def _spec_body(request: Request) -> tuple[str, bytes]:
    """The request's media type and body, refused past MAX_SPEC_BYTES (a pipeline file is small)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_SPEC_BYTES:
            raise UploadTooLarge(f"a pipeline declaration is at most {MAX_SPEC_BYTES >> 10} KiB")
    return media, bytes(body)


SpecBody = Annotated[tuple[str, bytes], Depends(_spec_body)]

_SPEC_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "the pipeline file: YAML (as for `manara pipeline apply`) or the same fields as JSON",
        "content": {
            "application/yaml": {
                "schema": {"type": "string"},
                "example": "name: visits\nsource:\n  type: files\n  options: {path: /data/landing/visits, "
                'pattern: "*.csv"}\ndestination:\n  dataset: visits\n',
            },
            "application/json": {
                "schema": {"type": "object"},
                "example": {
                    "name": "visits",
                    "source": {"type": "files", "options": {"path": "/data/landing/visits"}},
                    "destination": {"dataset": "visits"},
                },
            },
        },
    }
}


def _parse(name: str, media: str, raw: bytes) -> pipelines.PipelineSpec:
    label = f"pipeline '{name}'"
    if media not in YAML_TYPES | JSON_TYPES:
        raise UnsupportedMediaType(
            f"send the pipeline as YAML (Content-Type: application/yaml) or JSON (application/json), "
            f"not '{media or 'no content type'}'"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"{label}: the body is not UTF-8 text") from None
    if media in JSON_TYPES:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise BadRequest(f"{label}: not valid JSON: {err}") from None
        text = json.dumps(data)  # JSON is YAML: one parser, one set of messages
    spec = pipelines.parse_spec(text, label)
    if spec.name != name:
        raise BadRequest(f"the path names pipeline '{name}' but the declaration names '{spec.name}'")
    return spec


@router.put(
    "/pipelines/{name}",
    openapi_extra=_SPEC_OPENAPI,
    responses={201: {"description": "created"}, 200: {"description": "replaced"}},
)
def apply_pipeline(
    name: str, ws: Ws, principal: Caller, body: SpecBody, response: Response
) -> dict[str, Any]:
    """Create (201) or replace (200) a pipeline (steward or admin); replacing a paused one resumes it."""
    spec = _parse(name, *body)
    info, created = pipelines.apply_pipeline(ws, principal, spec)
    response.status_code = 201 if created else 200
    return info.as_dict() | {"created": created}


@router.get("/pipelines")
def list_pipelines(ws: Ws, principal: Caller) -> list[dict[str, Any]]:
    """The tenant's pipelines and their last run."""
    return pipelines.list_pipelines(ws, principal)


@router.get("/pipelines/{name}")
def pipeline_status(name: str, ws: Ws, principal: Caller) -> dict[str, Any]:
    """The declaration, whether it is paused (and why), its last run and the cursor committed in the lake."""
    return pipelines.pipeline_status(ws, principal, name)


@router.get("/pipelines/{name}/runs")
def pipeline_runs(
    name: str, ws: Ws, principal: Caller, limit: int = Query(20, ge=1, le=1000)
) -> list[dict[str, Any]]:
    """The run history, newest first."""
    return pipelines.pipeline_runs(ws, principal, name, limit)


@router.post("/pipelines/{name}/runs")
def run_pipeline(
    name: str, request: Request, ws: Ws, principal: Caller, response: Response
) -> dict[str, Any]:
    """Run the pipeline now, from its committed cursor (steward or admin); answers when the run ends.
    200 with `status` succeeded | failed | paused; 409 problem+json if it is paused or already running."""
    result = pipelines.run_pipeline(ws, principal, name, trigger="api")
    request.app.state.metrics.ingested_rows.labels(principal.tenant).inc(result.rows_loaded)
    response.headers["X-Manara-Run-Status"] = result.status
    return result.as_dict()


@router.post("/pipelines/{name}/approve")
def approve_pipeline(
    name: str,
    ws: Ws,
    principal: Caller,
    column: str | None = Query(None, description="default: the column the pause names"),
    to: str | None = Query(None, description="double, string, timestamp, decimal(P,S)…; default: proposed"),
) -> dict[str, Any]:
    """Widen the dataset column that paused the pipeline (steward), keeping every stored row, and
    resume it. 409 if the pipeline is not paused; 400 if a stored value does not fit the type."""
    return pipelines.approve_pipeline(ws, principal, name, column=column, to=to)
