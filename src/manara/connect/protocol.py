"""The connector protocol: what a source yields and what a sink receives.

A **source** reads an outside system in Arrow record batches. Each batch comes as a `Chunk` with
the source's **cursor after that batch** (a small JSON-serialisable dict): handed back to
`Source.read`, the cursor makes the source continue exactly after the last row the chunk carried.
That is what lets a pipeline commit the cursor in the same Iceberg commit as the rows
(exactly-once). A chunk may also carry the records the source could not parse (`rejects`), each
with its reason, position and raw payload: they go to the dataset's quarantine, never dropped.

A **sink** receives the rows a pipeline has committed to the lake, group by group (`Sink`). The
lake is the default destination and is built into the pipeline runner (it needs the transaction);
other sinks (webhook, PostgreSQL, MQTT) implement `Sink`.

Connectors are found through the `manara.connectors` entry-point group (see
`manara.connect.registry`): a third party ships a package whose entry point names a `Connector` (sinks: the
`manara.sinks` group),
and `manara connectors` lists it without Manara being touched.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError

from manara.errors import BadRequest, Forbidden, ManaraError

Cursor = dict[str, Any]

REJECT_SCHEMA = pa.schema(
    [
        pa.field("reason", pa.string(), nullable=False),
        pa.field("position", pa.string(), nullable=False),  # e.g. "orders.csv line 17", "topic/a offset 3"
        pa.field("payload", pa.string()),  # the raw record, as received (text; binary as base64)
    ]
)


def rejects_table(rows: list[tuple[str, str, str | None]]) -> pa.Table:
    """Rejected records as a table of REJECT_SCHEMA: (reason, position, raw payload)."""
    reason, position, payload = (list(col) for col in zip(*rows, strict=True)) if rows else ([], [], [])
    return pa.table({"reason": reason, "position": position, "payload": payload}, schema=REJECT_SCHEMA)


@dataclass
class Chunk:
    """A batch of records read, and where the source stands after it."""

    batch: pa.RecordBatch | None  # None: only rejects, or only a cursor move (an empty file)
    cursor: Cursor
    position: str  # human-readable: where these rows came from ("orders.csv rows 1–65,536")
    rejects: pa.Table | None = None  # REJECT_SCHEMA
    bytes_read: int = 0


class Options(BaseModel):
    """Base of every connector's options: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Context:
    """What a connector may use: the workspace's temporary folder and its egress check."""

    tmp_dir: Any  # pathlib.Path
    check_egress: Callable[[str], None] = lambda url: None  # raises when a host is not allowed
    file_roots: tuple[Any, ...] = ()  # folders a file-reading connector may read (pathlib.Path)
    state_dir: Any = None  # pathlib.Path: this pipeline's own folder (a streaming source's spool)
    pipeline: str = ""  # "<tenant>/<pipeline>": names the pipeline to outside systems (an MQTT client id)
    stop: threading.Event | None = None  # set when the run must end (shutdown): listening sources return
    extras: dict[str, Any] = field(default_factory=dict)

    def check_readable(self, path: Path, who: str) -> Path:
        """`path` resolved, when it lies in the folders pipelines may read (`file_roots`); Forbidden,
        naming `who` ("files source", "opcua source: option 'certificate'"), when it does not."""
        resolved = path.expanduser().resolve()
        roots = [Path(r).resolve() for r in self.file_roots]
        if self.file_roots and not any(resolved.is_relative_to(r) for r in roots):
            raise Forbidden(
                f"{who}: {path} is outside the folders pipelines may read "
                f"({', '.join(map(str, roots))}); an administrator can add it to the file_roots setting"
            )
        return resolved


@runtime_checkable
class Source(Protocol):
    def read(self, cursor: Cursor | None) -> Iterator[Chunk]:
        """Chunks from just after `cursor` (None: from the beginning), in a deterministic order."""
        ...


class Sink(ABC):
    """Where a pipeline's committed rows go besides the lake (webhook, PostgreSQL, MQTT).

    The lake stays the record: a sink receives each group of rows *after* the group is committed to
    the dataset, with the group's sequence number, in order. Delivery progress is kept per sink, so
    a sink that was down (or a process killed between the lake commit and the delivery) is caught
    up from the lake's own snapshots at the next run (`manara.connect.delivery`). A sink that can
    store its progress atomically with the rows (PostgreSQL) makes delivery exactly-once through
    `delivered()`; the others are at-least-once and send an idempotency key, `<pipeline>:<seq>`.
    """

    @abstractmethod
    def deliver(self, rows: pa.Table, seq: int) -> None:
        """Deliver one committed group; raise `SinkError` when it cannot be delivered (after retries)."""

    def delivered(self) -> int | None:
        """The last group this sink's own store holds (None: it keeps none; Manara's record counts)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class SinkError(ManaraError):
    """A sink could not deliver a group (after its own retries): the lake keeps the rows."""

    status, type, title = 502, "sink-failed", "Sink delivery failed"


@dataclass(frozen=True)
class Connector:
    """A registered connector: its name, kind, one-line summary, options model and factory."""

    name: str
    kind: Literal["source", "sink"]
    summary: str
    options: type[Options]
    factory: Callable[[Any, Context], Source | Sink]  # (options instance, context) → connector

    def parse_options(self, raw_options: dict[str, Any]) -> Options:
        """The options, validated; one readable error naming the option when they are wrong."""
        try:
            return self.options.model_validate(raw_options)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "options"
            raise BadRequest(f"{self.kind} '{self.name}': option '{where}': {first['msg']}") from None

    def create(self, raw_options: dict[str, Any], context: Context) -> Source | Sink:
        return self.factory(self.parse_options(raw_options), context)

    def describe(self) -> dict[str, Any]:
        schema = self.options.model_json_schema()
        required = set(schema.get("required", []))
        return {
            "name": self.name,
            "kind": self.kind,
            "summary": self.summary,
            "options": [
                {
                    "name": name,
                    "type": prop.get("type") or " | ".join(a.get("type", "?") for a in prop.get("anyOf", [])),
                    "required": name in required,
                    "default": prop.get("default"),
                    "description": prop.get("description", ""),
                }
                for name, prop in schema.get("properties", {}).items()
            ],
        }
