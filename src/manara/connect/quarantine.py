"""Reading the quarantine: `<dataset>__quarantine` tables, what failed, why, where, and the raw record.

Payloads are records as they arrived, so reading them is a data access like any other: stewards
only, and audited.
"""

from __future__ import annotations

from typing import Any

import pyarrow.compute as pc

from manara.connect.pipelines import QUARANTINE_SUFFIX, RunResult, get_pipeline, run_pipeline
from manara.errors import BadRequest, DatasetNotFound
from manara.govern import audit
from manara.govern.principal import Principal
from manara.lake.catalog import dataset_names, identifier
from manara.meta.models import Role
from manara.workspace import Workspace


def list_quarantines(ws: Workspace, principal: Principal) -> list[dict[str, Any]]:
    """Per dataset and pipeline: how many records wait in quarantine, and the latest reason."""
    principal.require(Role.steward, "reading the quarantine")
    out = []
    for name in dataset_names(ws.catalog, principal.tenant):
        if not name.endswith(QUARANTINE_SUFFIX):
            continue
        rows = (
            ws.catalog.load_table(identifier(principal.tenant, name))
            .scan(selected_fields=("pipeline", "quarantined_at", "reason"))
            .to_arrow()
        )
        for pipeline in sorted(set(rows.column("pipeline").to_pylist())):
            mine = rows.filter(pc.equal(rows.column("pipeline"), pipeline)).sort_by(
                [("quarantined_at", "descending")]
            )
            out.append({
                "dataset": name.removesuffix(QUARANTINE_SUFFIX), "pipeline": pipeline, "records": mine.num_rows,
                "latest": mine.column("quarantined_at")[0].as_py(), "latest_reason": mine.column("reason")[0].as_py(),
            })  # fmt: skip
    return out


def show_quarantine(
    ws: Workspace, principal: Principal, dataset: str, *, pipeline: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The newest quarantined records of a dataset (optionally of one pipeline), payload included."""
    principal.require(Role.steward, "reading the quarantine")
    name = dataset + QUARANTINE_SUFFIX
    if name not in dataset_names(ws.catalog, principal.tenant):
        raise DatasetNotFound(f"dataset '{dataset}' has no quarantine")
    table = ws.catalog.load_table(identifier(principal.tenant, name))
    rows = table.scan().to_arrow()
    if pipeline:
        rows = rows.filter(pc.equal(rows.column("pipeline"), pipeline))
    rows = rows.sort_by([("quarantined_at", "descending"), ("position", "ascending")]).slice(0, limit)
    audit.write(
        ws.engine,
        audit.EventFields(principal.actor, "dataset.quarantine_read", tenant=principal.tenant, target=name,
                          detail={"pipeline": pipeline, "rows": rows.num_rows},
                          request_id=audit.request_id_var.get()),
    )  # fmt: skip
    return rows.to_pylist()


def replay_quarantine(ws: Workspace, principal: Principal, dataset: str, pipeline: str) -> RunResult:
    """Run `pipeline`'s quarantined records of `dataset` through its current mapping (after a fix).

    Records that now pass are loaded and leave the quarantine; those that fail again stay with
    their new reason; raw payloads (an unreadable file) are left for the source to deliver again.
    """
    info = get_pipeline(ws, principal, pipeline)
    if info.spec["destination"]["dataset"] != dataset:
        raise BadRequest(
            f"pipeline '{pipeline}' loads '{info.spec['destination']['dataset']}', not '{dataset}'"
        )
    return run_pipeline(ws, principal, pipeline, trigger="replay")
