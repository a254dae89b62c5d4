"""NLLB-Seed as cross-lingual retrieval sets: Darija or Tamazight sentence → English sentence.

Sources: ``seed/ary_Arab.txt`` (Moroccan Darija), ``seed/zgh_Tfng.txt`` (Standard Moroccan Tamazight,
Tifinagh) and ``seed/eng_Latn.txt``; line N of each file is the same sentence.

Corpus: every non-empty English line, id ``en-<N>`` (N = 1-based line number, ``lang`` "en").
Queries: the Darija (``seed-ary-en``, ``lang`` "ary") or Tamazight (``seed-zgh-en``, ``lang`` "zgh")
line N, id ``<lang>-<N>``, relevant to ``en-<N>``. Lines are skipped as queries when either side is
empty, or when the English text or the query text occurs on another line too (the qrels would be
ambiguous). By default a deterministic sample of 500 queries is kept (``random.Random(0)``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bench.datasets.common import Converted, Doc, Query, finish, normalize_space, require

DEFAULT_MAX_QUERIES = 500
ENGLISH = Path("seed") / "eng_Latn.txt"
SOURCES = {"ary": Path("seed") / "ary_Arab.txt", "zgh": Path("seed") / "zgh_Tfng.txt"}
NAMES = {"ary": "seed-ary-en", "zgh": "seed-zgh-en"}


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file, split on ``\\n`` only (so U+2028 and the like never shift
    the alignment), without line ends and surrounding whitespace."""
    text = require(path).read_text(encoding="utf-8-sig")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


def convert(
    shared: Path,
    out_dir: Path,
    max_queries: int = DEFAULT_MAX_QUERIES,
    max_corpus: int = 0,
    *,
    source: str = "ary",
) -> Converted:
    """Write ``<out_dir>/seed-<source>-en/{corpus,queries}.jsonl``; ``source`` is "ary" or "zgh"."""
    if source not in SOURCES:
        raise ValueError(f"unknown Seed source {source!r} (use one of {sorted(SOURCES)})")
    english = read_lines(shared / ENGLISH)
    other = read_lines(shared / SOURCES[source])
    if len(english) != len(other):
        raise ValueError(
            f"{SOURCES[source]} has {len(other)} lines but {ENGLISH} has {len(english)}: not line-aligned"
        )

    docs = [Doc(id=f"en-{n}", text=line, lang="en") for n, line in enumerate(english, 1) if line]
    en_count = Counter(normalize_space(line) for line in english if line)
    other_count = Counter(normalize_space(line) for line in other if line)
    queries: list[Query] = []
    empty = ambiguous = 0
    for n, (en, text) in enumerate(zip(english, other, strict=True), 1):
        if not en or not text:
            empty += 1
        elif en_count[normalize_space(en)] > 1 or other_count[normalize_space(text)] > 1:
            ambiguous += 1
        else:
            queries.append(Query(id=f"{source}-{n}", query=text, relevant=[f"en-{n}"], lang=source))

    notes = [f"{len(queries)} usable lines"]
    if ambiguous:
        notes.append(f"{ambiguous} lines with duplicated text skipped")
    if empty:
        notes.append(f"{empty} empty lines skipped")
    return finish(
        NAMES[source], out_dir, docs, queries, max_queries=max_queries, max_corpus=max_corpus, notes=notes
    )


def convert_ary(
    shared: Path, out_dir: Path, max_queries: int = DEFAULT_MAX_QUERIES, max_corpus: int = 0
) -> Converted:
    """``seed-ary-en``: Darija queries against the English lines."""
    return convert(shared, out_dir, max_queries, max_corpus, source="ary")


def convert_zgh(
    shared: Path, out_dir: Path, max_queries: int = DEFAULT_MAX_QUERIES, max_corpus: int = 0
) -> Converted:
    """``seed-zgh-en``: Tamazight queries against the English lines."""
    return convert(shared, out_dir, max_queries, max_corpus, source="zgh")
