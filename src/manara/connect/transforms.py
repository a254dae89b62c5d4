"""Pipeline transforms, applied to each Arrow batch by DuckDB (vectorised, offline, in memory).

    transforms:
      - select: [cin, nom, montant, date]
      - rename: {nom: name}
      - cast: {montant: double, date: date}
      - filter: "montant > 0"
      - derive: {year: "year(date)", ttc: "montant * 1.2"}

A value that a `cast` cannot convert does not fail the run: its row goes to the quarantine with the
column, the value and the type as reason. Expressions are checked by sqlglot before any batch is
read: a single scalar expression over the batch's columns; no sub-query, no table, no file access.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot
from pydantic import BaseModel, ConfigDict, model_validator
from sqlglot import exp

from manara.connect.protocol import rejects_table
from manara.errors import BadRequest
from manara.lake import duck
from manara.lake.ingest import duckdb_types

_FORBIDDEN = (exp.Select, exp.Subquery, exp.Table, exp.Command, exp.Create, exp.Drop, exp.Insert,
              exp.Update, exp.Delete, exp.Pragma, exp.Set, exp.Copy)  # fmt: skip


class Transform(BaseModel):
    """One step: exactly one of the keys."""

    model_config = ConfigDict(extra="forbid")
    select: list[str] | None = None
    rename: dict[str, str] | None = None
    cast: dict[str, str] | None = None
    filter: str | None = None
    derive: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one(self) -> Transform:
        given = [k for k in ("select", "rename", "cast", "filter", "derive") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a transform step has exactly one of select, rename, cast, filter, derive (got {given or 'none'})"
            )
        if self.cast is not None:
            duckdb_types(self.cast)  # unknown type names are refused now, not at the first batch
        for expression in ([self.filter] if self.filter else []) + list((self.derive or {}).values()):
            check_expression(expression)
        return self


def check_expression(sql: str) -> None:
    try:
        tree = sqlglot.parse_one(sql, dialect="duckdb", into=exp.Condition)
    except Exception as err:
        raise ValueError(f"'{sql}' is not a SQL expression: {err}") from None
    bad = next((node for node in tree.walk() if isinstance(node, _FORBIDDEN)), None)
    if bad is not None:
        raise ValueError(f"'{sql}': only expressions over the batch's columns are allowed (found {bad.key})")
    for fn in tree.find_all(exp.Anonymous, exp.Func):
        name = (fn.name if isinstance(fn, exp.Anonymous) else fn.sql_name()).lower()
        if name.startswith(("read_", "glob", "getenv", "current_setting")) or "scan" in name:
            raise ValueError(f"'{sql}': function {name} is not allowed in a pipeline expression")


ROW = "__manara_source_row"  # carried through the steps: which source record a row came from


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Transformer:
    """Applies a list of steps to batches; returns the rows kept and the rows quarantined."""

    def __init__(self, steps: list[Transform]) -> None:
        self.steps = steps

    @functools.cached_property
    def con(self) -> duckdb.DuckDBPyConnection:
        """DuckDB, opened at the first step that needs it (a pipeline without transforms never does)."""
        con = duck.connect(threads=1)
        con.execute("SET enable_external_access = false")
        return con

    def apply(self, batch: pa.RecordBatch, position: str) -> tuple[pa.RecordBatch | None, pa.Table | None]:
        """The rows that pass every step, and the quarantined ones (payload: the record as the source sent
        it, so that `manara quarantine replay` can run it through a corrected mapping)."""
        if not self.steps:
            return batch, None
        if ROW in batch.schema.names:
            raise BadRequest(f"the source has a column named {ROW}, which pipelines reserve")
        self.source = pa.Table.from_batches([batch])
        table = self.source.append_column(ROW, pa.array(range(batch.num_rows), pa.int64()))
        rejects: list[tuple[str, str, str | None]] = []
        for step in self.steps:
            table = self._step(step, table, position, rejects)
            if table.num_rows == 0:
                break
        out = table.drop_columns([ROW]).combine_chunks().to_batches()
        kept = out[0] if out else None
        return kept, rejects_table(rejects) if rejects else None

    def _run(self, sql: str, table: pa.Table) -> pa.Table:
        self.con.register("batch", table)
        try:
            return self.con.sql(sql).to_arrow_table()
        except duckdb.Error as err:
            raise BadRequest(f"transform failed: {str(err).splitlines()[0]}") from None
        finally:
            self.con.unregister("batch")

    def _step(self, step: Transform, table: pa.Table, position: str, rejects: list[Any]) -> pa.Table:
        names = table.column_names
        if step.select is not None:
            missing = [c for c in step.select if c not in names]
            if missing:
                raise BadRequest(
                    f"select: no column {', '.join(missing)} (columns: {', '.join(c for c in names if c != ROW)})"
                )
            return table.select([*step.select, ROW])
        if step.rename is not None:
            missing = [c for c in step.rename if c not in names]
            if missing:
                raise BadRequest(
                    f"rename: no column {', '.join(missing)} (columns: {', '.join(c for c in names if c != ROW)})"
                )
            return table.rename_columns([step.rename.get(c, c) for c in names])
        if step.filter is not None:
            return self._run(f"SELECT * FROM batch WHERE {step.filter}", table)
        if step.derive is not None:
            derived = ", ".join(f"({e}) AS {_q(c)}" for c, e in step.derive.items())
            kept = ", ".join(_q(c) for c in names if c not in step.derive)
            return self._run(f"SELECT {kept + ', ' if kept else ''}{derived} FROM batch", table)
        assert step.cast is not None
        return self._cast(step.cast, table, position, rejects)

    def _cast(self, cast: dict[str, str], table: pa.Table, position: str, rejects: list[Any]) -> pa.Table:
        types = duckdb_types(cast)
        missing = [c for c in types if c not in table.column_names]
        if missing:
            raise BadRequest(
                f"cast: no column {', '.join(missing)} (columns: {', '.join(c for c in table.column_names if c != ROW)})"
            )
        cols = ", ".join(
            f"TRY_CAST({_q(c)} AS {types[c]}) AS {_q(c)}" if c in types else _q(c) for c in table.column_names
        )
        failed = " OR ".join(
            f"({_q(c)} IS NOT NULL AND TRY_CAST({_q(c)} AS {t}) IS NULL)" for c, t in types.items()
        )
        bad = self._run(f"SELECT * FROM batch WHERE {failed}", table)
        if bad.num_rows:
            originals = self.source.take(bad.column(ROW)).to_pylist()
            for row, original in zip(bad.to_pylist(), originals, strict=True):
                column = next(c for c, t in types.items() if row[c] is not None and self._fails(row[c], t))
                rejects.append((
                    f"cast: column '{column}' value {row[column]!r} is not a {cast[column]}",
                    f"{position}, record {row[ROW] + 1} of the batch",
                    json.dumps(original, ensure_ascii=False, default=str),
                ))  # fmt: skip
            good = f"NOT ({failed})"
        else:
            good = "true"
        return self._run(f"SELECT {cols} FROM batch WHERE {good}", table)

    def _fails(self, value: Any, sql_type: str) -> bool:
        rows = self.con.execute(f"SELECT TRY_CAST(? AS {sql_type}) IS NULL", [value]).fetchall()
        return bool(rows and rows[0][0])
