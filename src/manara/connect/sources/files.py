"""Files source: every file of a folder (or a glob) in the formats the lake reads.

Cursor: the files already loaded (relative path → size and modification time) and, for the file
being loaded, how many of its rows are committed. A rerun skips loaded files, continues a file
from its committed row, and picks up new files whatever their names. A file that cannot be read
(bad encoding, truncated, not the format it claims) goes to the quarantine whole, with the reader's
reason, and the run goes on with the next file.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from manara.connect.protocol import Chunk, Connector, Context, Cursor, Options, rejects_table
from manara.errors import BadRequest, Forbidden, ManaraError
from manara.lake.ingest import duckdb_types
from manara.lake.readers import open_source

RAW_PAYLOAD_LIMIT = 1 << 20  # a quarantined file keeps its first MiB as payload


class FilesOptions(Options):
    path: str = Field(description="a folder, or a glob such as /data/in/*.csv")
    pattern: str = Field("*", description="file-name glob inside the folder")
    recursive: bool = Field(False, description="also read sub-folders")
    format: str | None = Field(None, description="csv | json | parquet | xlsx (default: from the extension)")
    encoding: str | None = Field(None, description="text encoding of CSV files (default: detected)")
    delimiter: str | None = Field(None, description="CSV delimiter (default: detected)")
    types: dict[str, str] = Field(
        default_factory=dict, description="fixed CSV column types, e.g. {cin: string}"
    )


def _fingerprint(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


class FilesSource:
    def __init__(self, options: FilesOptions, context: Context) -> None:
        self.options = options
        self.context = context
        self.types = duckdb_types(options.types)
        raw = Path(options.path).expanduser()
        if any(c in options.path for c in "*?["):
            self.root, self.glob = raw.parent, raw.name
        else:
            self.root, self.glob = raw, options.pattern
        resolved = self.root.resolve()
        roots = [Path(r).resolve() for r in context.file_roots]
        if context.file_roots and not any(resolved.is_relative_to(r) for r in roots):
            raise Forbidden(
                f"files source: {self.root} is outside the folders pipelines may read "
                f"({', '.join(map(str, roots))}); an administrator can add it to the file_roots setting"
            )
        if not self.root.is_dir():
            raise BadRequest(f"files source: {self.root} is not a folder")

    def files(self) -> list[tuple[str, Path]]:
        found = self.root.rglob(self.glob) if self.options.recursive else self.root.glob(self.glob)
        return sorted((str(p.relative_to(self.root)), p) for p in found if p.is_file())

    def read(self, cursor: Cursor | None) -> Iterator[Chunk]:
        done: dict[str, str] = dict((cursor or {}).get("done", {}))
        current = (cursor or {}).get("file")
        for rel, path in self.files():
            fp = _fingerprint(path)
            if done.get(rel) == fp:
                continue
            skip = int(cursor.get("rows", 0)) if cursor and current == rel and cursor.get("fp") == fp else 0
            yield from self._read_file(rel, path, fp, skip, done)
            done[rel] = fp

    def _read_file(self, rel: str, path: Path, fp: str, skip: int, done: dict[str, str]) -> Iterator[Chunk]:
        rows = 0
        try:
            with open_source(
                path, format=self.options.format, encoding=self.options.encoding,
                delimiter=self.options.delimiter, tmp_dir=self.context.tmp_dir, display_name=rel,
                column_types=self.types or None,
            ) as src:  # fmt: skip
                for batch in src.batches:
                    start, rows = rows, rows + batch.num_rows
                    if rows <= skip or batch.num_rows == 0:
                        continue
                    if start < skip:
                        batch = batch.slice(skip - start)
                        start = skip
                    yield Chunk(
                        batch,
                        {"done": done, "file": rel, "fp": fp, "rows": rows},
                        f"{rel} rows {start + 1}–{rows}",
                        bytes_read=batch.nbytes,
                    )
        except ManaraError as err:
            # a file that breaks after some rows were handed over keeps them; the rest is quarantined
            reason = f"{err.detail} (after row {rows})" if rows > skip else err.detail
            yield Chunk(
                None, {"done": {**done, rel: fp}}, rel, rejects_table([(reason, rel, _payload(path))]),
                bytes_read=path.stat().st_size,
            )  # fmt: skip
            return
        yield Chunk(None, {"done": {**done, rel: fp}}, rel)


def _payload(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(RAW_PAYLOAD_LIMIT)
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(head).decode("ascii")


CONNECTOR = Connector(
    name="files",
    kind="source",
    summary="files of a folder or glob: CSV, JSON lines, Parquet, Excel",
    options=FilesOptions,
    factory=FilesSource,
)
