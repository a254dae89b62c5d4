"""Files source: every file of a folder (or a glob) in the formats the lake reads.

Cursor: the files already loaded (relative path → size and modification time) and, for the file
being loaded, how many of its rows are committed. A rerun skips loaded files, continues a file
from its committed row, and picks up new files whatever their names. A file that cannot be read
(bad encoding, truncated, not the format it claims) goes to the quarantine whole, with the reader's
reason, and the run goes on with the next file.

**Watched folders** (`watch: true`). After loading what is there, the run keeps watching the folder
and loads each new or changed file as soon as it is complete, with the same cursor (so exactly-once
and resume are unchanged). The folder is scanned every `tick_seconds` (a directory listing and one
`stat` per matching file: no busy loop, and it works where filesystem events do not, on NFS/SMB
shares and container bind mounts). A file is read only once its size and modification time have not
changed for `settle_seconds`, so a file still being copied is never read half; a file that
disappears before it is read is skipped. Names that partial uploads use are ignored (in every run,
watched or not): any part of the
path starting with `.` (rsync's `.name.XXXXXX`, LibreOffice's `.~lock` files, hidden folders) and
names ending in `.tmp`, `.part`, `.partial`, `.crdownload` or `.filepart` (browsers, WinSCP,
curl/wget scripts); a file renamed from such a name to its final one is picked up then.

Like the listening sources (`manara.connect.stream`, whose option definitions these share), a
watching run ends when the pipeline is asked to stop (`manara up` shutting down; the run returns
at the next chunk and a rerun continues where it stopped), after `max_seconds`, or when nothing new
arrived for `idle_seconds` (default 5 s, so that a run started from the CLI or the API returns; set
`idle_seconds: null` with `schedule: "@continuous"` to watch until the hub stops). While waiting it
yields an empty *tick* chunk every `tick_seconds`, so the runner commits by time (`commit_seconds`).
Without `watch` a run reads every file once and returns, as it always did.
"""

from __future__ import annotations

import base64
import os
import stat
import threading
import time
from collections.abc import Generator, Iterator
from copy import copy
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from manara.connect.protocol import Chunk, Connector, Context, Cursor, Options, rejects_table
from manara.connect.stream import StreamOptions
from manara.errors import BadRequest, ManaraError
from manara.lake.ingest import duckdb_types
from manara.lake.readers import open_source

RAW_PAYLOAD_LIMIT = 1 << 20  # a quarantined file keeps its first MiB as payload
# names partial uploads use while a file is on its way (matched case-insensitively; every run)
PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart")
WATCH_OPTIONS = ("settle_seconds", "max_seconds", "idle_seconds", "tick_seconds")
MIN_WAIT_S = 0.01  # the shortest sleep between two scans


def _like_stream(name: str, description: str) -> Any:
    """A StreamOptions field (default and limits), described for the files source."""
    info = copy(StreamOptions.model_fields[name])
    info.description = description
    return info


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
    watch: bool = Field(
        False,
        description="after loading what is there, keep watching for new or changed files (names "
        "starting with '.' or ending in .tmp/.part/.partial/.crdownload/.filepart are ignored)",
    )
    settle_seconds: float = Field(
        2.0, ge=0, le=3600,
        description="watch: read a file once its size and modification time have not changed for this long",
    )  # fmt: skip
    max_seconds: float | None = _like_stream(
        "max_seconds", "watch: stop a run after this many seconds (null: only idle_seconds or a stop ends it)"
    )
    idle_seconds: float | None = _like_stream(
        "idle_seconds",
        "watch: stop a run when no new or changed file arrived for this long (null: until stopped)",
    )
    tick_seconds: float = _like_stream(
        "tick_seconds",
        "watch: how often the folder is scanned, and the longest wait before the runner hears from the source",
    )

    @model_validator(mode="after")
    def _watch_only(self) -> FilesOptions:
        if not self.watch:
            unused = [name for name in WATCH_OPTIONS if name in self.model_fields_set]
            if unused:
                raise ValueError(f"{', '.join(unused)}: only used with watch: true")
        return self


