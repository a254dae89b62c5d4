"""Collections, document ingest, hybrid search and access control, through the service functions."""

from __future__ import annotations

from dataclasses import replace

import pytest
from search_docs import DOCS

from manara.errors import BadRequest, CollectionNotFound, Conflict, Forbidden, InvalidName
from manara.govern import audit
from manara.govern.principal import Principal
from manara.lake.sql import run_query
from manara.meta.models import Classification, Role
from manara.search.collections import create_collection, list_collections
from manara.search.documents import list_documents
from manara.search.ingest import TextDocument, ingest_texts
from manara.search.retrieve import Rankings, search
from manara.workspace import Workspace


def as_role(operator: Principal, role: Role, clearance: Classification | None = None) -> Principal:
    return replace(operator, role=role, actor=f"test:{role.value}", clearance=clearance)


def test_darija_question_finds_the_arabic_sheet(
    ws: Workspace, operator: Principal, docs_collection: str
) -> None:
    result = search(ws, operator, docs_collection, "كيفاش نجدد البطاقة الوطنية ديالي؟", k=3)
    assert result.hits[0].doc_id == "cin-ar"
    assert result.lang in ("ary", "ar")


def test_arabizi_is_also_searched_in_arabic_script(
    ws: Workspace, operator: Principal, docs_collection: str
) -> None:
    result = search(ws, operator, docs_collection, "kifach njded lbitaqa lwatania", k=3, mode="lexical")
    assert result.arabizi
    assert result.hits and result.hits[0].doc_id == "cin-ar"  # only the Arabic-script form can match it


def test_french_question_and_highlights_land_on_the_original_characters(
    ws: Workspace, operator: Principal, docs_collection: str
) -> None:
    result = search(ws, operator, docs_collection, "quelles pièces pour le passeport biometrique", k=3)
    top = result.hits[0]
    assert top.doc_id == "passeport-fr"
    marked = {top.snippet[s:e].lower() for s, e in top.highlights}
    assert "biométrique" in marked  # the query's unaccented word highlights the accented original
    assert "passeport" in marked


def test_a_darija_question_finds_a_french_only_document(
    ws: Workspace, operator: Principal, docs_collection: str
) -> None:
    result = search(ws, operator, docs_collection, "شنو خاصني باش نصرح بالضريبة على القيمة المضافة؟", k=3)
    assert "tva-fr" in [h.doc_id for h in result.hits]


def test_a_french_loanword_in_arabic_letters_reaches_the_french_sheet(
    ws: Workspace, operator: Principal, docs_collection: str
) -> None:
    question = "ضاع ليا البيرمي، شنو ندير؟"  # "I lost my permis": only the French sheet covers it
    lexical = search(ws, operator, docs_collection, question, k=3, mode="lexical").hits
    assert lexical and lexical[0].doc_id == "permis-fr"  # through the phonetic keys alone

    # the small model alone ranks it 4th of 5; the phonetic match lifts it in hybrid search
    def rank(mode: str) -> int:
        hits = search(ws, operator, docs_collection, question, k=5, mode=mode).hits
        return [h.doc_id for h in hits].index("permis-fr")

    assert rank("hybrid") < rank("dense")


def test_fusion_does_not_count_missing_bm25_against_a_chunk_in_another_script() -> None:
    # row 0: Arabic chunk, found by both; row 1: French chunk BM25 cannot see, the closest by meaning
    ranks = Rankings(lexical=[(0, 9.0), (2, 1.0)], dense=[(1, 0.90), (0, 0.88), (2, 0.80)], coverage=1.0,
                     query_vector=None)  # fmt: skip
    assert [r for r, _ in ranks.fused("hybrid")][:2] == [0, 1]  # same script everywhere: BM25 decides
    ranks.cross_script = frozenset({1})
    fused = ranks.fused("hybrid")
    assert [r for r, _ in fused][:2] == [1, 0]
    assert dict(fused)[1] == pytest.approx(1.0)  # its cosine, with no lexical penalty


def test_metadata_filters(ws: Workspace, operator: Principal, docs_collection: str) -> None:
    result = search(ws, operator, docs_collection, "passeport", k=10, filters={"lang": ["ar"]})
    assert result.hits and {h.lang for h in result.hits} == {"ar"}
    with pytest.raises(BadRequest, match="unknown filter"):
        search(ws, operator, docs_collection, "passeport", filters={"colour": ["red"]})


