"""Real files through `ingest_paths`: a folder of mixed formats, re-ingest, labels, refusals, audit.

The documents are generated at test time (docgen): a French DOCX with headings, an Arabic PDF
written the legacy way (visual order, presentation forms), an HTML page, a Markdown file, a
Windows-1256 text file, plus files the folder walk must skip and files that cannot be read.
"""

from __future__ import annotations

import hashlib
import random
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from docgen import (
    AR_HEADING,
    AR_PARAGRAPH,
    AR_TITLE,
    FR_HEADING,
    FR_PARAGRAPH,
    FR_TITLE,
    html_page,
    make_docx,
    make_pdf,
    markdown_text,
    plain_text,
)

from manara.errors import Forbidden
from manara.govern import audit
from manara.govern.principal import Principal
from manara.lake.sql import run_query
from manara.meta.models import Classification, Role
from manara.search.answer import answer_question
from manara.search.collections import create_collection
from manara.search.documents import list_documents
from manara.search.ingest import CollectionIngestResult, ingest_paths
from manara.search.retrieve import search
from manara.workspace import Workspace

COLLECTION = "guides"

AR_RESIDENCE_HEADING = "شهادة السكنى"
AR_RESIDENCE = "تسلم شهادة السكنى من مقر الملحقة الإدارية التابعة لمحل الإقامة."
FR_DELAY_HEADING = "Délai de délivrance"
FR_DELAY = "La carte est délivrée dans un délai de deux semaines après le dépôt du dossier."
HTML_TITLE = "Légalisation de signature"
HTML_PARAGRAPH = "La légalisation de la signature se fait au bureau d'état civil de la commune."
MD_HEADING = "Permis de conduire"
MD_PARAGRAPH = "Le permis de conduire est délivré par le centre d'immatriculation des véhicules."
MD_NEW_PARAGRAPH = "Le duplicata du permis perdu est demandé après une déclaration de perte à la police."
TXT_HEADING = "عقد الازدياد"
TXT_PARAGRAPH = "يسلم مكتب الحالة المدنية نسخة موجزة من رسم الولادة لكل شخص مسجل في سجلات الحالة المدنية."

READABLE = {
    "docs/guide-fr.docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "docs/dalil.pdf": "application/pdf",
    "docs/sous/page.html": "text/html",
    "docs/notes.md": "text/markdown",
    "docs/ancien.txt": "text/plain",
}
BROKEN = {"docs/abime.pdf": "abime.pdf", "docs/vide.txt": "vide.txt"}


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def make_folder(root: Path) -> Path:
    folder = root / "docs"
    (folder / "sous").mkdir(parents=True)
    (folder / ".git").mkdir()
    make_docx(
        folder / "guide-fr.docx",
        [("h1", FR_HEADING), ("p", FR_PARAGRAPH), ("h1", FR_DELAY_HEADING), ("p", FR_DELAY)],
        title=FR_TITLE,
    )
    make_pdf(
        folder / "dalil.pdf",
        [
            ("h1", AR_HEADING),
            ("p", AR_PARAGRAPH),
            ("page", ""),
            ("h1", AR_RESIDENCE_HEADING),
            ("p", AR_RESIDENCE),
        ],
        title=AR_TITLE,
        mode="visual",
    )
    (folder / "sous" / "page.html").write_text(
        html_page([("h1", HTML_TITLE), ("p", HTML_PARAGRAPH)], title=HTML_TITLE), "utf-8"
    )
    (folder / "notes.md").write_text(markdown_text([("h1", MD_HEADING), ("p", MD_PARAGRAPH)]), "utf-8")
    (folder / "ancien.txt").write_bytes(
        plain_text([("h1", TXT_HEADING), ("p", TXT_PARAGRAPH)]).encode("cp1256")
    )
    # skipped by the folder walk: hidden files and folders, unsupported suffixes
    (folder / ".secret.txt").write_text("Mot de passe du coffre : ne pas indexer.\n", "utf-8")
    (folder / ".git" / "HEAD.txt").write_text("ref: refs/heads/main\n", "utf-8")
    (folder / "export.xyz").write_text("Ceci n'est pas un document.\n", "utf-8")
    # unreadable: reported, the others still land
    (folder / "abime.pdf").write_bytes(b"%PDF-1.7\n" + random.Random(2).randbytes(2048) + b"\n%%EOF\n")
    (folder / "vide.txt").write_bytes(b"")
    return folder