def _fingerprint(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _partial(rel: str) -> bool:
    """A name a partial upload uses: any part starting with '.', or a temporary suffix."""
    return rel.startswith(".") or f"{os.sep}." in rel or rel.lower().endswith(PARTIAL_SUFFIXES)


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
        context.check_readable(self.root, "files source")
        if not self.root.is_dir():
            raise BadRequest(f"files source: {self.root} is not a folder")

    def _matches(self) -> Iterator[Path]:
        return self.root.rglob(self.glob) if self.options.recursive else self.root.glob(self.glob)

    def files(self) -> list[tuple[str, Path]]:
        found = ((str(p.relative_to(self.root)), p) for p in self._matches())
        return sorted((rel, p) for rel, p in found if not _partial(rel) and p.is_file())

    def scan(self) -> dict[str, tuple[Path, str]]:
        """Watch mode: relative path → (path, fingerprint) of the regular files there now, partial
        uploads left out. A file that vanishes during the scan is not in it."""
        found = {}
        for p in self._matches():
            rel = str(p.relative_to(self.root))
            if _partial(rel):
                continue
            try:
                st = p.stat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found[rel] = (p, f"{st.st_size}:{st.st_mtime_ns}")
        return found

    def read(self, cursor: Cursor | None) -> Iterator[Chunk]:
        if self.options.watch:
            yield from self._watch(cursor)
            return
        done: dict[str, str] = dict((cursor or {}).get("done", {}))
        for rel, path in self.files():
            fp = _fingerprint(path)
            if done.get(rel) == fp:
                continue
            done = yield from self._read_file(rel, path, fp, _skip(cursor, rel, fp), done)

    def _watch(self, cursor: Cursor | None) -> Iterator[Chunk]:
        """Load what is there and what arrives, each file once it has settled; ticks while waiting."""
        opts = self.options
        stop = self.context.stop if self.context.stop is not None else threading.Event()
        started = time.monotonic()
        done: dict[str, str] = dict((cursor or {}).get("done", {}))
        last: Cursor = cursor if cursor is not None else {"done": done}  # what a tick hands back
        pending: dict[str, tuple[str, float]] = {}  # not yet read: fingerprint, seen unchanged since
        quiet_since = started  # when a new or changed file was last seen, or a file last read
        while not stop.is_set():
            checked = time.monotonic()
            found = self.scan()
            seen_at = time.monotonic()
            ready = []
            for rel in [rel for rel in pending if rel not in found]:
                del pending[rel]  # gone before it settled: skipped
            for rel, (_, fp) in found.items():
                if done.get(rel) == fp:
                    continue
                entry = pending.get(rel)
                if entry is None or entry[0] != fp:
                    pending[rel] = (fp, seen_at)
                    quiet_since = seen_at
                elif checked - entry[1] >= opts.settle_seconds:
                    ready.append(rel)
            if opts.settle_seconds == 0:
                ready = sorted(pending)
            for rel in sorted(ready):
                path, fp = found[rel]
                del pending[rel]
                try:  # the scan may be a while ago when files before this one were long to read
                    now_fp = _fingerprint(path)
                except OSError:
                    continue  # gone: skipped
                if now_fp != fp:
                    pending[rel] = (now_fp, time.monotonic())
                    continue
                before = done
                done = yield from self._read_file(rel, path, fp, _skip(cursor, rel, fp), done, stop=stop)
                if stop.is_set():
                    return  # the runner commits what it has; a rerun continues from it
                if done is not before:
                    last = {"done": done}
                quiet_since = time.monotonic()
                if opts.max_seconds is not None and quiet_since - started >= opts.max_seconds:
                    return
            now = time.monotonic()
            deadlines = [now + opts.tick_seconds]
            deadlines += [since + opts.settle_seconds for _, since in pending.values()]
            if opts.max_seconds is not None:
                if now - started >= opts.max_seconds:
                    return
                deadlines.append(started + opts.max_seconds)
            if opts.idle_seconds is not None and not pending:
                if now - quiet_since >= opts.idle_seconds:
                    return
                deadlines.append(quiet_since + opts.idle_seconds)
            stop.wait(max(min(deadlines) - now, MIN_WAIT_S))
            yield Chunk(None, last, "listening")  # a tick: lets the runner commit by time

    def _read_file(
        self,
        rel: str,
        path: Path,
        fp: str,
        skip: int,
        done: dict[str, str],
        stop: threading.Event | None = None,
    ) -> Generator[Chunk, None, dict[str, str]]:
        """Chunks of one file; returns the loaded files after it (a new dict: a cursor handed out is
        never changed afterwards, whenever the runner's commit thread serialises it).

        With `stop` (watch mode): returns `done` unchanged when stopped part-way, and when the file
        disappeared before any row of it was handed over (skipped)."""
        after = {**done, rel: fp}
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
                    if stop is not None and stop.is_set():
                        return done
        except (ManaraError, FileNotFoundError) as err:
            gone = stop is not None and not path.exists()
            if gone and rows <= skip:
                return done  # vanished before it was read: skipped
            if not isinstance(err, ManaraError) and not gone:
                raise
            # a file that breaks after some rows were handed over keeps them; the rest is quarantined
            detail = err.detail if isinstance(err, ManaraError) else f"{rel}: the file disappeared"
            reason = f"{detail} (after row {rows})" if rows > skip else detail
            if gone:
                yield Chunk(None, {"done": after}, rel, rejects_table([(reason, rel, None)]))
                return after
            yield Chunk(
                None, {"done": after}, rel, rejects_table([(reason, rel, _payload(path))]),
                bytes_read=path.stat().st_size,
            )  # fmt: skip
            return after
        yield Chunk(None, {"done": after}, rel)
        return after


def _skip(cursor: Cursor | None, rel: str, fp: str) -> int:
    """Rows of `rel` already committed, when the cursor stopped inside this very file."""
    if cursor and cursor.get("file") == rel and cursor.get("fp") == fp:
        return int(cursor.get("rows", 0))
    return 0


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
    summary="files of a folder or glob: CSV, JSON lines, Parquet, Excel; scheduled or watched",
    options=FilesOptions,
    factory=FilesSource,
)
