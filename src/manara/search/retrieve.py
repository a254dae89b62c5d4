"""Hybrid retrieval: BM25 over Manara terms + dense vectors, fused by a weighted sum of normalised scores.

1. Access first: the collection's read role is checked, then a filter of the classifications the
   caller is cleared for and the read roles they hold (plus the caller's metadata filters) is
   applied inside both searches, before any ranking.
2. Lexical: BM25 (tantivy) over the query's Manara terms, Arabizi also in Arabic script.
3. Dense: the query embedded by the collection's model (the Arabizi query's Arabic-script form
   too, averaged), exact cosine over the allowed chunks.
4. Fusion: a convex combination of the two scores, each min-max normalised over its own
   candidates: 0.2 × BM25 + 0.8 × cosine (a chunk missing from one list scores 0 there). Chosen
   over reciprocal rank fusion by measurement (bench/fusion_sweep.py, docs/decisions/0004): RRF
   gives a weak retriever's rank 1 the same pull as a strong one's, which dragged cross-lingual
   sets (Arabic question, English passages: BM25 recall@5 0.12) from MRR 0.73 to 0.55, while the
   convex rule beats dense alone on every set measured.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pyiceberg.exceptions import NoSuchTableError

from manara.errors import BadRequest
from manara.govern import audit
from manara.govern.principal import Principal
from manara.models.embeddings import get_backend
from manara.search import analyze
from manara.search.collections import CollectionInfo, allowed_classifications, allowed_roles, get_collection
from manara.search.index import CollectionIndex, Filter, open_index
from manara.text.langid import ARAB, LANG_SCRIPT, LATN
from manara.workspace import Workspace

MODES = ("hybrid", "lexical", "dense")
FUSION_ALPHA = 0.2  # weight of normalised BM25 in hybrid scores
# Cosines of a small collection's few candidates can differ by 0.01; scaled to 0..1 that would be
# treated as a confident gap. The dense scale spans at least 0.05 (top-100 spreads are wider).
DENSE_MIN_SPREAD = 0.05
# A question written mostly in a script the embedding model never saw (Tifinagh for the bundled
# model) gets this BM25 weight instead (bench/fusion_sweep.py on Seed zgh→en and the gold set's
# Tamazight questions).
UNCOVERED_ALPHA = 0.7
_TIFINAGH = re.compile(r"[\u2d30-\u2d7f]")
_LETTER = re.compile(r"[^\W\d_]")
RRF_K = 60  # for bench/fusion_sweep.py's comparison
# The scripts a chunk's terms are indexed in: Arabizi chunks are also indexed in Arabic script.
_LEXICAL_SCRIPTS = {lang: frozenset({script}) for lang, script in LANG_SCRIPT.items()} | {
    "ary-Latn": frozenset({LATN, ARAB})
}
FILTERABLE = ("lang", "doc_id", "source", "classification")


@dataclass
class SearchHit:
    chunk_id: str
    doc_id: str
    title: str | None
    source: str | None
    page: int | None
    page_end: int | None
    char_start: int  # of the chunk, in the document's text
    char_end: int
    heading: str | None
    lang: str | None
    classification: str
    score: float
    lexical_rank: int | None
    dense_rank: int | None
    dense_score: float | None
    text: str
    snippet: str
    highlights: list[tuple[int, int]]  # [start, end) in `snippet`
    snippet_start: int  # the snippet's offset in the chunk text


@dataclass
class SearchResult:
    collection: str
    query: str
    lang: str
    arabizi: bool
    mode: str
    lexical_coverage: float  # share of the query's IDF mass found in the collection (0: no word of it occurs)
    hits: list[SearchHit]
    took_ms: float
    query_vector: np.ndarray | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("query_vector")
        for h in out["hits"]:
            h["highlights"] = [list(s) for s in h["highlights"]]
        return out


def collection_index(ws: Workspace, principal: Principal, info: CollectionInfo) -> CollectionIndex | None:
    """The index of the chunks table's current snapshot (None: nothing ingested yet)."""
    try:
        table = ws.catalog.load_table((principal.tenant, info.chunks_table))
    except NoSuchTableError:
        return None
    snapshot = table.metadata.current_snapshot()
    if snapshot is None:
        return None
    dim = get_backend(info.embedding_model, _key(ws)).dim
    folder = ws.settings.home / "index" / principal.tenant / info.name
    return open_index(
        folder, snapshot.snapshot_id,
        lambda: table.scan(snapshot_id=snapshot.snapshot_id).to_arrow(), dim,
    )  # fmt: skip


