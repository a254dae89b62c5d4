"""Open an incoming file as a stream of Arrow record batches.

CSV and JSON are parsed by DuckDB (its sniffer detects dialect and types and its errors name the
line and column); Parquet by pyarrow; XLSX by openpyxl. Text encodings that DuckDB does not read
natively (Windows-1256, UTF-16, Latin-1…) are transcoded to UTF-8 in a streaming pass first.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import tempfile
import zipfile
from collections.abc import Collection, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from manara.errors import (
    BadRequest,
    EmptyFile,
    EncodingError,
    MalformedFile,
    SchemaMismatch,
    UnsupportedFormat,
)
from manara.lake import duck

BATCH_ROWS = 131_072
MAX_LINE_BYTES = 8 * 1024 * 1024
SAMPLE_BYTES = 1 << 20
READER_MEMORY = "128MB"  # a streaming file read holds a few buffers, not the file: keeps the peak flat
FORMATS = ("csv", "json", "parquet", "xlsx")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".json": "json",
    ".ndjson": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "xlsx",
}
_DELIMITERS = ",;\t|"


@dataclass
class Source:
    """An opened file: its batches, and what was detected about it."""

    path: Path
    format: str
    batches: pa.RecordBatchReader
    encoding: str | None = None
    delimiter: str | None = None
    notes: list[str] = field(default_factory=list)


def detect_format(path: Path, declared: str | None = None, label: str | None = None) -> str:
    label = label or path.name
    if declared:
        if declared not in FORMATS:
            raise UnsupportedFormat(f"unknown format '{declared}': choose one of {', '.join(FORMATS)}")
        return declared
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04"):
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                if any(n.startswith("xl/") for n in z.namelist()):
                    return "xlsx"
        raise UnsupportedFormat(f"{label}: a ZIP archive that is not an XLSX workbook")
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise UnsupportedFormat(
            f"{label}: cannot tell the format from the extension '{path.suffix}'; "
            f"pass --format ({', '.join(FORMATS)})"
        )
    return fmt


# --- encodings -----------------------------------------------------------------------------------

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def detect_encoding(sample: bytes) -> str:
    """Name the encoding of a text sample: BOMs first, then strict UTF-8, then a statistical guess."""
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name
    if len(sample) >= 4 and sample[1::2].count(0) > len(sample) // 4 and sample[0::2].count(0) == 0:
        return "utf-16-le"
    if len(sample) >= 4 and sample[0::2].count(0) > len(sample) // 4 and sample[1::2].count(0) == 0:
        return "utf-16-be"
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as e:
        if e.start >= len(sample) - 3 and e.reason == "unexpected end of data":
            return "utf-8"  # the sample cut a multi-byte character in half
    from charset_normalizer import from_bytes

    best = from_bytes(sample, cp_isolation=["cp1256", "cp1252", "latin_1"]).best()
    if best is None:
        raise EncodingError(
            "cannot tell the text encoding; pass --encoding (e.g. utf-8, windows-1256, latin-1)"
        )
    return str(best.encoding)


def _normalise_encoding(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise EncodingError(f"unknown encoding '{name}'") from None


def _transcode_to_utf8(path: Path, encoding: str, directory: Path, label: str) -> Path:
    """Stream `path` from `encoding` into a UTF-8 temporary file; names the byte offset of a bad byte."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    out = tempfile.NamedTemporaryFile(dir=directory, suffix=".csv", delete=False)  # noqa: SIM115
    offset = 0
    line = 1
    try:
        with path.open("rb") as src, out:
            while chunk := src.read(SAMPLE_BYTES):
                try:
                    text = decoder.decode(chunk)
                except UnicodeDecodeError as e:
                    bad_line = line + chunk[: e.start].count(b"\n")
                    raise EncodingError(
                        f"{label} is not valid {encoding}: byte 0x{chunk[e.start]:02x} at offset "
                        f"{offset + e.start} (line {bad_line}); the file may mix encodings"
                    ) from None
                out.write(text.encode("utf-8"))
                offset += len(chunk)
                line += chunk.count(b"\n")
            out.write(decoder.decode(b"", final=True).encode("utf-8"))
    except BaseException:
        Path(out.name).unlink(missing_ok=True)
        raise
    return Path(out.name)


# --- CSV -----------------------------------------------------------------------------------------


