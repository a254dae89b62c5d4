"""Ingest of broken or hostile files: a clear error, and the existing dataset left exactly as it was.

Each case ingests into a dataset that already holds rows; after the failure its current snapshot,
its rows and its schema must be unchanged, the failure must be in the audit log with outcome
"error", and the audit chain must still verify.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manara.errors import (
    BadRequest,
    EmptyFile,
    EncodingError,
    Forbidden,
    IngestError,
    InvalidName,
    MalformedFile,
    ManaraError,
    SchemaMismatch,
    UnsupportedFormat,
)
from manara.govern import audit
from manara.govern.principal import Principal
from manara.lake.ingest import ingest_file
from manara.meta.models import Role
from manara.workspace import Workspace

DATASET = "registre"
BASE_ROWS = [(1, "الدار البيضاء"), (2, "فاس"), (3, "مكناس")]


def state(ws: Workspace, name: str = DATASET) -> tuple[int | None, int]:
    """(current snapshot id, row count) of a dataset of the default tenant, straight from Iceberg."""
    table = ws.catalog.load_table(("default", name))
    return table.metadata.current_snapshot_id, table.scan().to_arrow().num_rows


def contents(ws: Workspace, name: str = DATASET) -> tuple[list[str], list[tuple[Any, ...]], int]:
    table = ws.catalog.load_table(("default", name))
    data = table.scan().to_arrow()
    return data.column_names, sorted(zip(*data.to_pydict().values(), strict=True)), len(table.snapshots())


@pytest.fixture
def base(ws: Workspace, operator: Principal, tmp_path: Path) -> tuple[tuple[int | None, int], Any]:
    src = tmp_path / "base.csv"
    src.write_text("id,city\n" + "".join(f"{i},{c}\n" for i, c in BASE_ROWS), "utf-8")
    ingest_file(ws, operator, src, DATASET)
    return state(ws), contents(ws)


# --- the cases --------------------------------------------------------------------------------------

LATE = 30_000  # past DuckDB's 20480-row type/dialect sample
QUOTED_BODY = "".join(f'{i},"c, {i}"\n' for i in range(10, 10 + LATE - 1))  # lines 2 .. LATE


@dataclass
class Case:
    make: Callable[[Path], Path]
    error: type[ManaraError]
    words: list[str]
    kwargs: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] | None = None


def _text(name: str, text: str, encoding: str = "utf-8") -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / name
        p.write_bytes(text.encode(encoding))
        return p

    return make


def _bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / name
        p.write_bytes(data)
        return p

    return make


def _truncated_parquet(d: Path) -> Path:
    p = d / "cut.parquet"
    pq.write_table(pa.table({"id": list(range(10, 2010)), "city": ["Rabat"] * 2000}), p)
    data = p.read_bytes()
    p.write_bytes(data[:-100])
    return p


def _mixed_encoding(d: Path) -> Path:
    p = d / "mixed.csv"
    with p.open("wb") as f:
        f.write(b"id,city\n")
        f.write("".join(f"{i},الدار البيضاء حي {i % 97}\n" for i in range(10, 200_010)).encode("utf-8"))
        f.write("200010,طنجة\n".encode("cp1256"))  # line 200002
    return p


def _zip_not_xlsx(d: Path) -> Path:
    p = d / "archive.xlsx"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("readme.txt", "not a workbook")
        z.writestr("data.csv", "id,city\n9,Rabat\n")
    return p


def _broken_xlsx(d: Path) -> Path:
    p = d / "broken.xlsx"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("xl/workbook.xml", "<<< not xml")
    return p


def _duplicate_parquet(d: Path) -> Path:
    p = d / "dupcol.parquet"
    table = pa.Table.from_arrays(
        [pa.array([10]), pa.array(["a"]), pa.array(["b"])], names=["id", "city", "city"]
    )
    pq.write_table(table, p)
    return p


CASES: dict[str, Case] = {
    "columns-inconsistent-late": Case(
        _text("cols.csv", "id,city\n" + QUOTED_BODY + f"{LATE + 10},x,extra\n{LATE + 11},y\n"),
        MalformedFile,
        ["cols.csv", f"Line: {LATE + 1}", "Expected Number of Columns: 2", "Found: 3"],
    ),
    "columns-missing-late": Case(
        _text("short.csv", "id,city\n" + QUOTED_BODY + f"{LATE + 10}\n{LATE + 11},y\n"),
        MalformedFile,
        ["short.csv", f"Line: {LATE + 1}", "Expected Number of Columns: 2", "Found: 1"],
    ),
    "unterminated-quote-late": Case(
        _text("quote.csv", "id,city\n" + QUOTED_BODY + f'{LATE + 10},"never closed\n{LATE + 11},y\n'),
        MalformedFile,
        ["quote.csv", f"Line: {LATE + 1}", "never closed"],
    ),
    "truncated-parquet": Case(
        _truncated_parquet, MalformedFile, ["cut.parquet", "truncated or corrupt Parquet"]
    ),
    "declared-utf8-but-cp1256": Case(
        _text("declared.csv", "id,city\n10,الرباط\n11,سلا\n", "cp1256"),
        EncodingError,
        ["declared.csv", "line 2", "not valid UTF-8"],
        kwargs={"encoding": "utf-8"},
    ),
    "mixed-encoding": Case(
        _mixed_encoding, EncodingError, ["mixed.csv", "line 200002", "not valid UTF-8", "mixes encodings"]
    ),
    "type-changes-half-way": Case(
        _text("half.csv", "id,city\n" + "".join(f"{i},Rabat\n" for i in range(10, 100_010)) + "abc,Fès\n"),
        SchemaMismatch,
        ["half.csv", "column 'id'", "line 100002", "'abc'"],
        extra={"column": "id", "row": 100_001},
    ),
    "empty-file": Case(_bytes("empty.csv", b""), EmptyFile, ["empty.csv", "empty", "0 bytes"]),
    "header-only": Case(_text("header.csv", "id,city\n"), EmptyFile, ["header.csv", "no data rows"]),
    "ten-mb-single-line": Case(
        _bytes("oneline.csv", b"x" * (10 * 1024 * 1024)),
        MalformedFile,
        ["oneline.csv", "line 1", "8 MiB line limit"],
    ),
    "ten-mb-second-line": Case(
        _text("longrow.csv", "id,city\n10," + "x" * (10 * 1024 * 1024) + "\n"),
        MalformedFile,
        ["longrow.csv", "8 MiB line limit"],
    ),
    "json-truncated-mid-object": Case(
        _text("cut.json", '[{"id": 10, "city": "Rabat"}, {"id": 11, "ci'),
        MalformedFile,
        ["cut.json", "Malformed JSON"],
    ),
    "ndjson-truncated-mid-object": Case(
        _text("cut.ndjson", '{"id": 10, "city": "Rabat"}\n{"id": 11, "ci'),
        MalformedFile,
        ["cut.ndjson", "Malformed JSON"],
    ),
    "zip-not-xlsx": Case(_zip_not_xlsx, UnsupportedFormat, ["archive.xlsx", "ZIP archive", "not an XLSX"]),
    "xlsx-corrupt": Case(_broken_xlsx, MalformedFile, ["broken.xlsx", "not a readable XLSX workbook"]),
    "unknown-extension": Case(
        _text("data.xyz", "id,city\n10,Rabat\n"),
        UnsupportedFormat,
        ["data.xyz", "cannot tell the format", "'.xyz'"],
    ),
    "unknown-declared-format": Case(
        _text("data.csv", "id,city\n10,Rabat\n"),
        UnsupportedFormat,
        ["unknown format 'avro'"],
        kwargs={"format": "avro"},
    ),
    "unknown-encoding-name": Case(
        _text("data.csv", "id,city\n10,Rabat\n"),
        EncodingError,
        ["unknown encoding 'klingon'"],
        kwargs={"encoding": "klingon"},
    ),  # fmt: skip
    "no-such-file": Case(lambda d: d / "missing.csv", MalformedFile, ["missing.csv", "no such file"]),
    "upsert-unknown-key": Case(
        _text("up.csv", "id,city\n2,Rabat\n"),
        BadRequest,
        ["key column 'nope'", "not in the file or the dataset"],
        kwargs={"mode": "upsert", "key": "nope"},
    ),  # fmt: skip
    "upsert-duplicate-keys": Case(
        _text("dups.csv", "id,city\n2,Rabat\n2,Salé\n"),
        BadRequest,
        ["dups.csv", "Duplicate", "key"],
        kwargs={"mode": "upsert", "key": "id"},
    ),  # fmt: skip
    "upsert-empty-key": Case(
        _text("nokey.csv", "id,city\n,Rabat\n2,Salé\n"),
        BadRequest,
        ["key column 'id'", "empty values"],
        kwargs={"mode": "upsert", "key": "id"},
    ),  # fmt: skip
    "incompatible-type-row-3": Case(
        _text("typed.csv", "id,city\n10,a\n11,b\nabc,c\n"),
        SchemaMismatch,
        ["typed.csv", "'id'", "row 3", "long", "'abc'", "string"],
        extra={"column": "id", "row": 3, "expected_type": "long", "found_type": "string"},
    ),
    "parquet-duplicate-column-names": Case(
        _duplicate_parquet, SchemaMismatch, ["duplicate column names", "city"]
    ),
}

# Small CSVs that DuckDB cannot sniff: the error is the right class, but the message is wrong.
MISLABELLED = {
    "columns-inconsistent-small": _text("cols_small.csv", "id,city\n10,a\n11,b,extra\n12,c\n"),
    "unterminated-quote-small": _text("quote_small.csv", 'id,city\n10,"a, b"\n11,"never closed\n12,c\n'),
}


def _assert_failure_leaves_dataset_alone(
    ws: Workspace, operator: Principal, tmp_path: Path, base: Any, case: Case
) -> ManaraError:
    before_state, before_contents = base
    path = case.make(tmp_path)
    seq_before = audit.query(ws.engine, limit=1)[0]["seq"]

    with pytest.raises(case.error) as info:
        ingest_file(ws, operator, path, DATASET, **case.kwargs)

    err = info.value
    for word in case.words:
        assert word in err.detail, f"{word!r} not in {err.detail!r}"
    assert isinstance(err, ManaraError) and str(err) == err.detail
    if case.extra:
        assert {k: err.extra.get(k) for k in case.extra} == case.extra
    # nothing changed: same current snapshot, same rows, same schema, no extra snapshot
    assert state(ws) == before_state
    assert contents(ws) == before_contents
    # the failure is audited, with the error the user saw, and the chain still holds
    events = [e for e in audit.query(ws.engine, action="dataset.ingest", limit=5) if e["seq"] > seq_before]
    assert len(events) == 1
    assert events[0]["outcome"] == "error" and events[0]["target"] == DATASET
    assert events[0]["detail"]["error"] == err.detail
    assert audit.verify(ws.engine).ok
    return err


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_and_dataset_unchanged(
    ws: Workspace, operator: Principal, tmp_path: Path, base: Any, name: str
) -> None:
    _assert_failure_leaves_dataset_alone(ws, operator, tmp_path, base, CASES[name])


@pytest.mark.parametrize("name", list(MISLABELLED))
def test_small_malformed_csv_message_says_what_is_wrong(
    ws: Workspace, operator: Principal, tmp_path: Path, base: Any, name: str
) -> None:
    case = Case(MISLABELLED[name], MalformedFile, [])
    err = _assert_failure_leaves_dataset_alone(ws, operator, tmp_path, base, case)
    assert "line limit" not in err.detail and "8 MiB" not in err.detail
    assert any(w in err.detail.lower() for w in ("column", "quote", "dialect", "parse"))


def test_small_malformed_csv_is_still_refused_without_change(
    ws: Workspace, operator: Principal, tmp_path: Path, base: Any
) -> None:
    """Whatever the message, those small broken files are refused and change nothing."""
    for make in MISLABELLED.values():
        _assert_failure_leaves_dataset_alone(ws, operator, tmp_path, base, Case(make, MalformedFile, []))


def test_all_failures_in_one_workspace_keep_audit_chain(
    ws: Workspace, operator: Principal, tmp_path: Path, base: Any
) -> None:
    before_state, before_contents = base
    failures = 0
    for name, case in CASES.items():
        d = tmp_path / name
        d.mkdir()
        with pytest.raises(IngestError if issubclass(case.error, IngestError) else case.error):
            ingest_file(ws, operator, case.make(d), DATASET, **case.kwargs)
        failures += 1
    assert state(ws) == before_state and contents(ws) == before_contents

    result = audit.verify(ws.engine)
    assert result.ok, result
    events = audit.query(ws.engine, action="dataset.ingest", limit=1000)
    errors = [e for e in events if e["outcome"] == "error"]
    assert len(errors) == failures == len(CASES)
    assert all(
        e["detail"]["error"] and e["target"] == DATASET and e["actor"] == operator.actor for e in errors
    )
    assert [e["outcome"] for e in events].count("ok") == 1  # the base ingest only
    # each event names the file it was about
    sources = {e["detail"]["source"] for e in errors}
    assert {"cols.csv", "cut.parquet", "mixed.csv", "half.csv", "empty.csv", "oneline.csv"} <= sources


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"mode": "upsert"}, ["upsert needs --key"]),
        ({"mode": "replace"}, ["unknown mode 'replace'", "append, overwrite, upsert"]),
    ],
    ids=["upsert-without-key", "unknown-mode"],
)
def test_bad_arguments_are_refused_before_reading(
    ws: Workspace, operator: Principal, tmp_path: Path, base: Any, kwargs: dict[str, Any], words: list[str]
) -> None:
    src = tmp_path / "ok.csv"
    src.write_text("id,city\n10,Rabat\n", "utf-8")
    with pytest.raises(BadRequest) as info:
        ingest_file(ws, operator, src, DATASET, **kwargs)
    for word in words:
        assert word in info.value.detail
    assert state(ws) == base[0] and contents(ws) == base[1]
    assert audit.verify(ws.engine).ok


def test_csv_with_duplicate_column_names_is_refused(
    ws: Workspace, operator: Principal, tmp_path: Path, base: Any
) -> None:
    case = Case(
        _text("dupcol.csv", "id,city,city\n10,a,b\n"), SchemaMismatch, ["duplicate column names", "city"]
    )
    _assert_failure_leaves_dataset_alone(ws, operator, tmp_path, base, case)


def test_dataset_name_is_checked_before_reading(
    ws: Workspace, operator: Principal, tmp_path: Path, base: Any
) -> None:
    src = tmp_path / "ok.csv"
    src.write_text("id,city\n10,Rabat\n", "utf-8")
    for bad in ("../escape", "Registre", "a", "drop table;", "r" * 64):
        with pytest.raises(InvalidName, match="dataset name"):
            ingest_file(ws, operator, src, bad)
    assert state(ws) == base[0]


def test_dataset_name_with_trailing_newline_is_refused(
    ws: Workspace, operator: Principal, tmp_path: Path, base: Any
) -> None:
    src = tmp_path / "ok.csv"
    src.write_text("id,city\n10,Rabat\n", "utf-8")
    with pytest.raises(InvalidName, match="dataset name"):
        ingest_file(ws, operator, src, DATASET + "\n")
    assert [n for _, n in ws.catalog.list_tables("default")] == [DATASET]


@pytest.mark.parametrize("role", [Role.viewer, Role.analyst])
def test_roles_below_steward_cannot_ingest(
    ws: Workspace, operator: Principal, tmp_path: Path, base: Any, role: Role
) -> None:
    src = tmp_path / "ok.csv"
    src.write_text("id,city\n10,Rabat\n", "utf-8")
    low = Principal(tenant="default", tenant_id=operator.tenant_id, actor=f"user:{role.value}", role=role)
    with pytest.raises(Forbidden) as info:
        ingest_file(ws, low, src, DATASET)
    assert (
        "ingest" in info.value.detail
        and "'steward'" in info.value.detail
        and f"'{role.value}'" in info.value.detail
    )
    assert state(ws) == base[0]


def test_refused_ingest_is_audited_as_denied(ws: Workspace, tmp_path: Path) -> None:
    from manara.errors import Forbidden

    base = ws.principal()
    viewer = Principal(tenant=base.tenant, tenant_id=base.tenant_id, actor="user:viewer", role=Role.viewer)
    path = tmp_path / "v.csv"
    path.write_text("a,b\n1,2\n", "utf-8")
    with pytest.raises(Forbidden, match="steward"):
        ingest_file(ws, viewer, path, "viewer_try")
    events = audit.query(ws.engine, action="dataset.ingest", actor="user:viewer")
    assert [(e["outcome"], e["target"]) for e in events] == [("denied", "viewer_try")]
    assert "viewer_try" not in [n for _, n in ws.catalog.list_tables(base.tenant)]
