"""Calibrate `answer_threshold`: the answer score of questions whose source is there, and not there.

For each question of a set, `manara ask`'s score (the best sentence's similarity to the question) is
measured twice in the same collection: with every document readable (answerable), and with the
documents about the same subject filtered out (unanswerable: the same kind of question, no
source). Subject = the corpus line's `topic`, else its `title`, else the relevant ids themselves.
Prints both distributions and, per threshold, the share of answerable questions answered and of
unanswerable ones wrongly answered; the best balanced accuracy is marked.

    .venv/bin/python bench/calibrate_answer.py SET_DIR [SET_DIR...] [--max-queries 300]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import numpy as np

from manara.config import Settings
from manara.search.answer import answer_question
from manara.search.collections import create_collection
from manara.search.evaluate import load_corpus, load_queries
from manara.search.ingest import ingest_texts
from manara.workspace import init_workspace


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sets", nargs="+", type=Path)
    ap.add_argument("--max-queries", type=int, default=300)
    args = ap.parse_args()
    pooled_pos: list[float] = []
    pooled_neg: list[float] = []
    for set_dir in args.sets:
        with open(set_dir / "corpus.jsonl", encoding="utf-8") as fh:
            raw = [json.loads(line) for line in fh if line.strip()]
        subject = {str(r["id"]): str(r.get("topic") or r.get("title") or r["id"]) for r in raw}
        docs = load_corpus(set_dir / "corpus.jsonl")
        queries = load_queries(set_dir / "queries.jsonl", set(subject))
        if len(queries) > args.max_queries:
            queries = random.Random(0).sample(queries, args.max_queries)
        pos, neg = [], []
        with tempfile.TemporaryDirectory() as tmp:
            ws = init_workspace(Settings(home=Path(tmp) / "ws")).workspace
            p = ws.principal()
            create_collection(ws, p, "calibration")
            ingest_texts(ws, p, "calibration", docs)
            for q in queries:
                pos.append(answer_question(ws, p, "calibration", q.query, threshold=np.inf).score)
                subjects = {subject[r] for r in q.relevant}
                others = [d for d, s in subject.items() if s not in subjects]
                neg.append(answer_question(ws, p, "calibration", q.query, threshold=np.inf,
                                           filters={"doc_id": others}).score)  # fmt: skip
            ws.engine.dispose()
        report(set_dir.name, np.array(pos), np.array(neg))
        pooled_pos += pos
        pooled_neg += neg
    if len(args.sets) > 1:
        report("pooled", np.array(pooled_pos), np.array(pooled_neg))


def report(name: str, pos: np.ndarray, neg: np.ndarray) -> None:
    print(f"== {name}: {len(pos)} questions")
    print(f"  answerable   p10/p50/p90 {np.percentile(pos, [10, 50, 90]).round(3)}")
    print(f"  unanswerable p10/p50/p90 {np.percentile(neg, [10, 50, 90]).round(3)}")
    best = max(np.arange(0.70, 0.95, 0.005), key=lambda t: (pos >= t).mean() + (neg < t).mean())
    for t in np.arange(0.78, 0.93, 0.01):
        mark = " <= best balanced accuracy" if abs(t - best) < 0.005 else ""
        print(
            f"  threshold {t:.2f}: answered {(pos >= t).mean():.2f} of answerable, {(neg >= t).mean():.2f} of unanswerable{mark}"
        )
    print(
        f"  best threshold {best:.3f}: balanced accuracy {((pos >= best).mean() + (neg < best).mean()) / 2:.3f}"
    )


if __name__ == "__main__":
    main()
