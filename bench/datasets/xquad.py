"""XQuAD as a cross-lingual retrieval set: Arabic question → English paragraph.

Sources: ``xquad/xquad.ar.json`` and ``xquad/xquad.en.json`` (SQuAD JSON, 1,190 questions over 240
paragraphs, translated from each other). Corpus: the English paragraphs (``lang`` "en"); queries:
the Arabic questions (``lang`` "ar"), each relevant to the English paragraph parallel to its Arabic
paragraph.

The two files are not trusted to be parallel: the English paragraph of an Arabic question is found
through the question id, every question id must be in both files, and all questions of one Arabic
paragraph must land on the same English paragraph (and at the same article/paragraph position).
"""

from __future__ import annotations

from pathlib import Path

from bench.datasets.common import (
    Converted,
    Doc,
    Query,
    finish,
    load_squad,
    merge_identical_queries,
    normalize_space,
)

NAME = "xquad-ar-en"
SOURCE_AR = Path("xquad") / "xquad.ar.json"
SOURCE_EN = Path("xquad") / "xquad.en.json"


class NotParallel(ValueError):
    """The Arabic and English XQuAD files do not line up."""


def _english_corpus(shared: Path) -> tuple[list[Doc], dict[str, str], dict[tuple[int, int], str]]:
    """English paragraphs as docs, plus question id → doc id and (article, paragraph) → doc id."""
    docs: list[Doc] = []
    by_text: dict[str, str] = {}
    by_question: dict[str, str] = {}
    by_position: dict[tuple[int, int], str] = {}
    for a, article in enumerate(load_squad(shared / SOURCE_EN)):
        title = str(article.get("title") or "").replace("_", " ").strip() or None
        for p, paragraph in enumerate(article.get("paragraphs", [])):
            text = str(paragraph["context"]).strip()
            key = normalize_space(text)
            doc_id = by_text.get(key)
            if doc_id is None:
                doc_id = f"xquad-en-p{len(docs) + 1:04d}"
                by_text[key] = doc_id
                docs.append(Doc(id=doc_id, text=text, title=title, lang="en"))
            by_position[(a, p)] = doc_id
            for qa in paragraph.get("qas", []):
                qid = str(qa["id"])
                if qid in by_question:
                    raise NotParallel(f"{SOURCE_EN}: question id {qid} appears twice")
                by_question[qid] = doc_id
    return docs, by_question, by_position


def convert(shared: Path, out_dir: Path, max_queries: int = 0, max_corpus: int = 0) -> Converted:
    """Write ``<out_dir>/xquad-ar-en/{corpus,queries}.jsonl`` from the shared data folder ``shared``."""
    docs, en_by_question, en_by_position = _english_corpus(shared)
    queries: list[Query] = []
    ar_ids: set[str] = set()
    misplaced = 0
    for a, article in enumerate(load_squad(shared / SOURCE_AR)):
        for p, paragraph in enumerate(article.get("paragraphs", [])):
            targets = set()
            for qa in paragraph.get("qas", []):
                qid = str(qa["id"])
                if qid not in en_by_question:
                    raise NotParallel(f"Arabic question {qid} has no English counterpart")
                doc_id = en_by_question[qid]
                targets.add(doc_id)
                ar_ids.add(qid)
                question = str(qa["question"]).strip()
                if question:
                    queries.append(Query(id=qid, query=question, relevant=[doc_id], lang="ar"))
            if len(targets) > 1:
                raise NotParallel(f"Arabic paragraph {a}/{p} maps to several English paragraphs: {targets}")
            if targets and en_by_position.get((a, p)) not in targets:
                misplaced += 1
    extra = set(en_by_question) - ar_ids
    if extra:
        raise NotParallel(f"{len(extra)} English questions have no Arabic counterpart, e.g. {min(extra)}")
    if misplaced:
        notes = [
            f"parallel by question id ({len(ar_ids)} ids), but {misplaced} paragraphs at other positions"
        ]
    else:
        notes = [f"parallel by question id and position: all {len(ar_ids)} ids match"]
    merged = merge_identical_queries(queries)
    if merged:
        notes.append(f"{merged} identical questions share qrels")
    return finish(NAME, out_dir, docs, queries, max_queries=max_queries, max_corpus=max_corpus, notes=notes)
