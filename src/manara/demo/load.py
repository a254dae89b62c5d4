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


DEMO_COLLECTION = "procedures"


def load_demo_collection(ws: Workspace, principal: Principal) -> int:
    """The `procedures` collection: Manara's gold set of Moroccan procedure sheets (Arabic and French).

    Returns the number of documents added (0 when it was loaded already).
    """
    import json
    from importlib import resources

    from manara.search.collections import create_collection, list_collections
    from manara.search.ingest import TextDocument, ingest_texts

    if DEMO_COLLECTION not in {c.name for c in list_collections(ws, principal)}:
        create_collection(
            ws,
            principal,
            DEMO_COLLECTION,
            description="Moroccan public-service procedures (demo, illustrative)",
        )
    corpus = resources.files("manara.search").joinpath("gold/corpus.jsonl").read_text(encoding="utf-8")
    docs = []
    for line in corpus.splitlines():
        if line.strip():
            row = json.loads(line)
            docs.append(
                TextDocument(row["id"], row["text"], row.get("title"), row.get("lang"), f"{row['id']}.txt")
            )
    return ingest_texts(ws, principal, DEMO_COLLECTION, docs).count("added")
