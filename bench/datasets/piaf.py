"""PIAF v1.0 as a French question → paragraph retrieval set.

Source: ``piaf/piaf-v1.0.json`` (SQuAD JSON, 3,835 questions over 761 Wikipedia paragraphs).
Corpus: every distinct paragraph, titled with its article title; queries: every question, relevant
to its paragraph.
"""

from __future__ import annotations

from pathlib import Path

from bench.datasets.common import Converted, finish, squad_to_retrieval

NAME = "piaf"
SOURCE = Path("piaf") / "piaf-v1.0.json"


def convert(shared: Path, out_dir: Path, max_queries: int = 0, max_corpus: int = 0) -> Converted:
    """Write ``<out_dir>/piaf/{corpus,queries}.jsonl`` from the shared data folder ``shared``."""
    docs, queries, notes = squad_to_retrieval(shared / SOURCE, prefix=NAME, lang="fr")
    return finish(NAME, out_dir, docs, queries, max_queries=max_queries, max_corpus=max_corpus, notes=notes)
