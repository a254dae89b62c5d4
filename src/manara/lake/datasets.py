"""Catalog views of a tenant's datasets: list, show, history, time travel, descriptions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pyiceberg.table import Table

from manara.errors import BadRequest, NotFound
from manara.govern import audit
from manara.govern.principal import Principal
from manara.lake.catalog import dataset_names, load_dataset
from manara.meta.models import Role
from manara.workspace import Workspace


def _ts(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def resolve_snapshot(table: Table, as_of: str) -> int:
    """A snapshot id, or the snapshot current at an ISO-8601 timestamp (UTC when no zone is given)."""
    value = as_of.strip()
    if value.isdigit() or (value.startswith("-") and value[1:].isdigit()):
        snapshot_id = int(value)
        if table.snapshot_by_id(snapshot_id) is None:
            raise NotFound(f"snapshot {snapshot_id} does not exist in dataset '{table.name()[-1]}'")
        return snapshot_id
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"--as-of '{as_of}' is neither a snapshot id nor an ISO-8601 timestamp") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    entry = table.snapshot_as_of_timestamp(int(when.timestamp() * 1000))
    if entry is None:
        raise NotFound(f"dataset '{table.name()[-1]}' has no snapshot at or before {when.isoformat()}")
    return entry.snapshot_id


def _summary(table: Table) -> dict[str, Any]:
    snap = table.current_snapshot()
    summary = snap.summary.additional_properties if snap and snap.summary else {}
    props = table.properties
    return {
        "name": table.name()[-1],
        "rows": int(summary.get("total-records", 0)),
        "size_bytes": int(summary.get("total-files-size", 0)),
        "files": int(summary.get("total-data-files", 0)),
        "snapshot_id": snap.snapshot_id if snap else None,
        "updated_at": _ts(snap.timestamp_ms) if snap else None,
        "description": props.get("manara.description"),
        "owner": props.get("manara.owner"),
        "source": props.get("manara.source"),
    }


def list_datasets(ws: Workspace, principal: Principal) -> list[dict[str, Any]]:
    principal.require(Role.viewer, "listing datasets")
    out = [
        _summary(load_dataset(ws.catalog, principal.tenant, n))
        for n in dataset_names(ws.catalog, principal.tenant)
    ]
    audit.write(ws.engine, audit.EventFields(principal.actor, "dataset.list", tenant=principal.tenant))
    return out


def _columns(table: Table) -> list[dict[str, Any]]:
    return [
        {"id": f.field_id, "name": f.name, "type": str(f.field_type), "required": f.required, "doc": f.doc}
        for f in table.schema().fields
    ]


def show_dataset(ws: Workspace, principal: Principal, name: str) -> dict[str, Any]:
    principal.require(Role.viewer, "reading a dataset's description")
    table = load_dataset(ws.catalog, principal.tenant, name)
    info = _summary(table)
    info.update(
        columns=_columns(table),
        snapshots=len(table.snapshots()),
        location=table.location(),
        format_version=table.metadata.format_version,
        created_at=_ts(table.snapshots()[0].timestamp_ms) if table.snapshots() else None,
        properties={k: v for k, v in table.properties.items() if k.startswith("manara.")},
    )
    audit.write(
        ws.engine, audit.EventFields(principal.actor, "dataset.show", tenant=principal.tenant, target=name)
    )
    return info


def dataset_history(ws: Workspace, principal: Principal, name: str) -> list[dict[str, Any]]:
    principal.require(Role.viewer, "reading a dataset's history")
    table = load_dataset(ws.catalog, principal.tenant, name)
    current = table.metadata.current_snapshot_id
    out = []
    last_of_ingest: set[str] = set()
    for snap in sorted(
        table.snapshots(), key=lambda s: (s.timestamp_ms, s.sequence_number or 0), reverse=True
    ):
        summary = snap.summary.additional_properties if snap.summary else {}
        ingest_id = summary.get("manara.ingest_id")
        # an ingest that commits several snapshots at once (upsert: delete, then insert) exposes
        # only its last one to readers; the earlier ones are steps inside that one commit
        intermediate = ingest_id is not None and ingest_id in last_of_ingest
        if ingest_id:
            last_of_ingest.add(ingest_id)
        out.append(
            {
                "snapshot_id": snap.snapshot_id,
                "parent_id": snap.parent_snapshot_id,
                "committed_at": _ts(snap.timestamp_ms),
                "operation": snap.summary.operation.value if snap.summary else None,
                "added_rows": int(summary.get("added-records", 0)),
                "deleted_rows": int(summary.get("deleted-records", 0)),
                "total_rows": int(summary.get("total-records", 0)),
                "source": summary.get("manara.source"),
                "mode": summary.get("manara.mode"),
                "actor": summary.get("manara.actor"),
                "current": snap.snapshot_id == current,
                "ingest_id": ingest_id,
                "intermediate": intermediate,
            }
        )
    audit.write(
        ws.engine, audit.EventFields(principal.actor, "dataset.history", tenant=principal.tenant, target=name)
    )
    return out


def describe_dataset(
    ws: Workspace, principal: Principal, name: str, *, description: str | None, owner: str | None
) -> dict[str, Any]:
    """Set a dataset's description and owner (one Iceberg commit, audited with it)."""
    principal.require(Role.steward, "describing a dataset")
    table = load_dataset(ws.catalog, principal.tenant, name)
    props = {k: v for k, v in (("manara.description", description), ("manara.owner", owner)) if v is not None}
    if not props:
        raise BadRequest("give a description, an owner, or both")
    ev = audit.EventFields(
        principal.actor, "dataset.describe", tenant=principal.tenant, target=name, detail=props
    )
    tx = table.transaction()
    tx.set_properties(props)
    with audit.iceberg_commit_audit(ws.catalog.engine, ev):
        tx.commit_transaction()
    return show_dataset(ws, principal, name)
