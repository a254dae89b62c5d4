"""Does light Arabic clitic stripping help retrieval? Manara's BM25 with and without it, same run.

`manara.text.tokenize` can strip one Arabic prefix (و ب ل ال ف ك…) and one suffix per word
(`arabic_clitics=True`). This indexes each set's corpus twice (tantivy, Manara terms) and scores
the queries with each analyser; the search pipeline keeps the option off unless this shows a gain.

    .venv/bin/python bench/arabic_clitics.py SET_DIR [SET_DIR...]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import tantivy

from manara.search.evaluate import Metrics, load_corpus, load_queries
from manara.text.tokenize import tokenize


def terms(text: str, clitics: bool) -> list[str]:
    return [t.text for t in tokenize(text, arabic_clitics=clitics)]


def run(set_dir: Path, clitics: bool) -> dict[str, dict[str, float]]:
    docs = load_corpus(set_dir / "corpus.jsonl")
    queries = load_queries(set_dir / "queries.jsonl", {d.doc_id for d in docs})
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("body", tokenizer_name="whitespace", index_option="freq")
    sb.add_text_field("id", stored=True, tokenizer_name="raw", index_option="basic")
    schema = sb.build()
    with tempfile.TemporaryDirectory() as tmp:
        index = tantivy.Index(schema, path=tmp)
        writer = index.writer(heap_size=64_000_000, num_threads=1)
        for d in docs:
            writer.add_document(
                tantivy.Document(body=" ".join(terms(f"{d.title or ''}\n{d.text}", clitics)), id=d.doc_id)
            )
        writer.commit()
        writer.wait_merging_threads()
        index.reload()
        searcher = index.searcher()
        by_lang: dict[str, Metrics] = {"all": Metrics()}
        for q in queries:
            words = list(dict.fromkeys(terms(q.query, clitics)))
            ranked: list[str] = []
            if words:
                query = tantivy.Query.boolean_query(
                    [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "body", w)) for w in words]
                )
                ranked = [searcher.doc(a)["id"][0] for _, a in searcher.search(query, 10).hits]
            for key in ("all", q.lang or "und"):
                by_lang.setdefault(key, Metrics()).add(ranked, set(q.relevant))
    return {k: m.means() for k, m in by_lang.items()}


def main() -> None:
    for set_dir in map(Path, sys.argv[1:]):
        off, on = run(set_dir, False), run(set_dir, True)
        print(f"== {set_dir.name}")
        for key in off:
            print(f"  {key:9} recall@5 {off[key]['recall@5']:.4f} → {on[key]['recall@5']:.4f}   "
                  f"MRR@10 {off[key]['mrr@10']:.4f} → {on[key]['mrr@10']:.4f}   (without → with clitic stripping)")  # fmt: skip


if __name__ == "__main__":
    main()