@dataclass
class Ingested:
    folder: Path
    result: CollectionIngestResult
    progress: list[tuple[str, int]]

    def report(self, source: str):  # type: ignore[no-untyped-def]
        (found,) = [f for f in self.result.files if f.source == source]
        return found


@pytest.fixture
def ingested(ws: Workspace, operator: Principal, tmp_path: Path) -> Ingested:
    create_collection(ws, operator, COLLECTION)
    folder = make_folder(tmp_path)
    events: list[tuple[str, int]] = []
    result = ingest_paths(
        ws, operator, COLLECTION, [folder], progress=lambda stage, n: events.append((stage, n))
    )
    return Ingested(folder, result, events)


def chunk_rows(ws: Workspace, principal: Principal, where: str = "") -> list[dict]:  # type: ignore[type-arg]
    sql = (
        "SELECT chunk_id, doc_id, ordinal, source, title, heading, page, page_end, lang, char_start, char_end, "
        f"text, classification FROM {COLLECTION}__chunks {where} ORDER BY source, ordinal"
    )
    return run_query(ws, principal, sql).table.to_pylist()


def document_rows(ws: Workspace, principal: Principal) -> dict[str, dict]:  # type: ignore[type-arg]
    sql = (
        "SELECT doc_id, source, title, lang, mime, pages, ocr, bytes, sha256, chunks, classification, text "
        f"FROM {COLLECTION}__documents ORDER BY source"
    )
    return {r["source"]: r for r in run_query(ws, principal, sql).table.to_pylist()}


def as_role(operator: Principal, role: Role, clearance: Classification | None = None) -> Principal:
    return replace(operator, role=role, actor=f"test:{role.value}", clearance=clearance)


# --------------------------------------------------------------------------------------------------
# A folder of mixed documents


