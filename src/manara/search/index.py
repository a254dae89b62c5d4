"""A collection's search index: tantivy (BM25) + an exact float32 vector matrix, derived from the lake.

The chunks table is the truth; the index is a cache of one of its snapshots, in
`$MANARA_HOME/index/<tenant>/<collection>/<snapshot id>.v<FORMAT>/`:
- `lexical/`: a tantivy index of each chunk's Manara terms (whitespace tokenizer: normalisation
  happened already) with raw fields for the access and metadata filters;
- `vectors.npy`: the chunk embeddings, one row per chunk;
- `meta.arrow`: what results show (text, offsets, page, title, source, language, labels).

A new snapshot gets a new folder, built beside the old one and renamed into place, so a reader
never sees half an index and a crash leaves only a folder to delete. Filters are applied inside
both searches before ranking: tantivy's `Must` clauses and a boolean mask on the vector scores,
so a chunk the caller may not read is never a candidate (and never shifts a rank or a score).
Lexical engine and exact vector search were chosen by measurement: docs/decisions/0004.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tantivy

from manara.models.embeddings import similarities
from manara.search.analyze import phonetic_terms, skeletons

# Bumped whenever the folder's layout or the tantivy schema changes: an index built by an older
# Manara is then rebuilt from the lake instead of being opened with the wrong schema.
FORMAT = 2

META_COLUMNS = [
    "chunk_id", "doc_id", "ordinal", "text", "heading", "page", "page_end", "char_start", "char_end",
    "lang", "title", "source", "classification", "read_role",
]  # fmt: skip
FILTER_FIELDS = {
    "classification": "cls",
    "read_role": "role",
    "lang": "lang",
    "doc_id": "doc",
    "source": "source",
}


@dataclass(frozen=True)
class Filter:
    """Allowed values per field (None: any). Access control always sets classification and read_role."""

    allowed: dict[str, list[str]] = field(default_factory=dict)

    def with_(self, name: str, values: Sequence[str] | None) -> Filter:
        if values is None:
            return self
        return Filter({**self.allowed, name: list(values)})


def _schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("body", tokenizer_name="whitespace", index_option="freq")
    sb.add_text_field("skel", tokenizer_name="whitespace", index_option="freq")
    sb.add_text_field("phon", tokenizer_name="whitespace", index_option="freq")
    sb.add_unsigned_field("row", stored=True, indexed=False)
    for name in FILTER_FIELDS.values():
        sb.add_text_field(name, tokenizer_name="raw", index_option="basic")
    return sb.build()


class CollectionIndex:
    def __init__(self, path: Path, snapshot_id: int) -> None:
        self.path = path
        self.snapshot_id = snapshot_id
        self._schema = _schema()
        self._index = tantivy.Index(self._schema, path=str(path / "lexical"), reuse=True)
        self.searcher = self._index.searcher()
        self.vectors = np.load(path / "vectors.npy")
        with pa.memory_map(str(path / "meta.arrow")) as source:
            self.meta = pa.ipc.open_file(source).read_all()
        # filter columns dictionary-encoded: a filter is then a lookup on small integer codes
        self._codes: dict[str, tuple[np.ndarray, dict[str, int]]] = {}
        for name in FILTER_FIELDS:
            encoded = self.meta.column(name).combine_chunks().dictionary_encode()
            codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)  # null → -1
            values = {str(v): i for i, v in enumerate(encoded.dictionary.to_pylist())}
            self._codes[name] = (codes, values)
        self.size = self.meta.num_rows

    @staticmethod
    def build(path: Path, table: pa.Table, snapshot_id: int, dim: int) -> None:
        """Write the index of `table` (the chunks table's rows) into `path` (which must not exist)."""
        tmp = path.with_name(path.name + ".building")
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "lexical").mkdir(parents=True)
        schema = _schema()
        index = tantivy.Index(schema, path=str(tmp / "lexical"))
        writer = index.writer(heap_size=64_000_000, num_threads=1)
        terms = table.column("terms").to_pylist()
        filters = {col: table.column(col).to_pylist() for col in FILTER_FIELDS}
        for row, body in enumerate(terms):
            doc = tantivy.Document()
            doc.add_text("body", body)
            doc.add_text("skel", skeletons(body))
            doc.add_text("phon", phonetic_terms(body))
            doc.add_unsigned("row", row)
            for col, name in FILTER_FIELDS.items():
                doc.add_text(name, filters[col][row] or "")
            writer.add_document(doc)
        writer.commit()
        writer.wait_merging_threads()
        emb = table.column("embedding").combine_chunks()
        if len(emb):
            values = emb.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
            vectors = values.reshape(len(emb), -1)
        else:
            vectors = np.empty((0, dim), dtype=np.float32)
        np.save(tmp / "vectors.npy", vectors)
        with (
            pa.OSFile(str(tmp / "meta.arrow"), "wb") as sink,
            pa.ipc.new_file(sink, table.select(META_COLUMNS).schema) as writer_ipc,
        ):
            writer_ipc.write_table(table.select(META_COLUMNS))
        tmp.rename(path)

    # --- filters -------------------------------------------------------------------------------

    def mask(self, flt: Filter) -> np.ndarray:
        mask = np.ones(self.size, dtype=bool)
        for col, values in flt.allowed.items():
            codes, known = self._codes[col]
            allowed = np.zeros(len(known) + 1, dtype=bool)  # the extra last slot is code -1 (null)
            allowed[[known[v] for v in values if v in known]] = True
            mask &= allowed[codes]
        return mask

    def _filter_clauses(self, flt: Filter) -> list[tuple[tantivy.Occur, tantivy.Query]]:
        clauses = []
        for col, values in flt.allowed.items():
            q = tantivy.Query.term_set_query(self._schema, FILTER_FIELDS[col], list(values) or ["\x00"])
            clauses.append((tantivy.Occur.Must, tantivy.Query.const_score_query(q, 0.0)))
        return clauses

    # --- searches ------------------------------------------------------------------------------

    def doc_freq(self, term: str, field: str = "body") -> int:
        return int(self.searcher.doc_freq(field, term))

    def lexical(
        self,
        terms: Sequence[str],
        flt: Filter,
        k: int,
        skeletons: Sequence[str] = (),
        phonetic: Sequence[str] = (),
    ) -> list[tuple[int, float]]:
        """BM25 top `k` (row, score) among the chunks the filter allows.

        Terms match the body; Arabizi skeletons and phonetic keys match their own fields.
        """
        if not terms or not self.size:
            return []
        should = [
            (tantivy.Occur.Should, tantivy.Query.term_query(self._schema, field, t))
            for field, values in (("body", terms), ("skel", skeletons), ("phon", phonetic))
            for t in values
        ]
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, tantivy.Query.boolean_query(should)), *self._filter_clauses(flt)]
        )
        hits = self.searcher.search(query, k).hits
        return [(int(self.searcher.doc(addr)["row"][0]), float(score)) for score, addr in hits]

    def dense(self, query: np.ndarray, mask: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Exact cosine top `k` (row, score) among the rows of `mask`."""
        if not self.size or not mask.any():
            return []
        scores = similarities(self.vectors, query)
        scores[~mask] = -np.inf
        k = min(k, int(mask.sum()))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(r), float(scores[r])) for r in top]

    def langs(self, rows: Sequence[int]) -> list[str | None]:
        """The language label of each of `rows` (None where the chunk has none)."""
        codes, known = self._codes["lang"]
        names: list[str | None] = [*known, None]  # code -1 (null) is the last entry
        return [names[c] for c in codes[np.asarray(rows, dtype=np.int64)].tolist()] if rows else []

    def rows(self, rows: Sequence[int]) -> list[dict[str, object]]:
        return self.meta.take(pa.array(rows, type=pa.int64())).to_pylist() if rows else []


# --- the per-process cache of open indexes ---------------------------------------------------------

_open: dict[Path, CollectionIndex] = {}
_guard = threading.Lock()


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # one builder per collection across processes
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def open_index(
    folder: Path, snapshot_id: int, load_table: Callable[[], pa.Table], dim: int
) -> CollectionIndex:
    """The index of `snapshot_id`, built from `load_table()` (a pyarrow Table) if no process built it yet."""
    with _guard:
        current = _open.get(folder)
        if current is not None and current.snapshot_id == snapshot_id:
            return current
    path = folder / f"{snapshot_id}.v{FORMAT}"
    with _locked(folder):
        if not path.exists():
            table = load_table()
            CollectionIndex.build(path, table, snapshot_id, dim)
        keep = {path.name, current.path.name if current else ""}
        for old in folder.iterdir():  # keep the newest two: a reader may still hold the previous one
            if old.is_dir() and old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)
    index = CollectionIndex(path, snapshot_id)
    with _guard:
        _open[folder] = index
    return index