def _sniff_delimiter(text: str) -> str:
    lines = [ln for ln in text.splitlines()[:50] if ln.strip()]
    if not lines:
        return ","
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=_DELIMITERS).delimiter
    except csv.Error:
        # fall back to the delimiter most frequent in the header line
        counts = {d: lines[0].count(d) for d in _DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


_LEADING_ZERO = re.compile(r"^[+-]?0\d+$")


def _leading_zero_columns(text: str, delimiter: str) -> list[str]:
    """Columns whose sampled values have leading zeros (ICE, RIB, postal codes): numbers would drop them."""
    lines = text.splitlines()[:2000]
    if len(lines) > 1 and len(text) >= SAMPLE_BYTES - 1:
        lines = lines[:-1]  # the sample may end mid-line
    try:
        rows = list(csv.reader(lines, delimiter=delimiter))
    except csv.Error:
        return []
    if not rows:
        return []
    header = rows[0]
    found = []
    for i, name in enumerate(header):
        if any(i < len(r) and _LEADING_ZERO.match(r[i].strip()) for r in rows[1:]):
            found.append(name)
    return found


def _header(text: str, delimiter: str, label: str) -> list[str]:
    """The header row, checked: DuckDB would silently rename a repeated name to 'name_1'."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_BYTES))
    try:
        header = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
    except csv.Error as e:
        raise MalformedFile(f"{label}: unreadable header line ({e})") from None
    names = [h.strip() for h in header]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SchemaMismatch(f"{label}: the header has duplicate column names: {', '.join(dupes)}")
    return header


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_LINE_RE = re.compile(r"CSV Error on Line: (\d+)")
_CONVERT_RE = re.compile(r'converting column "(.+?)"\. Could not convert string "(.*?)" to \'(\w+)\'', re.S)


def _duckdb_error(label: str, err: BaseException) -> Exception:
    """Turn a DuckDB reader error into one readable line that names the line and column."""
    msg = str(err)
    line_m = _LINE_RE.search(msg)
    where = f"line {line_m.group(1)}" if line_m else "the file"
    if conv := _CONVERT_RE.search(msg):
        column, value, duck_type = conv.groups()
        data_row = int(line_m.group(1)) - 1 if line_m else None
        return SchemaMismatch(
            f"{label}: column '{column}' changes type at {where}: the first rows made it "
            f"{duck_type.lower()}, but this row holds {value!r} (text)",
            column=column,
            row=data_row,
            expected_type=duck_type.lower(),
            found_type="string",
        )
    if "Invalid unicode" in msg or "not utf-8 encoded" in msg:
        return EncodingError(
            f"{label}: {where} is not valid UTF-8 although the start of the file is; "
            "the file mixes encodings (if all of it is in another encoding, name it with --encoding)"
        )
    if "Maximum line size" in msg:
        return MalformedFile(
            f"{label}: {where} is longer than the {MAX_LINE_BYTES // (1024 * 1024)} MiB line limit"
        )
    if "Error when sniffing file" in msg:
        return MalformedFile(
            f"{label}: not a consistent CSV file: its rows do not all have the same number of columns, "
            "or a quote is not closed"
        )
    first = msg.strip().splitlines()[0] if msg.strip() else type(err).__name__
    first = first.replace("Invalid Input Error: ", "").replace("Conversion Error: ", "")
    extra = ""
    for ln in msg.splitlines():
        if ln.startswith(("Expected Number of Columns", "Original Line")):
            extra += "; " + ln.strip()[:200]
    return MalformedFile(f"{label}: {first[:300]}{extra}")


def _duckdb_reader(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object], label: str
) -> pa.RecordBatchReader:
    try:
        reader = con.sql(sql, params=params).to_arrow_reader(BATCH_ROWS)
    except (duckdb.Error, OSError) as e:
        raise _duckdb_error(label, e) from None

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        except (duckdb.Error, OSError, pa.ArrowException) as e:
            raise _duckdb_error(label, e) from None

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def _open_csv(
    path: Path,
    encoding: str | None,
    delimiter: str | None,
    tmp: Path,
    stack: ExitStack,
    label: str,
    column_types: Mapping[str, str],
    text_columns: Collection[str],
) -> Source:
    with path.open("rb") as f:
        sample = f.read(SAMPLE_BYTES)
    notes = []
    enc = _normalise_encoding(encoding) if encoding else _normalise_encoding(detect_encoding(sample))
    read_path = path
    if enc not in ("utf-8", "utf-8-sig", "ascii"):
        read_path = _transcode_to_utf8(path, enc, tmp, label)
        stack.callback(read_path.unlink, missing_ok=True)
        notes.append(f"transcoded from {enc}")
        with read_path.open("rb") as f:
            sample = f.read(SAMPLE_BYTES)
    text = sample.decode("utf-8", errors="replace").lstrip("\ufeff")
    delim = delimiter or _sniff_delimiter(text)
    header = _header(text, delim, label)
    zeros = _leading_zero_columns(text, delim)
    if zeros:
        notes.append(f"kept as text (leading zeros): {', '.join(zeros)}")
    unknown = sorted(set(column_types) - set(header))
    if unknown:
        raise BadRequest(f"{label}: --type names columns the file does not have: {', '.join(unknown)}")
    wanted = {c: "VARCHAR" for c in header if c in set(zeros) | set(text_columns)} | dict(column_types)
    types = ", ".join(f"{_sql_string(c)}: {_sql_string(t)}" for c, t in wanted.items())
    con = duck.connect(memory_limit=READER_MEMORY)
    stack.callback(con.close)
    sql = (
        "SELECT * FROM read_csv(?, delim = ?, header = true, skip = 0, strict_mode = true, "
        f"max_line_size = {MAX_LINE_BYTES}, buffer_size = {2 * MAX_LINE_BYTES}, sample_size = 20480, "
        "encoding = 'utf-8'" + (f", types = {{{types}}}" if types else "") + ")"
    )
    reader = _duckdb_reader(con, sql, [str(read_path), delim], label)
    return Source(path, "csv", reader, encoding=enc, delimiter=delim, notes=notes)


def _open_json(path: Path, stack: ExitStack, label: str) -> Source:
    con = duck.connect(memory_limit=READER_MEMORY)
    stack.callback(con.close)
    sql = "SELECT * FROM read_json(?, format = 'auto', maximum_object_size = ?)"
    reader = _duckdb_reader(con, sql, [str(path), MAX_LINE_BYTES * 2], label)
    return Source(path, "json", reader, encoding="utf-8")


def _open_parquet(path: Path, label: str) -> Source:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise MalformedFile(f"{label}: truncated or corrupt Parquet file ({e})") from None

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from pf.iter_batches(batch_size=BATCH_ROWS)
        except (pa.ArrowException, OSError) as e:
            raise MalformedFile(f"{label}: corrupt Parquet data ({e})") from None

    return Source(path, "parquet", pa.RecordBatchReader.from_batches(pf.schema_arrow, batches()))


def _open_xlsx(path: Path, label: str) -> Source:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many types for broken workbooks
        raise MalformedFile(f"{label}: not a readable XLSX workbook ({e})") from None
    ws = wb.worksheets[0]
    rows = ws.iter_rows(values_only=True)
    header = next(rows, None)
    if header is None:
        wb.close()
        raise EmptyFile(f"{label}: the first sheet is empty")
    names = [str(h).strip() if h is not None else f"column{i}" for i, h in enumerate(header)]
    # Sheets are small next to CSV exports: collect column-wise, let Arrow infer the types per column.
    columns: list[list[object]] = [[] for _ in names]
    for row in rows:
        if row is None or all(v is None for v in row):
            continue
        for i in range(len(names)):
            columns[i].append(row[i] if i < len(row) else None)
    wb.close()
    arrays = []
    for values in columns:
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # a column mixing numbers and text is text
            arrays.append(pa.array([None if v is None else str(v) for v in values], pa.string()))
    table = pa.Table.from_arrays(arrays, names=names)
    return Source(path, "xlsx", pa.RecordBatchReader.from_batches(table.schema, table.to_batches(BATCH_ROWS)))


@contextmanager
def open_source(
    path: Path,
    *,
    format: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    tmp_dir: Path | None = None,
    display_name: str | None = None,
    column_types: Mapping[str, str] | None = None,
    text_columns: Collection[str] = (),
) -> Iterator[Source]:
    """Open `path` for reading; temporary files and connections are released on exit.

    `display_name` names the file in error messages (an upload's own name, not its temporary file).
    `column_types` fixes CSV columns' types (DuckDB type names), overriding detection; `text_columns`
    are read as text when a CSV has them (the dataset already stores them as text).
    """
    label = display_name or path.name
    if not path.is_file():
        raise MalformedFile(f"{label}: no such file")
    if path.stat().st_size == 0:
        raise EmptyFile(f"{label} is empty (0 bytes)")
    fmt = detect_format(path, format, label)
    tmp = tmp_dir or Path(tempfile.gettempdir())
    tmp.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if column_types and fmt != "csv":
            raise BadRequest(f"{label}: column types can be fixed for CSV files only (this is {fmt})")
        if fmt == "csv":
            yield _open_csv(path, encoding, delimiter, tmp, stack, label, column_types or {}, text_columns)
        elif fmt == "json":
            yield _open_json(path, stack, label)
        elif fmt == "parquet":
            yield _open_parquet(path, label)
        else:
            yield _open_xlsx(path, label)
