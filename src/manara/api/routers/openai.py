"""OpenAI-compatible endpoints (`/v1/embeddings`, `/v1/models`) serving the hub's local models.

Existing OpenAI clients work against the hub by pointing their base URL at `https://hub/v1` and
using a Manara token as the API key. Only models configured in this workspace are served.
"""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from manara.api.deps import get_principal, get_workspace
from manara.errors import BadRequest, NotFound
from manara.govern import audit
from manara.govern.principal import Principal
from manara.models.embeddings import EmbeddingBackend, get_backend
from manara.workspace import Workspace

router = APIRouter(prefix="/v1", tags=["openai-compatible"])
Ws = Annotated[Workspace, Depends(get_workspace)]
Caller = Annotated[Principal, Depends(get_principal)]
MAX_INPUTS = 2048
_CREATED = int(time.time())


def _backend(ws: Workspace) -> EmbeddingBackend:
    key = ws.settings.embedding_api_key
    return get_backend(ws.settings.embedding_model, key.get_secret_value() if key else None)


def _model_names(ws: Workspace) -> dict[str, str]:
    backend = _backend(ws)
    return {
        backend.name: ws.settings.embedding_model,
        ws.settings.embedding_model: ws.settings.embedding_model,
    }


@router.get("/models")
def list_models(ws: Ws, principal: Caller) -> dict[str, Any]:
    """The hub's models, in OpenAI's list format."""
    backend = _backend(ws)
    return {
        "object": "list",
        "data": [
            {
                "id": backend.name,
                "object": "model",
                "created": _CREATED,
                "owned_by": "manara",
                "dimensions": backend.dim,
            }
        ],  # fmt: skip
    }


class EmbeddingRequest(BaseModel):
    input: str | list[str] = Field(..., description="a text or a list of texts")
    model: str
    encoding_format: str = Field("float", description="float | base64")
    input_type: str = Field(
        "passage",
        description="Manara extension: 'query' or 'passage' (the E5 prefix to use). A text that already "
        "starts with 'query: ' or 'passage: ' (as E5 clients send) is taken as that kind, prefix removed.",
    )
    user: str | None = None


@router.post("/embeddings")
def embeddings(body: EmbeddingRequest, ws: Ws, principal: Caller) -> dict[str, Any]:
    """Embed texts with the local model (L2-normalised float32)."""
    if body.model not in _model_names(ws):
        raise NotFound(f"model '{body.model}' is not served here; GET /v1/models lists the hub's models")
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts or len(texts) > MAX_INPUTS:
        raise BadRequest(f"'input' must hold 1 to {MAX_INPUTS} texts")
    if any(not isinstance(t, str) or not t.strip() for t in texts):
        raise BadRequest("every input must be a non-empty string (token-id inputs are not supported)")
    if body.encoding_format not in ("float", "base64") or body.input_type not in ("query", "passage"):
        raise BadRequest("encoding_format must be float or base64; input_type query or passage")
    backend = _backend(ws)
    kinds = []
    for i, text in enumerate(texts):
        for kind in ("query", "passage"):
            if text.startswith(kind + ": "):
                texts[i] = text[len(kind) + 2 :]
                kinds.append(kind)
                break
        else:
            kinds.append(body.input_type)
    vectors = np.empty((len(texts), backend.dim), dtype=np.float32)
    for kind, embed in (("query", backend.embed_queries), ("passage", backend.embed_passages)):
        rows = [i for i, k in enumerate(kinds) if k == kind]
        if rows:
            vectors[rows] = embed([texts[i] for i in rows])
    data = []
    for i, v in enumerate(vectors):
        v32 = np.asarray(v, dtype=np.float32)
        emb: Any = (
            base64.b64encode(v32.tobytes()).decode() if body.encoding_format == "base64" else v32.tolist()
        )
        data.append({"object": "embedding", "index": i, "embedding": emb})
    tokens = sum(len(t.split()) for t in texts)
    audit.write(
        ws.engine,
        audit.EventFields(principal.actor, "model.embed", tenant=principal.tenant, target=backend.name,
                          detail={"inputs": len(texts)}, request_id=audit.request_id_var.get()),
    )  # fmt: skip
    return {"object": "list", "data": data, "model": backend.name, "usage": {"prompt_tokens": tokens,
            "total_tokens": tokens}}  # fmt: skip
