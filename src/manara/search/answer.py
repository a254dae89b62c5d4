"""Cited answers: the sentence(s) of the retrieved chunks that answer the question, or an honest "not found".

1. Hybrid search (same access rules) gives the best chunks.
2. Their sentences are embedded and scored by cosine with the question (the query vector search
   already computed), plus a small share of the question's terms they contain.
3. The best sentence is the answer, with the next one when the best announces it (ends with ':').
   When a sentence in the question's language scores within `LANG_MARGIN` of the best, it is
   preferred: a Darija or MSA question gets the Arabic sheet, a French one the French sheet.
4. Below `threshold` (calibrated on the evaluation sets: docs/evaluation.md) there is no answer.
Every citation is (document, page, [start, end) in the document's text, the quoted text), and is
checked against the stored chunk before it is returned. Optional generation through the
organisation's OpenAI-compatible chat server (`chat_model`) keeps these citations and only keeps
a generated answer whose every [n] names a passage it was given.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from manara.govern import audit
from manara.govern.principal import Principal
from manara.models.embeddings import get_backend, similarities
from manara.search import analyze
from manara.search.chunk import sentence_spans
from manara.search.collections import get_collection
from manara.search.retrieve import SearchHit, search
from manara.workspace import Workspace

LANG_MARGIN = 0.02
TERM_WEIGHT = 0.05
TYPE_BONUS = 0.06  # a sentence of the kind the question asks for (a fee, a delay, a place, a list of papers)
TOP_CHUNK_BONUS = 0.03
CONTEXT_CHUNKS = 6
_FAMILY = {"ar": "ar", "ary": "ar", "ary-Latn": "ar", "fr": "fr", "en": "en", "zgh": "zgh", "zgh-Latn": "zgh"}
_WORDY = re.compile(r"\w", re.UNICODE)

# (question cues, answer shape) per kind of question, in Darija (both scripts), MSA, French, English
_KINDS = {
    "cost": (
        r"بشحال|بكم|كم (?:يكلف|تبلغ|ثمن|رسوم)|ثمن|تمن|رسوم|واجب|combien co[uû]t|co[uû]te|prix|frais|tarif|"
        r"\bb?ch[h7]?al\b|bch7al|how much|\bfee|\bcost",
        r"\d+\s*(?:درهم|دراهم|dh\b|mad\b|dirham)|مجان|gratuit|\bfree\b",
    ),
    "duration": (
        r"مدة|شحال د(?:يال)? ?الوقت|كم من الوقت|متى|إمتى|امتى|d[ée]lai|combien de temps|quand|how long|\bwhen\b|"
        r"\bimta\b|lw9t|lwa9t",
        r"\d+\s*(?:يوم|أيام|ايام|أسبوع|أسابيع|شهر|أشهر|سنة|سنوات|jours?|semaines?|mois|ans?|days?|weeks?|months?|years?)"
        r"|أسبوعين|شهرين|يومين|نفس اليوم|imm[ée]diat",
    ),
    "place": (
        r"فين|أين|اين|فاين|\bo[uù]\b|where|\bfin\b|\bfine\b",
        r"مقر|مكتب|مركز|مصلحة|الدائرة|العمالة|الباشوية|القيادة|الجماعة|المقاطعة|بوابة|pr[ée]fecture|consulat|centre|"
        r"bureau|commune|mairie|ca[iï]dat|arrondissement|portail|en ligne|guichet|agence",
    ),
    "documents": (
        r"وثائق|الوثائق|أوراق|الاوراق|لوراق|papiers|pi[èe]ces|documents|dossier|wra9|lwra9|lwata2i9",
        r"الوثائق المطلوبة|صورة|صور|نسخة|pi[èe]ces? [àa] fournir|photo|copie|:",
    ),
}
_KIND_RE = {k: (re.compile(q, re.I), re.compile(a, re.I)) for k, (q, a) in _KINDS.items()}


def question_kinds(question: str) -> set[str]:
    return {k for k, (cue, _) in _KIND_RE.items() if cue.search(question)}


def answers_kind(sentence: str, kinds: set[str]) -> bool:
    return any(_KIND_RE[k][1].search(sentence) for k in kinds)


@dataclass
class Citation:
    n: int
    doc_id: str
    title: str | None
    source: str | None
    page: int | None
    char_start: int  # in the document's text
    char_end: int
    quote: str
    chunk_id: str


@dataclass
class Answer:
    question: str
    collection: str
    found: bool
    answer: str | None
    lang: str | None  # language of the answer's source
    score: float
    threshold: float
    citations: list[Citation] = field(default_factory=list)
    generated: bool = False
    took_ms: float = 0.0
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Candidate:
    hit: SearchHit
    start: int  # in the chunk text
    end: int
    text: str
    score: float
    similarity: float = 0.0


def _candidates(hits: list[SearchHit]) -> list[_Candidate]:
    out = []
    for hit in hits:
        for s, e in sentence_spans(hit.text, 0):
            text = hit.text[s:e].strip()
            if len(text) >= 12 and _WORDY.search(text):
                lead = len(hit.text[s:e]) - len(hit.text[s:e].lstrip())
                out.append(_Candidate(hit, s + lead, s + lead + len(text), text, 0.0))
    return out


def answer_question(
    ws: Workspace,
    principal: Principal,
    collection: str,
    question: str,
    *,
    threshold: float | None = None,
    filters: dict[str, list[str]] | None = None,
    generate: bool | None = None,
) -> Answer:
    t0 = time.perf_counter()
    threshold = ws.settings.answer_threshold if threshold is None else threshold
    info = get_collection(ws, principal, collection)
    result = search(ws, principal, info, question, k=CONTEXT_CHUNKS, filters=filters, audited=False)
    out = Answer(question, info.name, False, None, None, 0.0, threshold)
    cands = _candidates(result.hits)
    if cands and result.query_vector is not None:
        backend = get_backend(info.embedding_model, _key(ws))
        vectors = backend.embed_passages([c.text for c in cands])
        cos = similarities(vectors, result.query_vector)
        wanted = set(analyze.analyze_query(question).terms)
        kinds = question_kinds(question)
        top = result.hits[0]
        for c, sim in zip(cands, cos, strict=True):
            words = set(analyze.terms(c.text))
            c.similarity = float(sim)
            c.score = (
                c.similarity
                + TERM_WEIGHT * (len(words & wanted) / max(1, len(wanted)))
                + (TYPE_BONUS if kinds and answers_kind(c.text, kinds) else 0.0)
                + (TOP_CHUNK_BONUS if c.hit is top else 0.0)
            )
        best = max(cands, key=lambda c: c.score)
        family = _FAMILY.get(result.lang)
        same_lang = [
            c
            for c in cands
            if _FAMILY.get(c.hit.lang or "") == family and c.score >= best.score - LANG_MARGIN
        ]
        chosen = max(same_lang, key=lambda c: c.score) if same_lang else best
        # the threshold reads the plain similarity: how close the best evidence is to the question at all
        out.score = round(max(c.similarity for c in cands), 4)
        if out.score >= threshold:
            picked = [chosen]
            if chosen.text.endswith(":"):
                following = [c for c in cands if c.hit is chosen.hit and c.start > chosen.end]
                if following:
                    picked.append(min(following, key=lambda c: c.start))
            out.found = True
            out.answer = " ".join(c.text for c in picked)
            out.lang = chosen.hit.lang
            out.citations = [_cite(i + 1, c) for i, c in enumerate(picked)]
            _check_citations(ws, principal, info.documents_table, out.citations)
    if not out.found:
        out.message = "no answer found in the documents you may read"
    if out.found and (generate if generate is not None else bool(ws.settings.chat_model)):
        from manara.search.generate import generate_answer

        generate_answer(ws, out, result.hits)
    out.took_ms = (time.perf_counter() - t0) * 1000
    audit.write(
        ws.engine,
        audit.EventFields(principal.actor, "collection.ask", tenant=principal.tenant, target=info.name,
                          detail={"question": question[:200], "found": out.found, "score": out.score,
                                  "citations": [c.chunk_id for c in out.citations]},
                          request_id=audit.request_id_var.get()),
    )  # fmt: skip
    return out


def _cite(n: int, c: _Candidate) -> Citation:
    h = c.hit
    return Citation(n, h.doc_id, h.title, h.source, h.page, h.char_start + c.start, h.char_start + c.end,
                    c.text, h.chunk_id)  # fmt: skip


def _check_citations(
    ws: Workspace, principal: Principal, documents_table: str, citations: list[Citation]
) -> None:
    """Every citation must quote its document's stored text at its offsets (else it is dropped)."""
    from manara.lake.catalog import isin

    table = ws.catalog.load_table((principal.tenant, documents_table))
    ids = sorted({c.doc_id for c in citations})
    rows = (
        table.scan(row_filter=isin("doc_id", ids), selected_fields=("doc_id", "text")).to_arrow().to_pylist()
    )
    texts = {r["doc_id"]: r["text"] for r in rows}
    bad = [c for c in citations if texts.get(c.doc_id, "")[c.char_start : c.char_end] != c.quote]
    if bad:
        raise RuntimeError(f"citation offsets do not match the stored documents: {[c.chunk_id for c in bad]}")


def _key(ws: Workspace) -> str | None:
    key = ws.settings.embedding_api_key
    return key.get_secret_value() if key else None
