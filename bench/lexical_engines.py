"""Benchmark: the embedded lexical engines Manara could use, on the same Manara-tokenised chunks.

Candidates: tantivy (Rust, on-disk segments, incremental add/delete) and bm25s (in-memory scipy
sparse matrix, rebuilt on change). Both get identical input: the tokens of `manara.text.tokenize`
joined by spaces (normalisation happens in Manara, not in the engine). Measured at each size:
indexing seconds, query latency p50/p95 for real questions with an access filter applied before
ranking (classification <= a clearance), peak RSS, and how many of the 10 hits the engines share
(same BM25 formula, so they should agree).

    .venv/bin/python bench/lexical_engines.py [--sizes 10000,100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chunk_corpus import chunks, questions  # noqa: E402

from manara.text.tokenize import tokenize  # noqa: E402


def toks(text: str) -> list[str]:
    return [t.text for t in tokenize(text)]


def bench_tantivy(
    docs: list[list[str]], labels: np.ndarray, qs: list[list[str]]
) -> tuple[float, list[float], list[list[int]]]:
    import tantivy

    sb = tantivy.SchemaBuilder()
    sb.add_text_field("body", tokenizer_name="whitespace", index_option="freq")
    sb.add_unsigned_field("row", stored=False, fast=True)
    sb.add_unsigned_field("cls", indexed=True, fast=True)
    schema = sb.build()
    d = tempfile.mkdtemp()
    t0 = time.perf_counter()
    index = tantivy.Index(schema, path=d)
    w = index.writer(heap_size=128_000_000, num_threads=2)
    for i, (tokens, label) in enumerate(zip(docs, labels, strict=True)):
        doc = tantivy.Document()
        doc.add_text("body", " ".join(tokens))
        doc.add_unsigned("row", i)
        doc.add_unsigned("cls", int(label))
        w.add_document(doc)
    w.commit()
    w.wait_merging_threads()
    index.reload()
    build = time.perf_counter() - t0
    searcher = index.searcher()
    allowed = tantivy.Query.term_set_query(schema, "cls", [0, 1])
    lat, hits = [], []
    for q in qs:
        t = time.perf_counter()
        terms = [
            (tantivy.Occur.Should, tantivy.Query.term_query(schema, "body", x)) for x in dict.fromkeys(q)
        ]
        query = tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Must, tantivy.Query.boolean_query(terms)),
                (tantivy.Occur.Must, tantivy.Query.const_score_query(allowed, 0.0)),
            ]
        )
        res = searcher.search(query, 10)
        lat.append(time.perf_counter() - t)
        hits.append([(a.segment_ord, a.doc) for _, a in res.hits])
    return build, lat, hits


def bench_bm25s(
    docs: list[list[str]], labels: np.ndarray, qs: list[list[str]]
) -> tuple[float, list[float], list[list[int]]]:
    import bm25s

    t0 = time.perf_counter()
    retriever = bm25s.BM25(k1=1.2, b=0.75)
    retriever.index(docs, show_progress=False)
    build = time.perf_counter() - t0
    mask = (labels <= 1).astype(np.float32)
    lat, hits = [], []
    for q in qs:
        t = time.perf_counter()
        known = [x for x in dict.fromkeys(q) if x in retriever.vocab_dict]
        if known:
            res, _ = retriever.retrieve([known], k=10, weight_mask=mask, show_progress=False, n_threads=1)
            hits.append(list(res[0]))
        else:
            hits.append([])
        lat.append(time.perf_counter() - t)
    return build, lat, hits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    qs = [toks(q) for q in questions(args.queries)]
    for n in [int(s) for s in args.sizes.split(",")]:
        t = time.perf_counter()
        docs = [toks(c) for c in chunks(n)]
        tok_s = time.perf_counter() - t
        labels = np.random.default_rng(0).integers(0, 4, n)
        for name, fn in (("tantivy", bench_tantivy), ("bm25s", bench_bm25s)):
            build, lat, _ = fn(docs, labels, qs)
            ms = sorted(x * 1000 for x in lat)
            p95 = ms[int(0.95 * (len(ms) - 1))]
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"{n:>7} chunks {name:8} index {build:6.2f} s ({n / build:8.0f} chunks/s)  "
                f"query p50 {statistics.median(ms):6.2f} ms  p95 {p95:6.2f} ms  peak RSS {rss:.0f} MB "
                f"(tokenising {tok_s:.1f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