def _key(ws: Workspace) -> str | None:
    key = ws.settings.embedding_api_key
    return key.get_secret_value() if key else None


def access_filter(principal: Principal, filters: dict[str, list[str]] | None = None) -> Filter:
    """What the caller may see, intersected with what they asked for."""
    flt = Filter(
        {"classification": allowed_classifications(principal), "read_role": allowed_roles(principal)}
    )
    for name, values in (filters or {}).items():
        if name not in FILTERABLE:
            raise BadRequest(f"unknown filter '{name}': filter on {', '.join(FILTERABLE)}")
        if isinstance(values, str):
            values = [values]
        if name == "classification":
            values = [v for v in values if v in flt.allowed["classification"]]
        flt = flt.with_(name, values)
    return flt


def lexical_coverage(index: CollectionIndex, terms: list[str], field: str = "body") -> float:
    """The share of the query's IDF mass that occurs in the collection (0..1)."""
    if not terms or not index.size:
        return 0.0
    n = index.size
    found = total = 0.0
    for t in terms:
        df = index.doc_freq(t, field)
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5)) if df else math.log(1 + (n + 0.5) / 0.5)
        total += idf
        if df:
            found += idf
    return found / total if total else 0.0


def search(
    ws: Workspace,
    principal: Principal,
    collection: str | CollectionInfo,
    query: str,
    *,
    k: int = 10,
    mode: str = "hybrid",
    filters: dict[str, list[str]] | None = None,
    depth: int | None = None,
    audited: bool = True,
) -> SearchResult:
    """The `k` best chunks the caller may read, fused from lexical and dense retrieval.

    `collection` is a name, or the `CollectionInfo` that `get_collection` already returned to this
    caller (so a service that needs it too does not read and check it twice).
    """
    t0 = time.perf_counter()
    if mode not in MODES:
        raise BadRequest(f"unknown search mode '{mode}': use {', '.join(MODES)}")
    if not query.strip():
        raise BadRequest("the query is empty")
    if not 1 <= k <= 200:
        raise BadRequest("k must be between 1 and 200")
    info = (
        collection
        if isinstance(collection, CollectionInfo)
        else get_collection(ws, principal, collection, action="searching")
    )
    flt = access_filter(principal, filters)
    qa = analyze.analyze_query(query)
    index = collection_index(ws, principal, info)
    result = SearchResult(info.name, query, qa.lang, qa.arabizi, mode, 0.0, [], 0.0)
    if index is not None:
        _rank(ws, info, index, qa, flt, result, k, depth or max(50, 5 * k))
    result.took_ms = (time.perf_counter() - t0) * 1000
    if audited:
        audit.write(
            ws.engine,
            audit.EventFields(principal.actor, "collection.search", tenant=principal.tenant, target=info.name,
                              detail={"query": query[:200], "mode": mode, "hits": len(result.hits),
                                      "chunks": [h.chunk_id for h in result.hits]},
                              request_id=audit.request_id_var.get()),
        )  # fmt: skip
    return result


@dataclass
class Rankings:
    """The candidates of each retriever, best first, as (row, score); and the lexical coverage."""

    lexical: list[tuple[int, float]]
    dense: list[tuple[int, float]]
    coverage: float
    query_vector: np.ndarray | None
    alpha: float = FUSION_ALPHA
    # candidates written in a script the query's terms cannot match (a French chunk for an Arabic
    # question): BM25's silence on them is no evidence against them
    cross_script: frozenset[int] = frozenset()

    def fused(self, mode: str, alpha: float | None = None) -> list[tuple[int, float]]:
        """Convex fusion of min-max-normalised scores: alpha·BM25 + (1-alpha)·cosine.

        A cross-script candidate cannot score on BM25, so its missing lexical part is taken as its
        dense score (and any lexical score it does have, digits or names, is added): cosine +
        alpha·BM25. Without that, hybrid search pushes the French sheet of a topic below the
        Arabic one for an Arabic question (gold set recall@5 0.540 → 0.605, bench/fusion_sweep.py).
        """
        alpha = self.alpha if alpha is None else alpha
        if mode == "lexical":
            return self.lexical
        if mode == "dense":
            return self.dense
        lexical, dense = _minmax(self.lexical), _minmax(self.dense, DENSE_MIN_SPREAD)
        scores = {}
        for r in lexical.keys() | dense:
            lex, cos = lexical.get(r, 0.0), dense.get(r, 0.0)
            scores[r] = cos + alpha * lex if r in self.cross_script else alpha * lex + (1 - alpha) * cos
        return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _minmax(pairs: list[tuple[int, float]], min_spread: float = 0.0) -> dict[int, float]:
    """Scores scaled to [0, 1] over the candidates; `min_spread` keeps a tiny spread from becoming 0..1."""
    if not pairs:
        return {}
    values = [v for _, v in pairs]
    hi = max(values)
    lo = min(min(values), hi - min_spread)
    return {r: (v - lo) / (hi - lo) if hi > lo else 1.0 for r, v in pairs}


