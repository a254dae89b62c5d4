"""Service-Public.fr procedure sheets ("fiches") as a French administrative retrieval set.

Sources, in ``service-public-fr/``:

- ``fiches_txt_v2.zip``: 3,588 UTF-8 text chunks under ``flat_txts/``, one file per section of a
  fiche, named ``<fiche id>_<slug of the section path>.txt`` (e.g. ``F10007_demarche-en-lig--...``).
  Each chunk starts with its section headings, one per line, separated by blank lines.
- ``questions_spf.json``: 535 ``[fiche_id, question, answer_context]`` triples, one per fiche.

Corpus: every chunk (id = file name without extension, title = its first line when that looks like
a heading, else the fiche id, ``lang`` "fr"). A question whose fiche is in the zip (65 of 535) is
relevant to every chunk of that fiche, and also to any chunk of another fiche whose text is
identical to one of them (the zip repeats 359 chunks verbatim across fiches; a retriever cannot
tell such copies apart). Every other question gets its ``answer_context`` (the fiche's full text)
added to the corpus as ``ctx-<n>`` and that document as its only relevant one; ``n`` is the
question's 0-based index in ``questions_spf.json``, and its query id is ``spf-<n>``.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from bench.datasets.common import Converted, Doc, Query, finish, normalize_space, require

NAME = "service-public"
SOURCE_ZIP = Path("service-public-fr") / "fiches_txt_v2.zip"
SOURCE_QUESTIONS = Path("service-public-fr") / "questions_spf.json"

_FICHE_ID = re.compile(r"^([A-Z]+\d+)(?:_|$)")
_MAX_TITLE = 120


def fiche_of(stem: str) -> str:
    """The fiche id a chunk file name starts with (``F10007_demarche...`` → ``F10007``)."""
    match = _FICHE_ID.match(stem)
    return match.group(1) if match else stem.split("_", 1)[0]


def title_of(text: str, fallback: str) -> str:
    """The first line of ``text`` when it looks like a heading, else ``fallback``.

    A heading is a short line (at most 120 characters), not ending like a sentence (``.``, ``,``,
    ``;``, ``:``), followed by a blank line or by nothing.
    """
    lines = text.split("\n")
    first = lines[0].strip()
    followed_by_blank = len(lines) == 1 or not lines[1].strip()
    if first and len(first) <= _MAX_TITLE and followed_by_blank and not first.endswith((".", ",", ";", ":")):
        return first
    return fallback


def _decode(data: bytes) -> tuple[str, bool]:
    """Decode a chunk as UTF-8 (BOM tolerated); fall back to cp1252. Returns text and fallback flag."""
    try:
        text, fallback = data.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        text, fallback = data.decode("cp1252", errors="replace"), True
    return text.replace("\r\n", "\n").replace("\r", "\n"), fallback


def read_chunks(zip_path: Path) -> tuple[list[Doc], list[str]]:
    """Every non-empty ``.txt`` member of the zip as a French :class:`Doc`, sorted by file name."""
    docs: list[Doc] = []
    notes: list[str] = []
    not_utf8 = empty = 0
    with zipfile.ZipFile(require(zip_path)) as archive:
        members = sorted(
            (
                info
                for info in archive.infolist()
                if not info.is_dir() and info.filename.lower().endswith(".txt")
            ),
            key=lambda info: info.filename,
        )
        for info in members:
            stem = info.filename.rsplit("/", 1)[-1][: -len(".txt")]
            text, fallback = _decode(archive.read(info))
            not_utf8 += fallback
            text = text.strip()
            if not text:
                empty += 1
                continue
            docs.append(Doc(id=stem, text=text, title=title_of(text, fiche_of(stem)), lang="fr"))
    if not_utf8:
        notes.append(f"{not_utf8} chunks were not UTF-8 (read as cp1252)")
    if empty:
        notes.append(f"{empty} empty chunks skipped")
    return docs, notes


def load_questions(path: Path) -> list[tuple[str, str, str]]:
    """The ``[fiche_id, question, answer_context]`` triples of ``questions_spf.json``."""
    with require(path).open(encoding="utf-8-sig") as fh:
        rows = json.load(fh)
    triples = []
    for n, row in enumerate(rows):
        if not (isinstance(row, list) and len(row) == 3):
            raise ValueError(f"{path}: entry {n} is not a [fiche_id, question, answer_context] triple")
        triples.append((str(row[0]).strip(), str(row[1]).strip(), str(row[2])))
    return triples


def convert(shared: Path, out_dir: Path, max_queries: int = 0, max_corpus: int = 0) -> Converted:
    """Write ``<out_dir>/service-public/{corpus,queries}.jsonl`` from the shared data folder ``shared``."""
    questions = load_questions(shared / SOURCE_QUESTIONS)
    docs, notes = read_chunks(shared / SOURCE_ZIP)

    chunks_of: dict[str, list[str]] = {}
    same_text: dict[str, list[str]] = {}
    for doc in docs:
        chunks_of.setdefault(fiche_of(doc.id), []).append(doc.id)
        same_text.setdefault(normalize_space(doc.text), []).append(doc.id)
    twins = {doc_id: ids for ids in same_text.values() if len(ids) > 1 for doc_id in ids}

    queries: list[Query] = []
    in_zip = with_twins = 0
    for n, (fiche, question, context) in enumerate(questions):
        if fiche in chunks_of:
            in_zip += 1
            own = chunks_of[fiche]
            relevant = list(dict.fromkeys(rid for doc_id in own for rid in twins.get(doc_id, [doc_id])))
            with_twins += len(relevant) > len(own)
        else:
            ctx_id = f"ctx-{n}"
            text = context.replace("\r\n", "\n").strip()
            docs.append(Doc(id=ctx_id, text=text, title=title_of(text, fiche), lang="fr"))
            relevant = [ctx_id]
        queries.append(Query(id=f"spf-{n}", query=question, relevant=relevant, lang="fr"))

    notes = [
        f"{in_zip} questions on zip fiches, {len(questions) - in_zip} on answer_context documents",
        *notes,
    ]
    if twins:
        notes.append(
            f"{len(twins)} chunks repeated verbatim across fiches; {with_twins} questions also accept the copies"
        )
    return finish(NAME, out_dir, docs, queries, max_queries=max_queries, max_corpus=max_corpus, notes=notes)
