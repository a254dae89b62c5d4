"""`manara eval search`: retrieval quality of Manara against plain BM25, measured in one run.

The corpus is ingested into a temporary collection of a temporary workspace, through the same
ingest and search code as users get. Each query is analysed and embedded once; the three Manara
systems (hybrid, lexical only, dense only) are read off the same candidate lists, so they differ
only in what they are meant to differ in. The baseline is plain BM25 (tantivy, k1=1.2, b=0.75) on
lower-cased whitespace tokens with no normalisation, over whole documents.

Scores are per document: a ranking of chunks becomes a ranking of the documents of its chunks
(first occurrence). recall@k = share of a query's relevant documents in the top k; MRR@10 = mean of
1/rank of the first relevant document (0 beyond 10); nDCG@10 with binary gains.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tantivy

from manara.config import Settings
from manara.errors import BadRequest
from manara.search import analyze
from manara.search.collections import create_collection
from manara.search.ingest import TextDocument, ingest_texts
from manara.search.retrieve import access_filter, collection_index, rankings
from manara.workspace import init_workspace

SYSTEMS = ("hybrid", "lexical", "dense", "bm25")
CUTOFFS = (1, 5, 10)
DEPTH = 100


@dataclass
class Query:
    id: str
    query: str
    relevant: list[str]
    lang: str | None = None


@dataclass
class Metrics:
    sums: dict[str, float] = field(default_factory=dict)
    n: int = 0

    def add(self, ranked: Sequence[str], relevant: set[str]) -> None:
        self.n += 1
        for k in CUTOFFS:
            self.sums[f"recall@{k}"] = self.sums.get(f"recall@{k}", 0.0) + len(
                relevant & set(ranked[:k])
            ) / len(relevant)
        rr = next((1.0 / (i + 1) for i, d in enumerate(ranked[:10]) if d in relevant), 0.0)
        self.sums["mrr@10"] = self.sums.get("mrr@10", 0.0) + rr
        dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(10, len(relevant))))
        self.sums["ndcg@10"] = self.sums.get("ndcg@10", 0.0) + dcg / ideal

    def means(self) -> dict[str, float]:
        return {name: round(total / self.n, 4) for name, total in self.sums.items()} if self.n else {}


def read_jsonl(path: Path, what: str) -> list[dict[str, Any]]:
    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise BadRequest(f"{path}:{number}: not a JSON object ({err.msg})") from None
                if not isinstance(row, dict):
                    raise BadRequest(f"{path}:{number}: expected a JSON object")
                rows.append(row)
    except FileNotFoundError:
        raise BadRequest(f"{what} file {path} does not exist") from None
    except UnicodeDecodeError:
        raise BadRequest(f"{what} file {path} is not UTF-8") from None
    except IsADirectoryError:
        raise BadRequest(f"{what} file {path} is a folder, not a JSON Lines file") from None
    except OSError as err:
        raise BadRequest(f"{what} file {path} cannot be read: {err.strerror or err}") from None
    if not rows:
        raise BadRequest(f"{what} file {path} is empty")
    return rows


def load_corpus(path: Path) -> list[TextDocument]:
    docs, seen = [], set()
    for i, row in enumerate(read_jsonl(path, "corpus"), 1):
        if not isinstance(row.get("id"), str | int) or not isinstance(row.get("text"), str):
            raise BadRequest(f"{path}:{i}: a corpus line needs a string 'id' and 'text'")
        doc_id = str(row["id"])
        if doc_id in seen:
            raise BadRequest(f"{path}:{i}: duplicate id '{doc_id}'")
        seen.add(doc_id)
        docs.append(TextDocument(doc_id, row["text"], row.get("title"), row.get("lang")))
    return docs


def load_queries(path: Path, corpus_ids: set[str]) -> list[Query]:
    queries = []
    for i, row in enumerate(read_jsonl(path, "queries"), 1):
        relevant = row.get("relevant")
        if (
            not isinstance(row.get("query"), str)
            or not row["query"].strip()
            or not isinstance(relevant, list)
            or not relevant
        ):
            raise BadRequest(f"{path}:{i}: a query line needs 'query' and a non-empty 'relevant' list")
        missing = [str(r) for r in relevant if str(r) not in corpus_ids]
        if missing:
            raise BadRequest(f"{path}:{i}: relevant ids not in the corpus: {', '.join(missing[:5])}")
        queries.append(
            Query(str(row.get("id", i)), row["query"], [str(r) for r in relevant], row.get("lang"))
        )
    return queries


class PlainBM25:
    """The baseline: BM25 over lower-cased whitespace tokens, no normalisation, whole documents."""

    def __init__(self, docs: Iterable[TextDocument], folder: Path) -> None:
        sb = tantivy.SchemaBuilder()
        sb.add_text_field("body", tokenizer_name="whitespace", index_option="freq")
        sb.add_text_field("id", stored=True, tokenizer_name="raw", index_option="basic")
        self.schema = sb.build()
        folder.mkdir(parents=True, exist_ok=True)
        self.index = tantivy.Index(self.schema, path=str(folder))
        writer = self.index.writer(heap_size=64_000_000, num_threads=1)
        for d in docs:
            writer.add_document(tantivy.Document(body=f"{d.title or ''} {d.text}".lower(), id=d.doc_id))
        writer.commit()
        writer.wait_merging_threads()
        self.index.reload()
        self.searcher = self.index.searcher()

    def search(self, query: str, k: int) -> list[str]:
        words = list(dict.fromkeys(query.lower().split()))
        if not words:
            return []
        q = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(self.schema, "body", w)) for w in words]
        )
        return [self.searcher.doc(a)["id"][0] for _, a in self.searcher.search(q, k).hits]


def _docs_of(rows: Sequence[tuple[int, float]], doc_ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(doc_ids[r] for r, _ in rows))


def evaluate_search(
    corpus_path: Path,
    queries_path: Path,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    embedding_model: str | None = None,
) -> dict[str, Any]:
    """Metrics per system (and per query language) on one corpus and its queries."""
    docs = load_corpus(corpus_path)
    queries = load_queries(queries_path, {d.doc_id for d in docs})
    with tempfile.TemporaryDirectory(prefix="manara-eval-") as tmp:
        overrides: dict[str, Any] = {"home": Path(tmp) / "ws", "database_url": None}
        if embedding_model:
            overrides["embedding_model"] = embedding_model
        settings = Settings(**overrides)
        ws = init_workspace(settings).workspace
        principal = ws.principal()
        create_collection(ws, principal, "evaluation")
        done = {"n": 0}

        def ingest_progress(stage: str, n: int) -> None:
            if stage == "files" and progress:
                done["n"] += n
                progress("indexing", done["n"], len(docs))

        ingest_texts(ws, principal, "evaluation", docs, progress=ingest_progress)
        from manara.search.collections import get_collection

        info = get_collection(ws, principal, "evaluation")
        index = collection_index(ws, principal, info)
        assert index is not None
        doc_ids = index.meta.column("doc_id").to_pylist()
        baseline = PlainBM25(docs, Path(tmp) / "bm25")
        flt = access_filter(principal)
        overall = {s: Metrics() for s in SYSTEMS}
        by_lang: dict[str, dict[str, Metrics]] = {}
        by_pair: dict[
            str, dict[str, Metrics]
        ] = {}  # "ary→fr": Darija questions whose sources are French only
        doc_lang = {d.doc_id: d.lang for d in docs}
        for i, q in enumerate(queries, 1):
            qa = analyze.analyze_query(q.query)
            ranks = rankings(ws, info, index, qa, flt, DEPTH)
            ranked = {
                "hybrid": _docs_of(ranks.fused("hybrid"), doc_ids),
                "lexical": _docs_of(ranks.lexical, doc_ids),
                "dense": _docs_of(ranks.dense, doc_ids),
                "bm25": baseline.search(q.query, 10),
            }
            lang_metrics = by_lang.setdefault(q.lang or "und", {s: Metrics() for s in SYSTEMS})
            targets = sorted({doc_lang[r] or "und" for r in q.relevant})
            pair = by_pair.setdefault(
                f"{q.lang or 'und'}→{'+'.join(targets)}", {s: Metrics() for s in SYSTEMS}
            )
            for system, docs_ranked in ranked.items():
                overall[system].add(docs_ranked, set(q.relevant))
                lang_metrics[system].add(docs_ranked, set(q.relevant))
                pair[system].add(docs_ranked, set(q.relevant))
            if progress:
                progress("searching", i, len(queries))
        ws.engine.dispose()
    report: dict[str, Any] = {}
    for system in SYSTEMS:
        report[system] = {
            **overall[system].means(),
            "queries": overall[system].n,
            "by_lang": {
                lang: m[system].means() | {"queries": m[system].n} for lang, m in sorted(by_lang.items())
            },
            "by_source_lang": {
                pair: m[system].means() | {"queries": m[system].n} for pair, m in sorted(by_pair.items())
            },
        }
    report["_corpus"] = {"documents": len(docs), "chunks": len(doc_ids), "queries": len(queries)}
    return report
