"""Calibrate `answer_threshold`: answer scores of questions whose source is there, and not there.

Each set is ingested as its own collection. Each question is asked three times:
- answerable: in its own collection;
- out of scope: in every other set's collection (a citizen asking the procedures hub about
  something it does not cover; the other sets are other domains or languages);
- near miss: in its own collection with the documents about the same subject filtered out (same
  domain, same kind of question, no source). Subject = the corpus line's `topic`, else `title`.
The threshold with the best balanced accuracy between answerable and out of scope is reported,
with how many near misses it still answers.

    .venv/bin/python bench/calibrate_answer.py SET_DIR SET_DIR [...] [--max-queries 150]
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
    ap.add_argument("--max-queries", type=int, default=150)
    args = ap.parse_args()
    pooled: dict[str, list[float]] = {"pos": [], "out": [], "near": []}
    with tempfile.TemporaryDirectory() as tmp:
        ws = init_workspace(Settings(home=Path(tmp) / "ws")).workspace
        p = ws.principal()
        sets = []
        for i, set_dir in enumerate(args.sets):
            with open(set_dir / "corpus.jsonl", encoding="utf-8") as fh:
                raw = [json.loads(line) for line in fh if line.strip()]
            subject = {str(r["id"]): str(r.get("topic") or r.get("title") or r["id"]) for r in raw}
            queries = load_queries(set_dir / "queries.jsonl", set(subject))
            if len(queries) > args.max_queries:
                queries = random.Random(0).sample(queries, args.max_queries)
            name = f"set{i}"
            create_collection(ws, p, name)
            ingest_texts(ws, p, name, load_corpus(set_dir / "corpus.jsonl"))
            sets.append((set_dir.name, name, subject, queries))
        for label, name, subject, queries in sets:
            scores: dict[str, list[float]] = {"pos": [], "out": [], "near": []}
            for q in queries:
                scores["pos"].append(answer_question(ws, p, name, q.query, threshold=np.inf).score)
                for _, other, _, _ in sets:
                    if other != name:
                        scores["out"].append(answer_question(ws, p, other, q.query, threshold=np.inf).score)
                subjects = {subject[r] for r in q.relevant}
                others = [d for d, s in subject.items() if s not in subjects]
                scores["near"].append(answer_question(ws, p, name, q.query, threshold=np.inf,
                                                      filters={"doc_id": others}).score)  # fmt: skip
            report(label, scores)
            for key in pooled:
                pooled[key] += scores[key]
        ws.engine.dispose()
    if len(sets) > 1:
        report("pooled", pooled)


def report(name: str, scores: dict[str, list[float]]) -> None:
    pos, out, near = (np.array(scores[k]) for k in ("pos", "out", "near"))
    print(f"== {name}: {len(pos)} questions")
    for label, values in (("answerable", pos), ("out of scope", out), ("near miss", near)):
        print(f"  {label:13} p10/p50/p90 {np.percentile(values, [10, 50, 90]).round(3)}")
    best = max(np.arange(0.70, 0.95, 0.005), key=lambda t: (pos >= t).mean() + (out < t).mean())
    for t in np.arange(0.80, 0.91, 0.01):
        mark = "  <= best" if abs(t - best) < 0.005 else ""
        print(f"  threshold {t:.2f}: answers {(pos >= t).mean():.2f} answerable, {(out >= t).mean():.2f} out of "
              f"scope, {(near >= t).mean():.2f} near misses{mark}")  # fmt: skip
    print(f"  best threshold {best:.3f}: balanced accuracy (answerable vs out of scope) "
          f"{((pos >= best).mean() + (out < best).mean()) / 2:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
