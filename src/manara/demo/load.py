"""Load the demo datasets into a workspace (what `manara up --demo` and `make run` use)."""

from __future__ import annotations

from collections.abc import Callable

from manara.govern.principal import Principal
from manara.lake.catalog import dataset_names
from manara.lake.ingest import IngestResult, ingest_file
from manara.workspace import Workspace


def load_demo(
    ws: Workspace, principal: Principal, *, on_result: Callable[[IngestResult], None] | None = None
) -> list[IngestResult]:
    """Write the demo files under `$MANARA_HOME/demo-files` and ingest those not loaded yet."""
    from manara.demo.data import write_demo_files

    existing = set(dataset_names(ws.catalog, principal.tenant))
    folder = ws.settings.home / "demo-files"
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for demo in write_demo_files(folder):
        if demo.name in existing:
            continue
        result = ingest_file(
            ws, principal, demo.path, demo.name, description=demo.description, owner=demo.owner
        )
        results.append(result)
        if on_result:
            on_result(result)
    return results
