"""Sweep fusion rules on evaluation sets: which way of combining BM25 and dense ranks is best everywhere?

Indexes each set once (the `manara eval search` path), then scores several fusion rules on the same
candidate lists: reciprocal rank fusion with the lexical weight fixed or scaled by the query's
IDF coverage, and a convex combination of min-max-normalised scores. Prints recall@5 and MRR@10.

    .venv/bin/python bench/fusion_sweep.py SET_DIR [SET_DIR...]    (each with corpus.jsonl, queries.jsonl)
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from manara.config import Settings
from manara.search import analyze
from manara.search.collections import create_collection, get_collection
from manara.search.evaluate import Metrics, load_corpus, load_queries
from manara.search.ingest import ingest_texts
from manara.search.retrieve import RRF_K, Rankings, access_filter, collection_index, rankings
from manara.workspace import init_workspace


def rrf(lex: list[tuple[int, float]], dense: list[tuple[int, float]], w: float) -> list[int]:
    s: dict[int, float] = {}
    for i, (r, _) in enumerate(lex):
        s[r] = s.get(r, 0.0) + w / (RRF_K + i + 1)
    for i, (r, _) in enumerate(dense):
        s[r] = s.get(r, 0.0) + 1.0 / (RRF_K + i + 1)
    return sorted(s, key=lambda r: -s[r])


def convex(lex: list[tuple[int, float]], dense: list[tuple[int, float]], alpha: float) -> list[int]:
    def norm(pairs: list[tuple[int, float]]) -> dict[int, float]:
        if not pairs:
            return {}
        v = np.array([x for _, x in pairs])
        lo, hi = v.min(), v.max()
        return {r: (x - lo) / (hi - lo) if hi > lo else 1.0 for r, x in pairs}

    nl, nd = norm(lex), norm(dense)
    rows = set(nl) | set(nd)
    s = {r: alpha * nl.get(r, 0.0) + (1 - alpha) * nd.get(r, 0.0) for r in rows}
    return sorted(s, key=lambda r: -s[r])


def fuse_rule(kind: str, weight: float, by_coverage: bool, rk: Rankings) -> list[int]:
    w = weight * rk.coverage if by_coverage else weight
    return rrf(rk.lexical, rk.dense, w) if kind == "rrf" else convex(rk.lexical, rk.dense, w)


def main() -> None:
    for set_dir in map(Path, sys.argv[1:]):
        docs = load_corpus(set_dir / "corpus.jsonl")
        queries = load_queries(set_dir / "queries.jsonl", {d.doc_id for d in docs})
        with tempfile.TemporaryDirectory() as tmp:
            ws = init_workspace(Settings(home=Path(tmp) / "ws")).workspace
            p = ws.principal()
            create_collection(ws, p, "sweep")
            ingest_texts(ws, p, "sweep", docs)
            info = get_collection(ws, p, "sweep")
            index = collection_index(ws, p, info)
            assert index is not None
            doc_ids = index.meta.column("doc_id").to_pylist()
            flt = access_filter(p)
            rules: dict[str, Callable[[Rankings], list[int]]] = {
                "dense": lambda rk: [r for r, _ in rk.dense],
                "lexical": lambda rk: [r for r, _ in rk.lexical],
            }
            for w in (1.0, 0.5, 0.3):
                rules[f"rrf w={w}"] = partial(fuse_rule, "rrf", w, False)
            for w in (1.0, 0.5):
                rules[f"rrf cov*{w}"] = partial(fuse_rule, "rrf", w, True)
            for a in (0.2, 0.3, 0.5, 0.7, 0.9):
                rules[f"convex a={a}"] = partial(fuse_rule, "convex", a, False)
            for a in (0.3, 0.5):
                rules[f"convex cov*{a}"] = partial(fuse_rule, "convex", a, True)
            metrics = {name: Metrics() for name in rules}
            for q in queries:
                rk = rankings(ws, info, index, analyze.analyze_query(q.query), flt, 100)
                for name, rule in rules.items():
                    ranked = list(dict.fromkeys(doc_ids[r] for r in rule(rk)))
                    metrics[name].add(ranked, set(q.relevant))
            ws.engine.dispose()
        print(f"== {set_dir.name}: {len(queries)} queries")
        for name, m in metrics.items():
            means = m.means()
            print(f"  {name:16} r@5 {means['recall@5']:.4f}  mrr@10 {means['mrr@10']:.4f}")


if __name__ == "__main__":
    main()
