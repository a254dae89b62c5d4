"""Ingest documents into a collection: parse, chunk, analyse, embed, commit to the lake, index.

Files and folders (recursively) in every format `parse.py` reads. For each file:
- unchanged (same SHA-256 and the same labels as the stored document): nothing happens;
- new or changed: parsed, chunked, its chunks' terms and embeddings computed, and its old chunks
  replaced by the new ones in the same Iceberg commit as every other file of the batch;
- unreadable: reported with a readable reason, and the other files go on.
Chunks are committed before the documents table: a crash in between leaves a document whose
stored hash is the old one, so the next run redoes it (replacing, never duplicating, its chunks).
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError

from manara.errors import Conflict, Forbidden, ManaraError
from manara.govern import audit
from manara.govern.principal import Principal
from manara.lake.catalog import TABLE_DEFAULTS, ensure_namespace, isin
from manara.meta.models import Classification, Role
from manara.models.embeddings import EmbeddingBackend, get_backend
from manara.search import analyze
from manara.search.chunk import chunk_blocks, document_text
from manara.search.collections import (
    ACL_DOCUMENT,
    ACL_PROPERTY,
    DOCUMENTS_SCHEMA,
    CollectionInfo,
    chunks_schema,
    get_collection,
)
from manara.search.parse import SUPPORTED_SUFFIXES, Block, ParsedDocument, parse_document
from manara.text.langid import identify
from manara.workspace import Workspace

BATCH_CHUNKS = 2048  # chunks per Iceberg commit


@dataclass
class TextDocument:
    """A document already in text form (evaluation corpora, API uploads of plain text)."""

    doc_id: str
    text: str
    title: str | None = None
    lang: str | None = None
    source: str | None = None


@dataclass
class FileReport:
    source: str
    status: str  # added | replaced | unchanged | failed
    doc_id: str | None = None
    chunks: int = 0
    pages: int | None = None
    lang: str | None = None
    ocr: bool = False
    error: dict[str, Any] | None = None  # the problem (type, title, detail) of a failed file
    notes: list[str] = field(default_factory=list)


@dataclass
class CollectionIngestResult:
    collection: str
    files: list[FileReport]
    chunks_snapshot_id: int | None
    seconds: float

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            **{s: self.count(s) for s in ("added", "replaced", "unchanged", "failed")},
            "chunks": sum(f.chunks for f in self.files),
            "chunks_snapshot_id": self.chunks_snapshot_id,
            "seconds": round(self.seconds, 3),
            "files": [asdict(f) for f in self.files],
        }


@dataclass
class _Prepared:
    report: FileReport
    doc_row: dict[str, Any]
    chunk_rows: list[dict[str, Any]]
    embed_texts: list[str]


def doc_id_for(source: str) -> str:
    return "d" + hashlib.sha256(source.encode("utf-8")).hexdigest()[:15]


def iter_files(paths: Sequence[Path]) -> Iterator[tuple[Path, str]]:
    """(file, source name): a file is named by its name, a folder's files by folder/relative path."""
    for path in paths:
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                rel = f.relative_to(path)
                hidden = any(p.startswith(".") for p in rel.parts)
                if f.is_file() and not hidden and f.suffix.lower() in SUPPORTED_SUFFIXES:
                    yield f, f"{path.name}/{rel.as_posix()}"
        else:
            yield path, path.name


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _doc_lang(text: str) -> str:
    return identify(text[:4000]).lang if text.strip() else "und"


