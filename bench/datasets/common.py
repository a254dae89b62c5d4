"""Shared pieces of the evaluation-set converters.

Every converter builds a list of :class:`Doc` and a list of :class:`Query`, then calls :func:`finish`,
which checks the set (unique ids, non-empty texts, every relevant id in the corpus), applies the
deterministic ``--max-queries`` / ``--max-corpus`` sampling and writes ``corpus.jsonl`` and
``queries.jsonl`` in the format read by ``manara eval search``:

- corpus lines: ``{"id": str, "text": str, "title"?: str, "lang"?: str}``
- query lines: ``{"id": str, "query": str, "relevant": [corpus ids], "lang"?: str}``
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Seed of every sample, so that two runs on the same data write the same files.
SAMPLE_SEED = 0


class SourceMissing(FileNotFoundError):
    """A file a converter needs is absent from the shared data folder."""


@dataclass(frozen=True)
class Doc:
    """One corpus document."""

    id: str
    text: str
    title: str | None = None
    lang: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON object of one corpus line (optional keys left out when unset)."""
        row: dict[str, Any] = {"id": self.id, "text": self.text}
        if self.title:
            row["title"] = self.title
        if self.lang:
            row["lang"] = self.lang
        return row


@dataclass
class Query:
    """One query and the ids of the corpus documents that answer it."""

    id: str
    query: str
    relevant: list[str]
    lang: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON object of one query line (``lang`` left out when unset)."""
        row: dict[str, Any] = {"id": self.id, "query": self.query, "relevant": list(self.relevant)}
        if self.lang:
            row["lang"] = self.lang
        return row


@dataclass(frozen=True)
class Converted:
    """What a converter wrote: where, and how much."""

    name: str
    out_dir: Path
    corpus: int
    queries: int
    relevant: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def corpus_path(self) -> Path:
        """The corpus file."""
        return self.out_dir / "corpus.jsonl"

    @property
    def queries_path(self) -> Path:
        """The queries file."""
        return self.out_dir / "queries.jsonl"

    @property
    def mean_relevant(self) -> float:
        """Mean number of relevant documents per query."""
        return self.relevant / self.queries if self.queries else 0.0

    def summary(self) -> str:
        """One line for the CLI."""
        line = (
            f"{self.name:<15} corpus={self.corpus:>6}  queries={self.queries:>6}  "
            f"mean_relevant={self.mean_relevant:6.2f}  -> {self.out_dir}"
        )
        if self.notes:
            line += "  (" + "; ".join(self.notes) + ")"
        return line


def require(path: Path) -> Path:
    """Return ``path``, or raise :class:`SourceMissing` with a one-line message when it is absent."""
    if not path.is_file():
        raise SourceMissing(f"missing source file {path}")
    return path


def normalize_space(text: str) -> str:
    """Collapse runs of whitespace (NBSP included) into one space and strip the ends."""
    return re.sub(r"\s+", " ", text).strip()


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` as UTF-8 JSON Lines (``ensure_ascii=False``); return how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False))
            fh.write("\n")
            count += 1
    tmp.replace(path)
    return count


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Read back a JSON Lines file written by :func:`write_jsonl`."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def sample_indices(n: int, k: int, seed: int = SAMPLE_SEED) -> list[int]:
    """Indices of a deterministic sample of ``k`` out of ``n`` items, in their original order.

    ``k <= 0`` or ``k >= n`` keeps everything. The sample is ``random.Random(seed).sample``.
    """
    if k <= 0 or k >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), k))


def sample_queries(queries: Sequence[Query], max_queries: int) -> list[Query]:
    """A deterministic sample of at most ``max_queries`` queries (0 = all), in their original order."""
    return [queries[i] for i in sample_indices(len(queries), max_queries)]


def limit_corpus(docs: Sequence[Doc], queries: Sequence[Query], max_corpus: int) -> list[Doc]:
    """Keep at most ``max_corpus`` documents (0 = all), always keeping every relevant document.

    The documents relevant to the kept queries all stay (even past ``max_corpus``); the rest of
    the budget is a deterministic sample of the other documents. Original order is kept.
    """
    if max_corpus <= 0 or max_corpus >= len(docs):
        return list(docs)
    needed = {rid for q in queries for rid in q.relevant}
    others = [i for i, d in enumerate(docs) if d.id not in needed]
    room = max(0, max_corpus - len(needed))
    keep = {others[i] for i in sample_indices(len(others), room)} if room else set()
    return [d for i, d in enumerate(docs) if d.id in needed or i in keep]


def merge_identical_queries(queries: Sequence[Query]) -> int:
    """Give queries with the same text (up to whitespace) the union of their relevant documents.

    Two identical questions asked of two different paragraphs cannot be told apart by a retriever,
    so each one's qrels must accept both paragraphs. The queries themselves are all kept.
    Returns how many queries gained relevant documents.
    """
    groups: dict[str, list[Query]] = {}
    for q in queries:
        groups.setdefault(normalize_space(q.query).casefold(), []).append(q)
    changed = 0
    for group in groups.values():
        if len(group) < 2:
            continue
        union = [rid for q in group for rid in q.relevant]
        for q in group:
            merged = list(dict.fromkeys([*q.relevant, *union]))  # its own documents first
            if merged != q.relevant:
                q.relevant = merged
                changed += 1
    return changed


def containers(docs: Sequence[Doc]) -> dict[str, list[str]]:
    """For each document contained verbatim (up to whitespace) in longer ones, the ids of those.

    SQuAD-style sets sometimes hold a paragraph and a longer one that repeats it (ARCD's article
    introductions), so a question on the short paragraph is answered by the long one too.
    """
    keys = [(d.id, normalize_space(d.text)) for d in docs]
    found: dict[str, list[str]] = {}
    for inner_id, inner in keys:
        for outer_id, outer in keys:
            if len(outer) > len(inner) and inner in outer:
                found.setdefault(inner_id, []).append(outer_id)
    return found


def extend_to_containers(docs: Sequence[Doc], queries: Sequence[Query]) -> int:
    """Make every document that contains a query's relevant document relevant too.

    Returns how many queries gained relevant documents.
    """
    outer = containers(docs)
    changed = 0
    for q in queries:
        extended = list(
            dict.fromkeys(rid for doc_id in q.relevant for rid in [doc_id, *outer.get(doc_id, [])])
        )
        if extended != q.relevant:
            q.relevant = extended
            changed += 1
    return changed


def check(docs: Sequence[Doc], queries: Sequence[Query]) -> None:
    """Raise ``ValueError`` unless ids are unique, texts non-empty and every relevant id exists."""
    doc_ids = [d.id for d in docs]
    known = set(doc_ids)
    if len(known) != len(doc_ids):
        raise ValueError("duplicate corpus ids")
    if len({q.id for q in queries}) != len(queries):
        raise ValueError("duplicate query ids")
    for d in docs:
        if not d.text.strip():
            raise ValueError(f"empty text in corpus document {d.id}")
    for q in queries:
        if not q.query.strip():
            raise ValueError(f"empty query {q.id}")
        if not q.relevant:
            raise ValueError(f"query {q.id} has no relevant document")
        missing = [rid for rid in q.relevant if rid not in known]
        if missing:
            raise ValueError(f"query {q.id}: relevant ids not in the corpus: {missing[:3]}")


def finish(
    name: str,
    out_dir: Path,
    docs: Sequence[Doc],
    queries: Sequence[Query],
    *,
    max_queries: int = 0,
    max_corpus: int = 0,
    notes: Iterable[str] = (),
) -> Converted:
    """Check the set, sample it, and write ``<out_dir>/<name>/{corpus,queries}.jsonl``."""
    check(docs, queries)
    kept_queries = sample_queries(queries, max_queries)
    kept_docs = limit_corpus(docs, kept_queries, max_corpus)
    target = out_dir / name
    n_docs = write_jsonl(target / "corpus.jsonl", (d.as_json() for d in kept_docs))
    n_queries = write_jsonl(target / "queries.jsonl", (q.as_json() for q in kept_queries))
    return Converted(
        name=name,
        out_dir=target,
        corpus=n_docs,
        queries=n_queries,
        relevant=sum(len(q.relevant) for q in kept_queries),
        notes=tuple(notes),
    )


def load_squad(path: Path) -> list[dict[str, Any]]:
    """The ``data`` list (articles) of a SQuAD-format JSON file."""
    with require(path).open(encoding="utf-8-sig") as fh:
        payload = json.load(fh)
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise ValueError(f"{path}: not SQuAD JSON (no 'data' list)")
    return data


def squad_to_retrieval(
    path: Path, *, prefix: str, lang: str | None, clean_question: Callable[[str], str] | None = None
) -> tuple[list[Doc], list[Query], list[str]]:
    """Turn a SQuAD file into a corpus of paragraphs and a list of questions.

    Each distinct paragraph text (compared after whitespace normalisation) becomes one document
    ``<prefix>-p<NNNN>`` titled with its article title; each question keeps its SQuAD id and is
    relevant to its paragraph and to every paragraph that repeats it verbatim
    (:func:`extend_to_containers`). Questions whose text is identical are relevant to each other's
    paragraphs too (:func:`merge_identical_queries`). ``clean_question``, when given, rewrites
    each question first. Returns docs, queries and notes on what was merged or cleaned.
    """
    docs: list[Doc] = []
    queries: list[Query] = []
    by_text: dict[str, str] = {}
    duplicate_paragraphs = cleaned = 0
    for article in load_squad(path):
        title = str(article.get("title") or "").replace("_", " ").strip() or None
        for paragraph in article.get("paragraphs", []):
            text = str(paragraph["context"]).strip()
            key = normalize_space(text)
            doc_id = by_text.get(key)
            if doc_id is None:
                doc_id = f"{prefix}-p{len(docs) + 1:04d}"
                by_text[key] = doc_id
                docs.append(Doc(id=doc_id, text=text, title=title, lang=lang))
            else:
                duplicate_paragraphs += 1
            for qa in paragraph.get("qas", []):
                question = str(qa["question"]).strip()
                if clean_question is not None:
                    tidy = clean_question(question).strip()
                    cleaned += tidy != question
                    question = tidy
                if question:
                    queries.append(Query(id=str(qa["id"]), query=question, relevant=[doc_id], lang=lang))
    notes = []
    if duplicate_paragraphs:
        notes.append(f"{duplicate_paragraphs} duplicate paragraphs merged")
    if cleaned:
        notes.append(f"{cleaned} questions cleaned")
    contained = extend_to_containers(docs, queries)
    if contained:
        notes.append(f"{contained} questions also accept paragraphs repeating theirs")
    merged = merge_identical_queries(queries)
    if merged:
        notes.append(f"{merged} identical questions share qrels")
    return docs, queries, notes