def test_folder_reports_every_file_and_the_readable_ones_land(
    ws: Workspace, operator: Principal, ingested: Ingested
) -> None:
    result = ingested.result
    # hidden files and folders and unsupported suffixes are not walked at all
    assert sorted(f.source for f in result.files) == sorted([*READABLE, *BROKEN])
    for source in READABLE:
        report = ingested.report(source)
        assert report.status == "added", report
        assert report.chunks >= 1 and report.error is None and report.doc_id
    for source, name in BROKEN.items():
        report = ingested.report(source)
        assert report.status == "failed" and report.chunks == 0
        detail = report.error["detail"]
        assert detail.startswith(f"{name}: "), detail  # names the file, in one readable line
        assert "\n" not in detail and "Traceback" not in detail and len(detail) < 300
    assert "corrupt" in ingested.report("docs/abime.pdf").error["detail"]
    assert "empty" in ingested.report("docs/vide.txt").error["detail"]
    assert (result.count("added"), result.count("failed")) == (5, 2)
    assert result.chunks_snapshot_id is not None
    pdf = ingested.report("docs/dalil.pdf")
    assert (pdf.pages, pdf.ocr) == (2, False)

    # progress: one ("files", 1) per walked file, and every chunk embedded
    assert [e for e in ingested.progress if e[0] == "files"] == [("files", 1)] * 7
    assert sum(n for stage, n in ingested.progress if stage == "embedded") == sum(
        f.chunks for f in result.files
    )

    chunks = chunk_rows(ws, operator)
    docs = document_rows(ws, operator)
    assert set(docs) == set(READABLE)
    assert {c["source"] for c in chunks} == set(READABLE)
    assert not any("ne pas indexer" in c["text"] or "refs/heads" in c["text"] for c in chunks)

    # documents: hash, type, pages, size and chunk count of each file
    for source, mime in READABLE.items():
        doc = docs[source]
        path = ingested.folder.parent / source
        assert doc["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert doc["mime"] == mime
        assert doc["bytes"] == path.stat().st_size
        assert doc["pages"] == (2 if source.endswith(".pdf") else None)
        assert doc["ocr"] is False
        mine = [c for c in chunks if c["source"] == source]
        assert doc["chunks"] == len(mine) == ingested.report(source).chunks
        assert [c["ordinal"] for c in mine] == list(range(len(mine)))
        # every chunk is exactly its span of the stored document text
        for c in mine:
            assert doc["text"][c["char_start"] : c["char_end"]] == c["text"]
            assert c["doc_id"] == doc["doc_id"] and c["title"] == doc["title"]
            assert c["chunk_id"] == f"{doc['doc_id']}:{c['ordinal']}"

    # titles: DOCX and PDF metadata, HTML <title>, the Markdown H1, the text file's first heading
    assert docs["docs/guide-fr.docx"]["title"] == FR_TITLE
    assert docs["docs/dalil.pdf"]["title"] == AR_TITLE
    assert docs["docs/sous/page.html"]["title"] == HTML_TITLE
    assert docs["docs/notes.md"]["title"] == MD_HEADING
    assert docs["docs/ancien.txt"]["title"] == f"1. {TXT_HEADING}"

    # the legacy-order PDF: logical Arabic text, each sentence on its 1-based page
    pdf_chunks = [c for c in chunks if c["source"] == "docs/dalil.pdf"]
    by_page = {c["page"]: c for c in pdf_chunks}
    assert set(by_page) == {1, 2}
    assert nfkc(AR_PARAGRAPH) in by_page[1]["text"] and by_page[1]["heading"] == AR_HEADING
    assert nfkc(AR_RESIDENCE) in by_page[2]["text"] and by_page[2]["heading"] == AR_RESIDENCE_HEADING
    assert all(c["page_end"] == c["page"] for c in pdf_chunks)
    assert not any(
        "\ufb50" <= ch <= "\ufeff" for c in pdf_chunks for ch in c["text"]
    )  # no presentation forms
    # Arabic script Arabic; which of MSA (ar) or Darija (ary) is the language model's known weakness
    # (tests/text/test_langid.py::test_msa_administrative_text_is_ar)
    assert {c["lang"] for c in pdf_chunks} <= {"ar", "ary"} and docs["docs/dalil.pdf"]["lang"] in (
        "ar",
        "ary",
    )

    # the French DOCX: French chunks under their headings; no pages
    docx_chunks = [c for c in chunks if c["source"] == "docs/guide-fr.docx"]
    assert {c["lang"] for c in docx_chunks} == {"fr"} and docs["docs/guide-fr.docx"]["lang"] == "fr"
    assert {c["page"] for c in docx_chunks} == {None}
    delay = next(c for c in docx_chunks if FR_DELAY in c["text"])
    assert delay["heading"].endswith(FR_DELAY_HEADING)

    # the Windows-1256 text file is decoded, not mojibake
    (txt,) = [c for c in chunks if c["source"] == "docs/ancien.txt"]
    assert TXT_PARAGRAPH in txt["text"] and txt["lang"] in ("ar", "ary")
    assert {c["lang"] for c in chunks if c["source"] in ("docs/sous/page.html", "docs/notes.md")} == {"fr"}


def test_ingest_is_audited_with_its_chunks_and_its_failures(
    ws: Workspace, operator: Principal, ingested: Ingested
) -> None:
    result = ingested.result
    events = audit.query(ws.engine, action="collection.ingest", target=COLLECTION)
    ok = [e for e in events if e["outcome"] == "ok"]
    failed = [e for e in events if e["outcome"] == "failed"]
    assert len(ok) == 1 and len(failed) == 1
    assert ok[0]["actor"] == operator.actor
    assert ok[0]["detail"]["chunks"] == sum(f.chunks for f in result.files)
    assert ok[0]["detail"]["documents"] == 5
    assert ok[0]["detail"]["snapshot_id"] == result.chunks_snapshot_id
    assert sorted(ok[0]["detail"]["sources"]) == sorted(READABLE)
    assert failed[0]["detail"]["count"] == 2
    listed = {f["source"]: f["detail"] for f in failed[0]["detail"]["failed"]}
    assert set(listed) == set(BROKEN)
    assert all(listed[s].startswith(f"{n}: ") for s, n in BROKEN.items())


# --------------------------------------------------------------------------------------------------
# Search and cited answers over the ingested files


def test_darija_and_msa_questions_find_the_pdf_page_and_citations_quote_the_stored_text(
    ws: Workspace, operator: Principal, ingested: Ingested
) -> None:
    docs = document_rows(ws, operator)
    pdf = docs["docs/dalil.pdf"]
    cases = [
        ("فين كنقدر ناخد شهادة السكنى؟", 2, AR_RESIDENCE),  # Darija
        ("ما هي الوثائق المطلوبة لتقديم نسخة من البطاقة الوطنية؟", 1, AR_PARAGRAPH),  # MSA
    ]
    for question, page, sentence in cases:
        hits = search(ws, operator, COLLECTION, question, k=3).hits
        top = hits[0]
        assert (top.source, top.doc_id, top.page) == ("docs/dalil.pdf", pdf["doc_id"], page), question
        assert nfkc(sentence) in top.text
        assert pdf["text"][top.char_start : top.char_end] == top.text

        a = answer_question(ws, operator, COLLECTION, question, threshold=0.0)
        assert a.found, question
        c = a.citations[0]
        assert (c.doc_id, c.source, c.page) == (pdf["doc_id"], "docs/dalil.pdf", page)
        assert pdf["text"][c.char_start : c.char_end] == c.quote
        assert c.quote == nfkc(sentence)


# --------------------------------------------------------------------------------------------------
# Re-ingest: unchanged files are skipped, a changed file is replaced in one commit


def test_reingest_skips_unchanged_files_and_replaces_a_modified_one_in_one_commit(
    ws: Workspace, operator: Principal, ingested: Ingested
) -> None:
    ident = (operator.tenant, f"{COLLECTION}__chunks")
    table = ws.catalog.load_table(ident)
    snapshots, commits = len(table.snapshots()), len(table.metadata.metadata_log)
    before = {(c["chunk_id"], c["doc_id"], c["text"]) for c in chunk_rows(ws, operator)}

    again = ingest_paths(ws, operator, COLLECTION, [ingested.folder])
    assert {f.source: f.status for f in again.files} == {
        **dict.fromkeys(READABLE, "unchanged"),
        **dict.fromkeys(BROKEN, "failed"),
    }
    assert again.chunks_snapshot_id is None
    assert sum(f.chunks for f in again.files) == 0
    table = ws.catalog.load_table(ident)
    assert (len(table.snapshots()), len(table.metadata.metadata_log)) == (snapshots, commits)
    assert {(c["chunk_id"], c["doc_id"], c["text"]) for c in chunk_rows(ws, operator)} == before

    old_head = table.metadata.current_snapshot_id
    md = ingested.folder / "notes.md"
    md.write_text(f"# {MD_HEADING}\n\n{MD_NEW_PARAGRAPH}\n", "utf-8")
    md_id = ingested.report("docs/notes.md").doc_id
    changed = ingest_paths(ws, operator, COLLECTION, [ingested.folder])
    assert {f.source: f.status for f in changed.files} == {
        **dict.fromkeys(READABLE, "unchanged"),
        "docs/notes.md": "replaced",
        **dict.fromkeys(BROKEN, "failed"),
    }
    (md_report,) = [f for f in changed.files if f.status == "replaced"]
    assert md_report.doc_id == md_id

    # one commit: one new metadata file, its delete and append snapshots chained on the old head
    table = ws.catalog.load_table(ident)
    assert len(table.metadata.metadata_log) == commits + 1
    new = table.snapshots()[snapshots:]
    assert 1 <= len(new) <= 2
    assert new[0].parent_snapshot_id == old_head
    assert all(b.parent_snapshot_id == a.snapshot_id for a, b in zip(new, new[1:], strict=False))
    assert table.metadata.current_snapshot_id == new[-1].snapshot_id == changed.chunks_snapshot_id

    # the rows after are exactly: the other documents' chunks untouched, the new file's chunks
    after = chunk_rows(ws, operator)
    rows = {(c["chunk_id"], c["doc_id"], c["text"]) for c in after}
    assert {r for r in rows if r[1] != md_id} == {r for r in before if r[1] != md_id}
    md_rows = [c for c in after if c["doc_id"] == md_id]
    assert [c["text"] for c in md_rows] == [f"{MD_HEADING}\n\n{MD_NEW_PARAGRAPH}"]
    assert not any(MD_PARAGRAPH in c["text"] for c in after)  # the old text is gone
    counts = run_query(
        ws, operator, f"SELECT doc_id, count(*) AS n, count(DISTINCT chunk_id) AS d FROM {COLLECTION}__chunks "
        "GROUP BY doc_id",
    ).table.to_pylist()  # fmt: skip
    docs = document_rows(ws, operator)
    expected = {d["doc_id"]: d["chunks"] for d in docs.values()}
    assert {r["doc_id"]: r["n"] for r in counts} == expected  # no chunk duplicated
    assert all(r["n"] == r["d"] for r in counts)
    assert len(docs) == len(READABLE)  # one document row per file, the replaced one included
    assert docs["docs/notes.md"]["sha256"] == hashlib.sha256(md.read_bytes()).hexdigest()

    # search reads the new snapshot: the new text is found, the old one is not
    hits = search(ws, operator, COLLECTION, "duplicata permis perdu", k=3).hits
    assert hits[0].doc_id == md_id and MD_NEW_PARAGRAPH in hits[0].text
    old = search(ws, operator, COLLECTION, "immatriculation véhicules", k=10, mode="lexical").hits
    assert md_id not in {h.doc_id for h in old}


# --------------------------------------------------------------------------------------------------
# Labels: who sees a secret file, who may add one


def test_a_secret_file_is_invisible_below_its_clearance(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    create_collection(ws, operator, COLLECTION)
    public = tmp_path / "procedure.md"
    public.write_text(f"# {MD_HEADING}\n\n{MD_PARAGRAPH}\n", "utf-8")
    secret = tmp_path / "enquete.txt"
    secret.write_text(
        "Rapport confidentiel sur la fraude au permis de conduire.\n\n"
        "Les agents chargés de l'enquête et leurs numéros personnels figurent en annexe.\n",
        "utf-8",
    )
    ingest_paths(ws, operator, COLLECTION, [public])
    (report,) = ingest_paths(ws, operator, COLLECTION, [secret], classification=Classification.secret).files
    assert report.status == "added"
    secret_id = report.doc_id
    query = "rapport fraude permis enquête agents"

    # the admin sees it: the viewer's emptiness below is the label's doing
    assert search(ws, operator, COLLECTION, query, k=5).hits[0].doc_id == secret_id
    assert secret_id in {d["doc_id"] for d in list_documents(ws, operator, COLLECTION)}

    viewer = as_role(operator, Role.viewer)
    for mode in ("hybrid", "lexical", "dense"):
        hits = search(ws, viewer, COLLECTION, query, k=10, mode=mode).hits
        assert hits and secret_id not in {h.doc_id for h in hits}, mode
        assert not search(ws, viewer, COLLECTION, query, mode=mode, filters={"doc_id": [secret_id]}).hits
    assert [d["source"] for d in list_documents(ws, viewer, COLLECTION)] == ["procedure.md"]
    cited = answer_question(ws, viewer, COLLECTION, "Qui sont les agents de l'enquête ?", threshold=0.0)
    assert secret_id not in {c.doc_id for c in cited.citations}

    # SQL: a viewer may not query at all; an analyst (cleared for internal) sees no secret row
    with pytest.raises(Forbidden):
        run_query(ws, viewer, f"SELECT doc_id FROM {COLLECTION}__documents")
    analyst = as_role(operator, Role.analyst)
    assert {r["source"] for r in chunk_rows(ws, analyst)} == {"procedure.md"}
    assert set(document_rows(ws, analyst)) == {"procedure.md"}
    n = run_query(ws, analyst, f"SELECT count(*) AS n FROM {COLLECTION}__chunks WHERE doc_id = '{secret_id}'")
    assert n.table.column("n").to_pylist() == [0]
    assert {r["source"] for r in chunk_rows(ws, operator)} == {"procedure.md", "enquete.txt"}

    # relabelling a visible file as secret replaces its chunks: it disappears for the viewer too
    (relabelled,) = ingest_paths(
        ws, operator, COLLECTION, [public], classification=Classification.secret
    ).files
    assert relabelled.status == "replaced"
    assert search(ws, viewer, COLLECTION, "permis de conduire immatriculation", k=10).hits == []
    assert list_documents(ws, viewer, COLLECTION) == []
    assert chunk_rows(ws, analyst) == []


def test_adding_documents_needs_a_steward_cleared_for_their_label(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    create_collection(ws, operator, COLLECTION)
    create_collection(ws, operator, "coffre", default_classification=Classification.secret)
    doc = tmp_path / "note.md"
    doc.write_text(f"# {MD_HEADING}\n\n{MD_PARAGRAPH}\n", "utf-8")
    steward = as_role(operator, Role.steward, clearance=Classification.internal)
    viewer = as_role(operator, Role.viewer)

    with pytest.raises(Forbidden, match="internal.*secret"):
        ingest_paths(ws, steward, COLLECTION, [doc], classification=Classification.secret)
    with pytest.raises(Forbidden, match="secret"):  # the collection's default label is checked too
        ingest_paths(ws, steward, "coffre", [doc])
    with pytest.raises(Forbidden, match="steward"):
        ingest_paths(ws, viewer, COLLECTION, [doc])
    with pytest.raises(Forbidden, match="steward"):
        ingest_paths(ws, viewer, COLLECTION, [doc], classification=Classification.public)
    assert list_documents(ws, operator, COLLECTION) == [] and list_documents(ws, operator, "coffre") == []
    assert audit.query(ws.engine, action="collection.ingest") == []

    # within their clearance the same steward may add it
    (report,) = ingest_paths(ws, steward, COLLECTION, [doc], classification=Classification.internal).files
    assert report.status == "added"
    assert [d["classification"] for d in list_documents(ws, operator, COLLECTION)] == ["internal"]


# --------------------------------------------------------------------------------------------------
# Known bugs (see the report): kept as strict expected failures so that a fix is noticed


def test_the_same_file_twice_in_one_call_is_stored_once(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    create_collection(ws, operator, COLLECTION)
    doc = tmp_path / "note.md"
    doc.write_text(f"# {MD_HEADING}\n\n{MD_PARAGRAPH}\n", "utf-8")
    ingest_paths(ws, operator, COLLECTION, [doc, doc])
    rows = chunk_rows(ws, operator)
    assert len({r["chunk_id"] for r in rows}) == len(rows)
    assert len(document_rows(ws, operator)) == 1
    assert len(run_query(ws, operator, f"SELECT doc_id FROM {COLLECTION}__documents").table) == 1