def _prepare(
    *,
    doc_id: str,
    source: str,
    parsed: ParsedDocument,
    sha: str,
    size: int,
    lang: str | None,
    classification: str,
    read_role: str,
    actor: str,
    status: str,
) -> _Prepared:
    text = document_text(parsed.blocks)
    doc_lang = lang or _doc_lang(text)
    title = parsed.title or source
    chunks = chunk_blocks(parsed.blocks)
    rows, embed = [], []
    for c in chunks:
        chunk_lang = lang or (identify(c.text).lang if len(c.text) > 40 else doc_lang)
        context = "\n".join(x for x in (title, c.heading) if x and x not in c.text[:200])
        full = f"{context}\n{c.text}" if context else c.text
        rows.append(
            {
                "chunk_id": f"{doc_id}:{c.ordinal}",
                "doc_id": doc_id,
                "ordinal": c.ordinal,
                "text": c.text,
                "heading": c.heading,
                "page": c.page,
                "page_end": c.page_end,
                "char_start": c.start,
                "char_end": c.end,
                "lang": chunk_lang,
                "title": title,
                "source": source,
                "classification": classification,
                "read_role": read_role,
                "terms": analyze.index_terms(full, arabizi=chunk_lang == "ary-Latn"),
            }
        )
        embed.append(full)
    report = FileReport(
        source, status, doc_id, len(rows), parsed.pages, doc_lang, parsed.ocr, notes=parsed.notes
    )
    doc_row = {
        "doc_id": doc_id,
        "source": source,
        "title": title,
        "lang": doc_lang,
        "mime": parsed.mime,
        "pages": parsed.pages,
        "ocr": parsed.ocr,
        "bytes": size,
        "sha256": sha,
        "classification": classification,
        "read_role": read_role,
        "chunks": len(rows),
        "text": text,
        "ingested_at": datetime.now(UTC),
        "ingested_by": actor,
    }
    return _Prepared(report, doc_row, rows, embed)


class _Writer:
    """Buffers prepared documents and commits them, a batch at a time, to the two tables."""

    def __init__(self, ws: Workspace, principal: Principal, info: CollectionInfo, backend: EmbeddingBackend,
                 progress: Callable[[str, int], None] | None) -> None:  # fmt: skip
        self.ws, self.principal, self.info, self.backend = ws, principal, info, backend
        self.progress = progress
        self.pending: list[_Prepared] = []
        self.snapshot_id: int | None = None
        ensure_namespace(ws.catalog, principal.tenant)

    def add(self, prepared: _Prepared) -> None:
        self.pending.append(prepared)
        if sum(len(p.chunk_rows) for p in self.pending) >= BATCH_CHUNKS:
            self.flush()

    def _table(self, name: str, schema: pa.Schema) -> Any:
        ident = (self.principal.tenant, name)
        try:
            return self.ws.catalog.load_table(ident)
        except NoSuchTableError:
            props = {**TABLE_DEFAULTS, ACL_PROPERTY: ACL_DOCUMENT, "manara.collection": self.info.name,
                     "manara.owner": self.principal.actor}  # fmt: skip
            self.ws.catalog.create_table_if_not_exists(ident, schema=schema, properties=props)
            return self.ws.catalog.load_table(ident)

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        texts = [t for p in batch for t in p.embed_texts]
        vectors: list[Any] = []
        step = self.ws.settings.embedding_batch
        for start in range(0, len(texts), step):
            vectors.extend(self.backend.embed_passages(texts[start : start + step]))
            if self.progress:
                self.progress("embedded", min(step, len(texts) - start))
        rows = [r for p in batch for r in p.chunk_rows]
        for row, vec in zip(rows, vectors, strict=True):
            row["embedding"] = vec.tolist()
        ids = [p.report.doc_id for p in batch if p.report.doc_id]
        replaced = [p.report.doc_id for p in batch if p.report.status == "replaced"]
        chunks = self._table(self.info.chunks_table, chunks_schema(self.backend.dim))
        docs = self._table(self.info.documents_table, DOCUMENTS_SCHEMA)
        props = {"manara.actor": self.principal.actor, "manara.collection": self.info.name}
        if rid := audit.request_id_var.get():
            props["manara.request_id"] = rid
        detail = {"documents": len(batch), "replaced": len(replaced), "chunks": len(rows),
                  "sources": [p.report.source for p in batch][:50]}  # fmt: skip
        try:
            for table, data, action in (
                (chunks, pa.Table.from_pylist(rows, schema=chunks.schema().as_arrow()), "collection.ingest"),
                (docs, pa.Table.from_pylist([p.doc_row for p in batch], schema=DOCUMENTS_SCHEMA),
                 "collection.documents"),
            ):  # fmt: skip
                tx = table.transaction()
                if (
                    table.metadata.current_snapshot() is not None
                ):  # replace, never duplicate (crash reruns too)
                    with warnings.catch_warnings():  # new documents match nothing: expected, not news
                        warnings.filterwarnings("ignore", "Delete operation did not match any records")
                        tx.delete(isin("doc_id", ids), snapshot_properties=props)
                tx.append(data, snapshot_properties=props)
                snapshot = tx.table_metadata.current_snapshot()
                ev = audit.EventFields(
                    self.principal.actor, action, tenant=self.principal.tenant, target=self.info.name,
                    detail={**detail, "snapshot_id": snapshot.snapshot_id if snapshot else None},
                    request_id=audit.request_id_var.get(),
                )  # fmt: skip
                with audit.iceberg_commit_audit(self.ws.catalog.engine, ev):
                    tx.commit_transaction()
                if table is chunks and snapshot:
                    self.snapshot_id = snapshot.snapshot_id
        except CommitFailedException as e:
            raise Conflict(
                f"collection '{self.info.name}' was changed by another writer; retry ({e})"
            ) from None


