"""ARCD (Arabic Reading Comprehension Dataset) as an Arabic question → paragraph retrieval set.

Source: ``arcd/arcd-train.json`` (SQuAD v1.1 JSON, 693 questions over 231 Wikipedia paragraphs).
Corpus: every distinct paragraph, titled with its article title; queries: every question, relevant
to its paragraph (and to the longer paragraph that repeats it: in 32 articles the second paragraph
starts with the whole first one).

The first articles' questions carry crowd-sourcing debris: a leading ``- `` and a trailing `` ال``
after the question mark (``- أين تقع مصر؟ ال``); :func:`clean_question` removes both.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.datasets.common import Converted, finish, squad_to_retrieval

NAME = "arcd"
SOURCE = Path("arcd") / "arcd-train.json"

_LEADING_DASH = re.compile(r"^\s*[-–—]\s*")
_TRAILING_AL = re.compile(r"(?<=[؟?])\s*ال\s*$")


def clean_question(text: str) -> str:
    """Drop ARCD's leading ``- `` and the stray `` ال`` after the final question mark."""
    return _TRAILING_AL.sub("", _LEADING_DASH.sub("", text))


def convert(shared: Path, out_dir: Path, max_queries: int = 0, max_corpus: int = 0) -> Converted:
    """Write ``<out_dir>/arcd/{corpus,queries}.jsonl`` from the shared data folder ``shared``."""
    docs, queries, notes = squad_to_retrieval(
        shared / SOURCE, prefix=NAME, lang="ar", clean_question=clean_question
    )
    return finish(NAME, out_dir, docs, queries, max_queries=max_queries, max_corpus=max_corpus, notes=notes)
