"""What a collection holds: its documents (with labels the caller may read) and counts."""

from __future__ import annotations

from typing import Any

from pyiceberg.exceptions import NoSuchTableError

from manara.govern import audit
from manara.govern.principal import Principal
from manara.lake.catalog import isin
from manara.search.collections import allowed_classifications, allowed_roles, get_collection
from manara.workspace import Workspace

LISTED = ("doc_id", "source", "title", "lang", "mime", "pages", "ocr", "bytes", "chunks", "classification",
          "read_role", "ingested_at", "ingested_by")  # fmt: skip


def list_documents(ws: Workspace, principal: Principal, collection: str) -> list[dict[str, Any]]:
    """The collection's documents the caller may read (classification and read role), by source."""
    info = get_collection(ws, principal, collection)
    try:
        table = ws.catalog.load_table((principal.tenant, info.documents_table))
    except NoSuchTableError:
        return []
    row_filter = isin("classification", allowed_classifications(principal)) & isin(
        "read_role", allowed_roles(principal)
    )
    data = table.scan(row_filter=row_filter, selected_fields=LISTED).to_arrow()
    data = data.sort_by("source")
    audit.write(
        ws.engine,
        audit.EventFields(principal.actor, "collection.list_documents", tenant=principal.tenant, target=info.name,
                          detail={"documents": data.num_rows}, request_id=audit.request_id_var.get()),
    )  # fmt: skip
    return data.to_pylist()


def collection_summary(ws: Workspace, principal: Principal, collection: str) -> dict[str, Any]:
    info = get_collection(ws, principal, collection)
    items = list_documents(ws, principal, collection)
    chunks = sum(int(d["chunks"]) for d in items)
    return {**info.as_dict(), "documents": len(items), "chunks": chunks, "items": items}