def _stored(ws: Workspace, principal: Principal, info: CollectionInfo) -> dict[str, tuple[str, str, str]]:
    """doc_id → (sha256, classification, read_role) of the stored documents."""
    try:
        table = ws.catalog.load_table((principal.tenant, info.documents_table))
    except NoSuchTableError:
        return {}
    data = table.scan(selected_fields=("doc_id", "sha256", "classification", "read_role")).to_arrow()
    return {
        d: (s, c, r)
        for d, s, c, r in zip(*(data.column(n).to_pylist() for n in ("doc_id", "sha256", "classification",
                                                                       "read_role")), strict=True)
    }  # fmt: skip


def _labels(
    info: CollectionInfo, classification: Classification | None, read_role: Role | None
) -> tuple[str, str]:
    return (classification or info.default_classification).value, (read_role or info.read_role).value


def ingest_paths(
    ws: Workspace,
    principal: Principal,
    collection: str,
    paths: Sequence[Path],
    *,
    classification: Classification | None = None,
    read_role: Role | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> CollectionIngestResult:
    """Ingest files and folders; `progress(stage, n)` reports 'files' and 'embedded' counts."""
    t0 = time.perf_counter()
    info, cls, role, writer, stored = _begin(ws, principal, collection, classification, read_role, progress)
    reports: list[FileReport] = []
    seen: set[str] = set()
    for path, source in iter_files(paths):
        doc_id = doc_id_for(source)
        if doc_id in seen:  # two folders of one name, or one file given twice: one document per source
            reports.append(FileReport(source, "failed", doc_id, error={
                "type": "duplicate-source", "title": "Duplicate source",
                "detail": f"{source}: another file of this ingest has the same source name; ingest it separately",
            }))  # fmt: skip
            if progress:
                progress("files", 1)
            continue
        seen.add(doc_id)
        try:
            sha = _sha256(path)
            before = stored.get(doc_id)
            if before == (sha, cls, role):
                reports.append(FileReport(source, "unchanged", doc_id))
                continue
            parsed = parse_document(path)
            prepared = _prepare(
                doc_id=doc_id, source=source, parsed=parsed, sha=sha, size=path.stat().st_size, lang=None,
                classification=cls, read_role=role, actor=principal.actor,
                status="replaced" if before else "added",
            )  # fmt: skip
            if not prepared.chunk_rows:
                from manara.errors import DocumentUnreadable

                raise DocumentUnreadable(f"{source}: no text to index", file=source)
            writer.add(prepared)
            reports.append(prepared.report)
        except ManaraError as err:
            reports.append(FileReport(source, "failed", doc_id, error=_problem(err)))
        except OSError as err:
            reports.append(FileReport(source, "failed", doc_id, error={"type": "unreadable-file",
                                                                      "detail": f"{source}: {err.strerror or err}"}))  # fmt: skip
        finally:
            if progress:
                progress("files", 1)
    writer.flush()
    _audit_failures(ws, principal, info, reports)
    return CollectionIngestResult(info.name, reports, writer.snapshot_id, time.perf_counter() - t0)


def ingest_texts(
    ws: Workspace,
    principal: Principal,
    collection: str,
    docs: Iterable[TextDocument],
    *,
    classification: Classification | None = None,
    read_role: Role | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> CollectionIngestResult:
    """Ingest documents given as text (paragraphs separated by blank lines), with the same rules as files."""
    t0 = time.perf_counter()
    info, cls, role, writer, stored = _begin(ws, principal, collection, classification, read_role, progress)
    reports: list[FileReport] = []
    for doc in docs:
        sha = hashlib.sha256(f"{doc.title}\n{doc.text}".encode()).hexdigest()
        before = stored.get(doc.doc_id)
        source = doc.source or doc.doc_id
        if before == (sha, cls, role):
            reports.append(FileReport(source, "unchanged", doc.doc_id))
            continue
        blocks = [Block("paragraph", p.strip()) for p in doc.text.split("\n\n") if p.strip()]
        parsed = ParsedDocument(doc.title, blocks, None, False, "text/plain")
        prepared = _prepare(
            doc_id=doc.doc_id, source=source, parsed=parsed, sha=sha, size=len(doc.text.encode()), lang=doc.lang,
            classification=cls, read_role=role, actor=principal.actor, status="replaced" if before else "added",
        )  # fmt: skip
        if prepared.chunk_rows:
            writer.add(prepared)
            reports.append(prepared.report)
        else:
            reports.append(FileReport(source, "failed", doc.doc_id, error={
                "type": "empty-file", "title": "Empty document", "detail": f"{source}: no text to index"}))  # fmt: skip
        if progress:
            progress("files", 1)
    writer.flush()
    return CollectionIngestResult(info.name, reports, writer.snapshot_id, time.perf_counter() - t0)


def _begin(
    ws: Workspace,
    principal: Principal,
    collection: str,
    classification: Classification | None,
    read_role: Role | None,
    progress: Callable[[str, int], None] | None,
) -> tuple[CollectionInfo, str, str, _Writer, dict[str, tuple[str, str, str]]]:
    """Checks shared by every ingest (role, collection access, clearance for the label) and its writer."""
    principal.require(Role.steward, "adding documents")
    info = get_collection(ws, principal, collection, action="adding documents to")
    cls, role = _labels(info, classification, read_role)
    if not principal.may_read(Classification(cls)):
        raise Forbidden(
            f"a token cleared for '{principal.effective_clearance.value}' cannot add '{cls}' documents"
        )
    writer = _Writer(ws, principal, info, get_backend(info.embedding_model, _key(ws)), progress)
    return info, cls, role, writer, _stored(ws, principal, info)


def _key(ws: Workspace) -> str | None:
    key = ws.settings.embedding_api_key
    return key.get_secret_value() if key else None


def _problem(err: ManaraError) -> dict[str, Any]:
    return {"type": err.type_uri, "title": err.title, "detail": err.detail}


def _audit_failures(
    ws: Workspace, principal: Principal, info: CollectionInfo, reports: list[FileReport]
) -> None:
    failed = [
        {"source": r.source, "detail": (r.error or {}).get("detail")} for r in reports if r.status == "failed"
    ]
    if failed:
        audit.write(
            ws.engine,
            audit.EventFields(principal.actor, "collection.ingest", outcome="failed", tenant=principal.tenant,
                              target=info.name, detail={"failed": failed[:100], "count": len(failed)},
                              request_id=audit.request_id_var.get()),
        )  # fmt: skip