def rankings(
    ws: Workspace, info: CollectionInfo, index: CollectionIndex, qa: analyze.QueryAnalysis, flt: Filter,
    depth: int, mode: str = "hybrid",
) -> Rankings:  # fmt: skip
    lexical: list[tuple[int, float]] = []
    dense: list[tuple[int, float]] = []
    coverage, qvec, alpha = 0.0, None, FUSION_ALPHA
    if mode in ("hybrid", "lexical"):
        lexical = index.lexical(qa.terms, flt, depth, qa.skeletons, qa.phonetic)
        coverage = max(lexical_coverage(index, qa.terms), lexical_coverage(index, qa.skeletons, "skel"))
    if mode in ("hybrid", "dense"):
        backend = get_backend(info.embedding_model, _key(ws))
        if "Tfng" in backend.uncovered_scripts and _tifinagh_share(qa.text) >= 0.5:
            alpha = UNCOVERED_ALPHA
        qvec = backend.embed_queries(qa.dense_texts).mean(axis=0)
        qvec /= max(float(np.linalg.norm(qvec)), 1e-12)
        dense = index.dense(qvec, index.mask(flt), depth)
    cross: frozenset[int] = frozenset()
    if mode == "hybrid" and alpha == FUSION_ALPHA:
        cross = _cross_script(index, qa, {r for r, _ in lexical} | {r for r, _ in dense})
    return Rankings(lexical, dense, coverage, qvec, alpha, cross)


def _cross_script(index: CollectionIndex, qa: analyze.QueryAnalysis, rows: set[int]) -> frozenset[int]:
    """The `rows` whose indexed terms share no script with the query's terms."""
    query_scripts = frozenset({LATN, ARAB}) if qa.arabizi else _LEXICAL_SCRIPTS.get(qa.lang)
    if not query_scripts or not rows:
        return frozenset()
    ordered = sorted(rows)
    return frozenset(
        r
        for r, lang in zip(ordered, index.langs(ordered), strict=True)
        if lang in _LEXICAL_SCRIPTS and not _LEXICAL_SCRIPTS[lang] & query_scripts
    )


def _tifinagh_share(text: str) -> float:
    letters = len(_LETTER.findall(text))
    return len(_TIFINAGH.findall(text)) / letters if letters else 0.0


def _rank(
    ws: Workspace,
    info: CollectionInfo,
    index: CollectionIndex,
    qa: analyze.QueryAnalysis,
    flt: Filter,
    result: SearchResult,
    k: int,
    depth: int,
) -> None:
    ranks = rankings(ws, info, index, qa, flt, depth, result.mode)
    result.lexical_coverage = ranks.coverage
    result.query_vector = ranks.query_vector
    fused = dict(ranks.fused(result.mode)[:k])
    top = list(fused)
    lex_rank = {row: i + 1 for i, (row, _) in enumerate(ranks.lexical)}
    dense_rank = {row: i + 1 for i, (row, _) in enumerate(ranks.dense)}
    dense_score = dict(ranks.dense)
    wanted = set(qa.terms)
    for row, meta in zip(top, index.rows(top), strict=True):
        text = str(meta["text"])
        spans = analyze.highlight_spans(text, wanted)
        s, e = analyze.snippet(text, spans)
        result.hits.append(
            SearchHit(
                chunk_id=str(meta["chunk_id"]), doc_id=str(meta["doc_id"]), title=meta["title"],  # type: ignore[arg-type]
                source=meta["source"], page=meta["page"], page_end=meta["page_end"],  # type: ignore[arg-type]
                char_start=int(meta["char_start"]), char_end=int(meta["char_end"]),  # type: ignore[call-overload]
                heading=meta["heading"] or None, lang=meta["lang"], classification=str(meta["classification"]),  # type: ignore[arg-type]
                score=fused[row], lexical_rank=lex_rank.get(row), dense_rank=dense_rank.get(row),
                dense_score=dense_score.get(row), text=text, snippet=text[s:e],
                highlights=[(a - s, b - s) for a, b in spans if a >= s and b <= e], snippet_start=s,
            )
        )  # fmt: skip
