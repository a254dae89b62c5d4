"""Document collections: who may read them, which model embeds them, and their two Iceberg tables.

A collection `laws` of tenant `acme` keeps its documents in the dataset `laws__documents` and its
chunks (text, offsets, page, language, indexed terms, embedding, classification) in
`laws__chunks`, so SQL sees them, time travel works, and the search index can always be rebuilt
from the lake. Access is decided twice, both times before any ranking: the collection's
`read_role` (may this token search here at all?) and each document's classification and read role
(which chunks are candidates?).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session

from manara.errors import CollectionNotFound, Conflict, Forbidden, InvalidName
from manara.govern import audit
from manara.govern.principal import Principal
from manara.meta.db import session_scope
from manara.meta.models import Classification, Collection, Role
from manara.workspace import Workspace

CHUNKS_SUFFIX = "__chunks"
DOCUMENTS_SUFFIX = "__documents"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")

# Table properties that mark a dataset as part of a collection: SQL applies the same row filter
# (classification and read role) to these tables as search does.
ACL_PROPERTY = "manara.acl"
ACL_DOCUMENT = "document"


def chunks_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("chunk_id", pa.string(), nullable=False),
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("ordinal", pa.int32(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("heading", pa.string()),
            pa.field("page", pa.int32()),
            pa.field("page_end", pa.int32()),
            pa.field("char_start", pa.int32(), nullable=False),
            pa.field("char_end", pa.int32(), nullable=False),
            pa.field("lang", pa.string()),
            pa.field("title", pa.string()),
            pa.field("source", pa.string()),
            pa.field("classification", pa.string(), nullable=False),
            pa.field("read_role", pa.string(), nullable=False),
            pa.field("terms", pa.string(), nullable=False),
            pa.field("embedding", pa.list_(pa.float32()), nullable=False),
        ],
        metadata={"manara.embedding_dim": str(dim)},
    )


DOCUMENTS_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("lang", pa.string()),
        pa.field("mime", pa.string()),
        pa.field("pages", pa.int32()),
        pa.field("ocr", pa.bool_()),
        pa.field("bytes", pa.int64()),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("classification", pa.string(), nullable=False),
        pa.field("read_role", pa.string(), nullable=False),
        pa.field("chunks", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("ingested_by", pa.string(), nullable=False),
    ]
)


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    tenant: str
    description: str
    read_role: Role
    default_classification: Classification
    embedding_model: str
    created_at: datetime
    created_by: str

    @property
    def chunks_table(self) -> str:
        return self.name + CHUNKS_SUFFIX

    @property
    def documents_table(self) -> str:
        return self.name + DOCUMENTS_SUFFIX

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "read_role": self.read_role.value,
            "default_classification": self.default_classification.value,
            "embedding_model": self.embedding_model,
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


def _info(row: Collection, tenant: str) -> CollectionInfo:
    return CollectionInfo(
        name=row.name,
        tenant=tenant,
        description=row.description,
        read_role=Role(row.read_role),
        default_classification=Classification(row.default_classification),
        embedding_model=row.embedding_model,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidName(
            f"invalid collection name '{name}': start with a letter; lower-case letters, digits and _; "
            "at most 41 characters"
        )
    if "__" in name:
        raise InvalidName(f"invalid collection name '{name}': '__' is reserved for its tables")
    return name


def create_collection(
    ws: Workspace,
    principal: Principal,
    name: str,
    *,
    description: str = "",
    read_role: Role = Role.viewer,
    default_classification: Classification = Classification.internal,
    embedding_model: str | None = None,
) -> CollectionInfo:
    principal.require(Role.steward, "creating a collection")
    check_name(name)
    model = embedding_model or ws.settings.embedding_model
    with session_scope(ws.engine) as s:
        if _row(s, principal, name) is not None:
            raise Conflict(f"collection '{name}' already exists")
        row = Collection(
            tenant_id=principal.tenant_id,
            name=name,
            description=description,
            read_role=read_role.value,
            default_classification=default_classification.value,
            embedding_model=model,
            created_by=principal.actor,
        )
        s.add(row)
        s.flush()
        audit.record(
            s.connection(),
            audit.EventFields(
                principal.actor, "collection.create", tenant=principal.tenant, target=name,
                detail={"read_role": read_role.value, "default_classification": default_classification.value,
                        "embedding_model": model},
                request_id=audit.request_id_var.get(),
            ),
        )  # fmt: skip
        return _info(row, principal.tenant)


def _row(s: Session, principal: Principal, name: str) -> Collection | None:
    return s.scalar(
        select(Collection).where(Collection.tenant_id == principal.tenant_id, Collection.name == name)
    )


def get_collection(
    ws: Workspace, principal: Principal, name: str, *, action: str = "reading"
) -> CollectionInfo:
    """The collection, if it exists and the principal may read it (else not-found / forbidden)."""
    with session_scope(ws.engine) as s:
        row = _row(s, principal, name)
        if row is None:
            raise CollectionNotFound(f"collection '{name}' does not exist")
        info = _info(row, principal.tenant)
    if not principal.role.at_least(info.read_role):
        audit.write(
            ws.engine,
            audit.EventFields(principal.actor, "collection.read", outcome="denied", tenant=principal.tenant,
                              target=name, request_id=audit.request_id_var.get()),
        )  # fmt: skip
        raise Forbidden(
            f"{action} collection '{name}' needs the role '{info.read_role.value}' or higher; "
            f"this token has '{principal.role.value}'",
            required_role=info.read_role.value,
        )
    return info


def list_collections(ws: Workspace, principal: Principal) -> list[CollectionInfo]:
    """Collections the principal may read."""
    with session_scope(ws.engine) as s:
        rows = s.scalars(
            select(Collection).where(Collection.tenant_id == principal.tenant_id).order_by(Collection.name)
        )
        infos = [_info(r, principal.tenant) for r in rows]
    return [c for c in infos if principal.role.at_least(c.read_role)]


def allowed_classifications(principal: Principal) -> list[str]:
    return [c.value for c in Classification if principal.may_read(c)]


def allowed_roles(principal: Principal) -> list[str]:
    return [r.value for r in Role if principal.role.at_least(r)]