def test_viewer_never_sees_a_chunk_above_their_clearance(
    ws: Workspace, operator: Principal, docs_collection: str
) -> None:
    query = "rapport enquête fraude passeport agents"
    admin_hits = search(ws, operator, docs_collection, query, k=10).hits
    assert admin_hits[0].doc_id == "enquete-secret"
    viewer = as_role(operator, Role.viewer)
    for mode in ("hybrid", "lexical", "dense"):
        hits = search(ws, viewer, docs_collection, query, k=10, mode=mode).hits
        assert hits and "enquete-secret" not in {h.doc_id for h in hits}
        assert all(h.classification in ("public", "internal") for h in hits)
        # asking for it by filter does not help
        assert not search(
            ws, viewer, docs_collection, query, mode=mode, filters={"doc_id": ["enquete-secret"]}
        ).hits


def test_access_is_decided_before_ranking(ws: Workspace, operator: Principal, docs_collection: str) -> None:
    """The viewer's ranking equals a ranking over a collection that never held the secret document."""
    create_collection(ws, operator, "public_only")
    ingest_texts(ws, operator, "public_only", DOCS)
    viewer = as_role(operator, Role.viewer)
    query = "passeport biométrique fraude"
    with_secret = search(ws, viewer, docs_collection, query, k=5, mode="lexical").hits
    without = search(ws, viewer, "public_only", query, k=5, mode="lexical").hits
    # BM25 statistics include the secret document, but which chunks compete and their order do not change
    assert [h.chunk_id for h in with_secret] == [h.chunk_id for h in without]


def test_collection_read_role_and_listing(ws: Workspace, operator: Principal) -> None:
    create_collection(ws, operator, "hr", read_role=Role.steward)
    viewer = as_role(operator, Role.viewer)
    assert "hr" not in [c.name for c in list_collections(ws, viewer)]
    with pytest.raises(Forbidden, match="steward"):
        search(ws, viewer, "hr", "salaire")
    with pytest.raises(CollectionNotFound):
        search(ws, operator, "nope", "x")
    with pytest.raises(Forbidden):
        create_collection(ws, viewer, "mine")
    with pytest.raises(Conflict):
        create_collection(ws, operator, "hr")
    with pytest.raises(InvalidName):
        create_collection(ws, operator, "bad__name")
    denied = audit.query(ws.engine, action="collection.read", outcome="denied")
    assert denied and denied[0]["target"] == "hr"


def test_sql_sees_collection_tables_with_the_same_row_filter(
    ws: Workspace, operator: Principal, docs_collection: str
) -> None:
    sql = "SELECT doc_id FROM procedures__documents ORDER BY doc_id"
    everyone = run_query(ws, operator, sql).table.column("doc_id").to_pylist()
    assert "enquete-secret" in everyone
    analyst = as_role(operator, Role.analyst)
    seen = run_query(ws, analyst, sql).table.column("doc_id").to_pylist()
    assert seen == sorted(d.doc_id for d in DOCS)
    chunks = run_query(
        ws, analyst, "SELECT count(*) AS n FROM procedures__chunks WHERE doc_id = 'enquete-secret'"
    )
    assert chunks.table.column("n").to_pylist() == [0]


def test_reingest_unchanged_does_nothing_and_changed_replaces(
    ws: Workspace, operator: Principal, docs_collection: str
) -> None:
    again = ingest_texts(ws, operator, docs_collection, DOCS)
    assert again.count("unchanged") == len(DOCS) and again.chunks_snapshot_id is None
    changed = TextDocument(
        "tva-fr", "Déclaration de TVA : désormais exclusivement en ligne, chaque trimestre.", "TVA", "fr"
    )
    result = ingest_texts(ws, operator, docs_collection, [changed])
    assert [f.status for f in result.files] == ["replaced"]
    rows = run_query(ws, operator, "SELECT text FROM procedures__chunks WHERE doc_id = 'tva-fr'").table
    assert rows.column("text").to_pylist() == [changed.text]  # the old chunks are gone, none duplicated
    hits = search(ws, operator, docs_collection, "déclaration TVA trimestre", k=10).hits
    assert [h.text for h in hits if h.doc_id == "tva-fr"] == [changed.text]
    docs = [d["doc_id"] for d in list_documents(ws, operator, docs_collection)]
    assert sorted(docs) == sorted([d.doc_id for d in DOCS] + ["enquete-secret"])


def test_search_is_audited_and_bad_queries_are_refused(
    ws: Workspace, operator: Principal, docs_collection: str
) -> None:
    search(ws, operator, docs_collection, "passeport")
    events = audit.query(ws.engine, action="collection.search")
    assert events and events[0]["detail"]["query"] == "passeport"
    for bad in ("", "   "):
        with pytest.raises(BadRequest):
            search(ws, operator, docs_collection, bad)
    with pytest.raises(BadRequest):
        search(ws, operator, docs_collection, "x", mode="psychic")


def test_empty_collection_answers_no_hits(ws: Workspace, operator: Principal) -> None:
    create_collection(ws, operator, "empty")
    assert search(ws, operator, "empty", "anything").hits == []
