"""Declarative pipelines: a source, transforms and a lake dataset, loaded exactly once.

    name: clinic_visits
    source:
      type: files
      options: {path: /data/landing/visits, pattern: "*.csv"}
    transforms:
      - cast: {amount: double}
      - filter: "amount >= 0"
    destination:
      dataset: visits
    schedule: "*/15 * * * *"

**Exactly once.** Rows are committed to the dataset in groups (`commit_rows`); a group's rows are
encoded into Parquet data files while the source is read (`manara.lake.datafiles`), and the files
become part of the dataset only at the group's commit. The source's cursor after a group is
written in the *same* Iceberg commit as the group's rows: as the table property
`manara.pipeline.<name>.state` (with a group sequence number) and in the snapshot's summary. A
process killed at any instant has either committed a group with its cursor or neither, and the next
run resumes from the committed cursor.

**Quarantine.** Records the source cannot parse and values a cast cannot convert go to
`<dataset>__quarantine` with the reason, the source position and the raw payload. The quarantine
commit of a group comes just before its data commit and carries the same sequence number; a run
first deletes this pipeline's quarantine rows with a sequence number above the dataset's committed
one (left by a run that died between the two commits), so quarantined records are exactly-once too.

**Schema changes never reset data.** New columns are added to the dataset; Iceberg-compatible
widenings (int → long, float → double) are applied; anything else pauses the pipeline with the
reason, and nothing of the batch is written, until the mapping is changed (`pipeline apply`).
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import functools
import json
import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.io import FileIO, load_file_io
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table, Transaction
from pyiceberg.table.metadata import TableMetadata
from sqlalchemy import select
from sqlalchemy.orm import Session

from manara.connect.delivery import Deliveries, sink_status
from manara.connect.protocol import Chunk, Context, Sink, Source
from manara.connect.registry import get_connector
from manara.connect.transforms import Transform, Transformer
from manara.errors import BadRequest, Conflict, ManaraError, NotFound, SchemaMismatch
from manara.govern import audit
from manara.govern.identity import SLUG_RE
from manara.govern.principal import Principal
from manara.lake import schema as schema_rules
from manara.lake.catalog import TABLE_DEFAULTS, ensure_namespace, identifier
from manara.lake.datafiles import DataFileWriter
from manara.meta.db import session_scope
from manara.meta.models import Pipeline, PipelineRun, Role, utcnow
from manara.workspace import Workspace

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
STATE_PROPERTY = "manara.pipeline.{name}.state"
QUARANTINE_SUFFIX = "__quarantine"
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("pipeline", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("quarantined_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("position", pa.string(), nullable=False),
        pa.field("payload", pa.string()),
        pa.field("replay_id", pa.string()),  # set while a replay of this record is under way
    ]
)
REPLAY_PROPERTY = "manara.pipeline.{name}.replay"  # the last replay committed to the dataset


class PipelineNotFound(NotFound):
    type, title = "pipeline-not-found", "Pipeline not found"


class PipelinePaused(Conflict):
    type, title = "pipeline-paused", "Pipeline paused"


CONTINUOUS = "@continuous"  # schedule of a listening pipeline: run again as soon as a run ends


class SourceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str
    options: dict[str, Any] = Field(default_factory=dict)


class DestinationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str
    commit_rows: int = Field(100_000, ge=1, le=10_000_000)
    # a group is also committed when its first row is this old (a slow or streaming source)
    commit_seconds: float = Field(10.0, gt=0, le=86_400)

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, v: str) -> str:
        if not SLUG_RE.fullmatch(v) or "__" in v or len(v) > 63 - len(QUARANTINE_SUFFIX):
            raise ValueError(
                f"'{v}' is not a dataset name: 2-51 characters, lower-case letters, digits and '_' "
                "(no '__'), starting with a letter"
            )
        return v


class SinkSpec(BaseModel):
    """A sink that receives the groups committed to the dataset (see `manara.connect.delivery`)."""

    model_config = ConfigDict(extra="forbid")
    type: str
    name: str | None = None  # default: the type; names a sink's progress, so keep it when editing
    options: dict[str, Any] = Field(default_factory=dict)
    from_start: bool = False  # a new sink also receives the groups committed before it was added

    @property
    def sink_name(self) -> str:
        return self.name or self.type

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.match(v):
            raise ValueError(f"'{v}' is not a sink name (start with a letter; lower-case, digits, _)")
        return v


class PipelineSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    source: SourceSpec
    transforms: list[Transform] = Field(default_factory=list)
    destination: DestinationSpec
    sinks: list[SinkSpec] = Field(default_factory=list)
    schedule: str | None = None

    @field_validator("sinks")
    @classmethod
    def _sinks(cls, v: list[SinkSpec]) -> list[SinkSpec]:
        names = [s.sink_name for s in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"two sinks are named {', '.join(twice)}: give each a distinct `name`")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"'{v}' is not a pipeline name (start with a letter; lower-case, digits, _)")
        return v

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str | None) -> str | None:
        if v is not None and v != CONTINUOUS:
            from croniter import croniter

            if not croniter.is_valid(v):
                raise ValueError(f"'{v}' is not a cron expression (e.g. '*/15 * * * *') nor '{CONTINUOUS}'")
        return v


def parse_spec(text: str, label: str = "pipeline") -> PipelineSpec:
    """A YAML (or JSON) pipeline file, validated: one readable error when it is not right."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise BadRequest(f"{label}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"{label}: a pipeline is a mapping with name, source and destination")
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "pipeline"
        raise BadRequest(f"{label}: {where}: {first['msg']}", errors=len(err.errors())) from None


# --- declared pipelines ------------------------------------------------------------------------


@dataclass
class PipelineInfo:
    name: str
    spec: dict[str, Any]
    paused: str | None
    updated_at: datetime
    updated_by: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _row(s: Session, principal: Principal, name: str) -> Pipeline | None:
    return s.scalar(select(Pipeline).where(Pipeline.tenant_id == principal.tenant_id, Pipeline.name == name))


def _info(row: Pipeline) -> PipelineInfo:
    return PipelineInfo(row.name, _redacted(json.loads(row.spec)), row.paused, row.updated_at, row.updated_by)


def _redacted(value: Any) -> Any:
    """The spec as shown: passwords inside URLs hidden (write `${ENV_VAR}` to keep them out of it)."""
    from manara.govern.egress import redact

    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return redact(value) if isinstance(value, str) and "://" in value else value


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: Any) -> Any:
    """Connector options with `${NAME}` replaced by the hub's environment variable NAME (secrets
    such as database passwords stay out of the stored spec)."""
    if isinstance(value, dict):
        return {k: expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in os.environ:
            raise BadRequest(
                f"connector option refers to ${{{m.group(1)}}}, not set in the hub's environment"
            )
        return os.environ[m.group(1)]

    return _ENV_REF.sub(sub, value)


def connector_context(
    ws: Workspace, principal: Principal, pipeline: str, stop: threading.Event | None = None
) -> Context:
    """What a pipeline's connectors may reach: the egress allow-list, the readable folders, its own
    state folder (a streaming source's spool), and the event that asks a listening source to stop."""
    from manara.govern.egress import check_egress

    return Context(
        state_dir=ws.settings.home / "spool" / principal.tenant / pipeline,
        pipeline=f"{principal.tenant}/{pipeline}",
        stop=stop,
        tmp_dir=ws.settings.tmp_path,
        check_egress=functools.partial(
            check_egress, ws, actor=principal.actor, tenant=principal.tenant, purpose=f"pipeline {pipeline}"
        ),
        file_roots=(ws.settings.landing_path, *ws.settings.file_roots),
    )


def apply_pipeline(ws: Workspace, principal: Principal, spec: PipelineSpec) -> tuple[PipelineInfo, bool]:
    """Create or replace a pipeline's declaration (a replaced one is un-paused). Returns (info, created).

    The source is opened once (not read) so that a wrong option, an unreachable host or a folder
    outside `file_roots` is refused now, not at the first run."""
    principal.require(Role.steward, "applying a pipeline")
    connector = get_connector(spec.source.type, "source")
    source = connector.create(expand_env(spec.source.options), connector_context(ws, principal, spec.name))
    prepare = getattr(source, "prepare", None)
    if callable(prepare):  # e.g. MQTT: the broker keeps messages for the pipeline from now on
        prepare()
    for sink_spec in spec.sinks:  # wrong options and refused hosts are caught now, not at the first run
        sink = get_connector(sink_spec.type, "sink").create(
            expand_env(sink_spec.options), connector_context(ws, principal, spec.name)
        )
        assert isinstance(sink, Sink)
        sink.close()
    body = spec.model_dump_json(exclude_none=True)
    with session_scope(ws.engine) as s:
        row = _row(s, principal, spec.name)
        created = row is None
        if row is None:
            row = Pipeline(
                tenant_id=principal.tenant_id, name=spec.name, spec=body, updated_by=principal.actor
            )
            s.add(row)
        else:
            row.spec, row.paused, row.updated_at, row.updated_by = body, None, utcnow(), principal.actor
            row.pending_change = None
        s.flush()
        audit.record(
            s.connection(),
            audit.EventFields(principal.actor, "pipeline.apply", tenant=principal.tenant, target=spec.name,
                              detail={"created": created, "source": spec.source.type,
                                      "dataset": spec.destination.dataset},
                              request_id=audit.request_id_var.get()),
        )  # fmt: skip
        return _info(row), created


def get_pipeline(ws: Workspace, principal: Principal, name: str) -> PipelineInfo:
    principal.require(Role.analyst, "reading pipelines")
    with session_scope(ws.engine) as s:
        row = _row(s, principal, name)
        if row is None:
            raise PipelineNotFound(f"pipeline '{name}' does not exist")
        return _info(row)


def list_pipelines(ws: Workspace, principal: Principal) -> list[dict[str, Any]]:
    principal.require(Role.analyst, "reading pipelines")
    with session_scope(ws.engine) as s:
        rows = s.scalars(
            select(Pipeline).where(Pipeline.tenant_id == principal.tenant_id).order_by(Pipeline.name)
        ).all()
        out = []
        for row in rows:
            spec = json.loads(row.spec)
            last = _runs(s, row.id, 1)
            out.append({
                "name": row.name, "source": spec["source"]["type"], "dataset": spec["destination"]["dataset"],
                "schedule": spec.get("schedule"), "paused": row.paused,
                "last_run": last[0] if last else None,
            })  # fmt: skip
        return out


def _runs(s: Session, pipeline_id: int, limit: int) -> list[dict[str, Any]]:
    rows = s.scalars(
        select(PipelineRun)
        .where(PipelineRun.pipeline_id == pipeline_id)
        .order_by(PipelineRun.started_at.desc(), PipelineRun.id)
        .limit(limit)
    ).all()
    return [_run_dict(r) for r in rows]


def _run_dict(r: PipelineRun) -> dict[str, Any]:
    seconds = (r.finished_at - r.started_at).total_seconds() if r.finished_at else None
    return {
        "id": r.id, "status": r.status, "trigger": r.trigger, "actor": r.actor,
        "started_at": r.started_at, "finished_at": r.finished_at, "seconds": seconds,
        "rows_in": r.rows_in, "rows_loaded": r.rows_loaded, "rows_quarantined": r.rows_quarantined,
        "bytes_in": r.bytes_in, "commits": r.commits, "error": r.error,
    }  # fmt: skip


def pipeline_runs(ws: Workspace, principal: Principal, name: str, limit: int = 20) -> list[dict[str, Any]]:
    principal.require(Role.analyst, "reading pipelines")
    with session_scope(ws.engine) as s:
        row = _row(s, principal, name)
        if row is None:
            raise PipelineNotFound(f"pipeline '{name}' does not exist")
        return _runs(s, row.id, limit)


def pipeline_status(ws: Workspace, principal: Principal, name: str) -> dict[str, Any]:
    """The declaration, whether it is paused, its last run and the cursor committed in the lake."""
    info = get_pipeline(ws, principal, name)
    spec = PipelineSpec.model_validate(info.spec)
    table = _load(ws, principal, spec.destination.dataset)
    state = committed_state(table, name)
    runs = pipeline_runs(ws, principal, name, 1)
    with session_scope(ws.engine) as s:
        row = _row(s, principal, name)
        pipeline_id = row.id if row is not None else -1
    progress = {sk["name"]: sk for sk in sink_status(ws, pipeline_id, int(state["seq"]) if state else 0)}
    declared = {sk.sink_name: sk.type for sk in spec.sinks}
    return {
        "name": name, "source": spec.source.type, "dataset": spec.destination.dataset,
        "schedule": spec.schedule, "paused": info.paused, "last_run": runs[0] if runs else None,
        "committed": state,
        "sinks": [{"name": n, "type": t, **progress.get(n, {"delivered_seq": None})}
                  for n, t in declared.items()],
    }  # fmt: skip


def approve_pipeline(
    ws: Workspace, principal: Principal, name: str, *, column: str | None = None, to: str | None = None
) -> dict[str, Any]:
    """Widen the dataset's column that paused the pipeline, keeping every stored row, and resume.

    Without arguments the change proposed at the pause is applied; `column` and `to` (a type name:
    double, string, timestamp, decimal(P,S)…) choose another. The widening is one Iceberg commit
    (`manara.lake.widen`); the pipeline is un-paused only after it."""
    from manara.lake.widen import widen_column

    principal.require(Role.steward, "approving a schema change")
    with session_scope(ws.engine) as s:
        row = _row(s, principal, name)
        if row is None:
            raise PipelineNotFound(f"pipeline '{name}' does not exist")
        if not row.paused:
            raise Conflict(f"pipeline '{name}' is not paused: there is nothing to approve")
        proposed = json.loads(row.pending_change) if row.pending_change else None
        spec = PipelineSpec.model_validate_json(row.spec)
    if column is None and to is None and proposed is None:
        raise BadRequest(
            f"pipeline '{name}' is paused for a change no single type can hold; give --column and --to, "
            "or change the mapping"
        )
    column = column or (proposed or {}).get("column")
    to = to or ((proposed or {}).get("to") if (proposed or {}).get("column") == column else None)
    if not column or not to:
        raise BadRequest(
            "give both the column and the type to widen it to (e.g. --column amount --to double)"
        )
    result = widen_column(
        ws.catalog, identifier(principal.tenant, spec.destination.dataset), column,
        schema_rules.named_type(to), actor=principal.actor, tenant=principal.tenant,
        reason=f"pipeline {name} approved",
    )  # fmt: skip
    with session_scope(ws.engine) as s:
        row = _row(s, principal, name)
        assert row is not None
        row.paused, row.pending_change, row.updated_at, row.updated_by = None, None, utcnow(), principal.actor
        audit.record(
            s.connection(),
            audit.EventFields(principal.actor, "pipeline.approve", tenant=principal.tenant, target=name,
                              detail=result.as_dict(), request_id=audit.request_id_var.get()),
        )  # fmt: skip
    return result.as_dict()


# --- the lake side -----------------------------------------------------------------------------


def _record(payload: str | None) -> dict[str, Any] | None:
    """A quarantined payload that is one record (a JSON object), or None (a raw file, a broken line)."""
    try:
        value = json.loads(payload) if payload else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _load(ws: Workspace, principal: Principal, dataset: str) -> Table | None:
    try:
        return ws.catalog.load_table(identifier(principal.tenant, dataset))
    except NoSuchTableError:
        return None


def committed_state(table: Table | None, name: str) -> dict[str, Any] | None:
    """{"seq", "cursor", "run"} committed with the dataset's rows, or None before the first commit."""
    if table is None:
        return None
    raw = table.properties.get(STATE_PROPERTY.format(name=name))
    return json.loads(raw) if raw else None


@dataclass
class RunResult:
    pipeline: str
    run_id: str
    status: str
    rows_in: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    bytes_in: int = 0
    commits: int = 0
    columns_added: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Progress = Callable[[int], None]


@contextlib.contextmanager
def _run_lock(ws: Workspace, principal: Principal, name: str) -> Iterator[None]:
    folder = ws.settings.home / "locks" / "pipelines"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{principal.tenant}.{name}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(f"pipeline '{name}' is already running") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_pipeline(
    ws: Workspace,
    principal: Principal,
    name: str,
    *,
    trigger: str = "manual",
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> RunResult:
    """Run the pipeline once, from its committed cursor to the end of what the source has now.

    A listening source (MQTT, OPC UA) ends its run by its own options (`max_seconds`,
    `idle_seconds`) or when `stop` is set; what it received is committed before the run returns."""
    principal.require(Role.steward, "running a pipeline")
    with _run_lock(ws, principal, name):
        with session_scope(ws.engine) as s:
            row = _row(s, principal, name)
            if row is None:
                raise PipelineNotFound(f"pipeline '{name}' does not exist")
            if row.paused:
                raise PipelinePaused(f"pipeline '{name}' is paused: {row.paused}")
            spec = PipelineSpec.model_validate_json(row.spec)
            pipeline_id = row.id
            for stale in s.scalars(
                select(PipelineRun).where(
                    PipelineRun.pipeline_id == pipeline_id, PipelineRun.status == "running"
                )
            ):  # we hold the lock: a run still marked running died with its process
                stale.status, stale.error, stale.finished_at = (
                    "failed",
                    "interrupted (process ended)",
                    utcnow(),
                )
            run = PipelineRun(id=uuid.uuid4().hex, pipeline_id=pipeline_id, status="running", trigger=trigger,
                              actor=principal.actor)  # fmt: skip
            s.add(run)
            run_id = run.id
        result = RunResult(name, run_id, "running")
        started = time.perf_counter()
        try:
            runner = _Runner(ws, principal, spec, result, progress, stop, pipeline_id)
            try:
                runner.replay() if trigger == "replay" else runner.run()
            finally:
                runner.close_sinks()
            runner.raise_sink_failures()
            result.status = "succeeded"
        except PipelinePaused as err:
            result.status, result.error = "paused", err.detail
            with session_scope(ws.engine) as s:
                paused_row = s.get(Pipeline, pipeline_id)
                assert paused_row is not None
                paused_row.paused = err.detail
                change = err.extra.get("change")
                paused_row.pending_change = json.dumps(change) if change else None
        except ManaraError as err:
            result.status, result.error = "failed", err.detail
        except Exception as err:
            result.status, result.error = "failed", f"{type(err).__name__}: {err}"
        result.seconds = time.perf_counter() - started
        with session_scope(ws.engine) as s:
            run_row = s.get(PipelineRun, run_id)
            assert run_row is not None
            run_row.status, run_row.error, run_row.finished_at = result.status, result.error, utcnow()
            run_row.rows_in, run_row.rows_loaded = result.rows_in, result.rows_loaded
            run_row.rows_quarantined, run_row.bytes_in, run_row.commits = (
                result.rows_quarantined, result.bytes_in, result.commits,
            )  # fmt: skip
            audit.record(
                s.connection(),
                audit.EventFields(principal.actor, "pipeline.run", tenant=principal.tenant, target=name,
                                  outcome="ok" if result.status == "succeeded" else "error",
                                  detail={k: v for k, v in result.as_dict().items() if k != "pipeline"},
                                  request_id=audit.request_id_var.get()),
            )  # fmt: skip
    return result


class _Stream:
    """The rows of one group on their way to Parquet: the reading thread conforms each batch to the
    group's schema and puts it here; the commit thread encodes them into data files as they come
    (`write_files`). `finish` hands over the group's rejects and cursor and ends the group; `abort`
    makes the commit thread give the group up (nothing of it is committed, its files are deleted)."""

    _END = object()

    def __init__(self, runner: _Runner, plan: schema_rules.SchemaPlan, *, keep: bool) -> None:
        self.runner, self.plan = runner, plan
        self.conform = schema_rules.conformer(plan, f"pipeline '{runner.spec.name}'")
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=4)
        self.rows = 0
        self.kept: list[pa.RecordBatch] | None = [] if keep else None  # for sinks
        self.rejects: list[pa.Table] = []
        self.cursor: Any = None
        self.writer: DataFileWriter | None = None

    def takes(self, batch: pa.RecordBatch) -> bool:
        """Whether `batch` fits this group's schema (no new column, no promotion to apply)."""
        more = schema_rules.plan(self.plan.target, batch.schema)
        return not more.added and not more.promoted

    def put(self, batch: pa.RecordBatch, inflight: Future[None] | None) -> None:
        try:
            conformed = self.conform(batch, 0)
        except SchemaMismatch as err:
            raise self.runner._paused(err, self.plan, pa.Table.from_batches([batch])) from None
        self._put(conformed, inflight)
        self.rows += conformed.num_rows
        if self.kept is not None:
            self.kept.append(conformed)

    def _put(self, item: Any, inflight: Future[None] | None) -> None:
        while True:
            try:
                self.queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if inflight is not None and inflight.done():
                    inflight.result()  # the commit thread failed: its error ends the run
                    raise RuntimeError("the pipeline's commit thread ended early") from None

    def finish(self, rejects: list[pa.Table], cursor: Any, inflight: Future[None] | None) -> None:
        self.rejects, self.cursor = list(rejects), cursor
        self._put(self._END, inflight)

    def abort(self, err: BaseException) -> None:
        while True:  # make room: the reader stops at the first error it meets
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(err)

    def write_files(self, metadata: TableMetadata, io: FileIO) -> list[DataFile]:
        """Encode the group's batches into data files as they arrive, until the group ends."""
        self.writer = DataFileWriter(io, metadata, self.plan.target)
        try:
            while True:
                item = self.queue.get()
                if item is self._END:
                    return self.writer.close()
                if isinstance(item, BaseException):
                    raise RuntimeError(f"group abandoned: {item}")
                self.writer.write(item)
        except BaseException:
            self.writer.abort()
            raise

    def discard(self) -> None:
        """The group was not committed: delete the data files it wrote."""
        if self.writer is not None:
            self.writer.abort()

    def table(self) -> pa.Table | None:
        return pa.Table.from_batches(self.kept, schema=self.plan.target) if self.kept is not None else None


class _Runner:
    def __init__(
        self,
        ws: Workspace,
        principal: Principal,
        spec: PipelineSpec,
        result: RunResult,
        progress: Progress | None,
        stop: threading.Event | None = None,
        pipeline_id: int | None = None,
    ) -> None:
        self.ws, self.principal, self.spec, self.result, self.progress = ws, principal, spec, result, progress
        self.stop, self.pipeline_id = stop, pipeline_id
        self.deliveries: Deliveries | None = None
        self.ident = identifier(principal.tenant, spec.destination.dataset)
        self.qident = identifier(principal.tenant, spec.destination.dataset + QUARANTINE_SUFFIX)
        self.transformer = Transformer(spec.transforms)

    def run(self) -> None:
        ensure_namespace(self.ws.catalog, self.principal.tenant)
        table = _load(self.ws, self.principal, self.spec.destination.dataset)
        state = committed_state(table, self.spec.name) or {"seq": 0, "cursor": None}
        self.seq = int(state["seq"])
        self._forget_uncommitted_quarantine()
        self._finish_replay()
        self._open_sinks(table)
        connector = get_connector(self.spec.source.type, "source")
        context = connector_context(self.ws, self.principal, self.spec.name, self.stop)
        source = connector.create(expand_env(self.spec.source.options), context)
        assert isinstance(source, Source)
        rejects: list[pa.Table] = []
        pending = 0
        cursor = state["cursor"]
        moved = False
        # A group's rows are conformed here and encoded into Parquet data files by a second thread
        # while the source goes on (manara.lake.datafiles); at the group's end that thread commits
        # the files with the cursor, in one Iceberg commit.
        # Commits stay one at a time and in order, each with its own cursor, so exactly-once is
        # unchanged; memory holds a few batches and the file being built, not the whole group.
        with ThreadPoolExecutor(1, thread_name_prefix="pipeline-commit") as committer:
            inflight: Future[None] | None = None
            stream: _Stream | None = None

            def submit(fn: Callable[..., None], *args: Any) -> None:
                nonlocal inflight
                if inflight is not None:
                    inflight.result()  # the previous group first; its error ends the run here
                inflight = committer.submit(contextvars.copy_context().run, fn, *args)

            def close(cursor: Any) -> None:
                """End the group being gathered: its rows' stream, or a commit of rejects and cursor."""
                nonlocal stream
                if stream is not None:
                    stream.finish(rejects, cursor, inflight)
                    stream = None
                else:
                    submit(self._commit, [], list(rejects), cursor)

            dest = self.spec.destination
            opened = time.monotonic()  # when the group being gathered got its first chunk
            try:
                for chunk in source.read(cursor):
                    if not moved:
                        opened = time.monotonic()
                    kept, bad = self._transform(chunk)
                    if kept is not None and kept.num_rows:
                        if stream is not None and not stream.takes(kept):  # a new column: a new group
                            close(cursor)
                            rejects, pending, moved, opened = [], 0, False, time.monotonic()
                        if stream is None:
                            if inflight is not None:
                                inflight.result()  # its schema change is in the table this group plans on
                            stream = self._open_stream(kept)
                            submit(self._commit, [], [], None, None, stream)
                        stream.put(kept, inflight)
                        pending += kept.num_rows
                    if bad is not None and bad.num_rows:
                        rejects.append(bad)
                    if (
                        chunk.cursor != cursor or pending or rejects
                    ):  # a listening source's tick moves nothing
                        cursor, moved = chunk.cursor, True
                    self.result.bytes_in += chunk.bytes_read
                    if self.progress:
                        self.progress(self.result.rows_in)
                    if pending >= dest.commit_rows or (
                        moved and time.monotonic() - opened >= dest.commit_seconds
                    ):
                        close(cursor)
                        rejects, pending, moved = [], 0, False
                if moved:
                    close(cursor)
            except BaseException as err:
                if stream is not None:  # nothing of the open group is committed
                    stream.abort(err)
                    with contextlib.suppress(BaseException):
                        if inflight is not None:
                            inflight.result()
                    inflight = None
                raise
            if inflight is not None:
                inflight.result()

    def _open_stream(self, first: pa.RecordBatch) -> _Stream:
        """A group's stream, planned on the dataset's schema as it is now and the group's first rows."""
        table = _load(self.ws, self.principal, self.spec.destination.dataset)
        plan = schema_rules.plan(table.schema().as_arrow() if table is not None else None, first.schema)
        return _Stream(self, plan, keep=self.deliveries is not None)

    def _transform(self, chunk: Chunk) -> tuple[pa.RecordBatch | None, pa.Table | None]:
        rejects = [chunk.rejects] if chunk.rejects is not None and chunk.rejects.num_rows else []
        self.result.rows_in += rejects[0].num_rows if rejects else 0
        kept = None
        if chunk.batch is not None and chunk.batch.num_rows:
            self.result.rows_in += chunk.batch.num_rows
            kept, bad = self.transformer.apply(chunk.batch, chunk.position)
            if bad is not None:
                rejects.append(bad)
        return kept, pa.concat_tables(rejects) if rejects else None

    # --- sinks -----------------------------------------------------------------------------------

    def _open_sinks(self, table: Table | None) -> None:
        """The spec's sinks, caught up with every group the dataset has (read back from the lake)."""
        if not self.spec.sinks or self.pipeline_id is None:
            return
        context = connector_context(self.ws, self.principal, self.spec.name, self.stop)
        self.deliveries = Deliveries(
            self.ws, self.principal, self.spec.name, self.pipeline_id, self.spec.destination.dataset,
            self.spec.sinks, context, self.seq,
        )  # fmt: skip
        self.deliveries.catch_up(table, self.seq)

    def close_sinks(self) -> None:
        if self.deliveries is not None:
            self.deliveries.close()

    def raise_sink_failures(self) -> None:
        if self.deliveries is not None:
            self.deliveries.raise_failures(self.seq)

    # --- commits ---------------------------------------------------------------------------------

    def replay(self) -> None:
        """Run this pipeline's quarantined records (those kept as records) through the current mapping.

        Exactly once: the records are first marked with a replay id in the quarantine; the rows
        that now pass are committed to the dataset with that id as a table property (and the ones
        that fail again are quarantined anew with their new reason); then the marked records are
        deleted. A replay that dies in between is finished or undone by the next run or replay.
        """
        table = _load(self.ws, self.principal, self.spec.destination.dataset)
        state = committed_state(table, self.spec.name)
        if state is None:
            raise BadRequest(
                f"pipeline '{self.spec.name}' has not loaded its dataset yet: nothing to replay into"
            )
        self.seq = int(state["seq"])
        self._forget_uncommitted_quarantine()
        self._open_sinks(table)
        qtable = _load(self.ws, self.principal, self.spec.destination.dataset + QUARANTINE_SUFFIX)
        if qtable is None:
            return
        mine = f"pipeline = '{self.spec.name}'"
        rows = qtable.scan(row_filter=mine).to_arrow()
        records, replayable = [], []
        for payload in rows.column("payload").to_pylist():
            record = _record(payload)
            replayable.append(record is not None)
            if record is not None:
                records.append(record)
        if not records:
            return
        replay_id = self.result.run_id
        marked = rows.set_column(
            rows.schema.get_field_index("replay_id"), "replay_id",
            pa.array([replay_id if r else None for r in replayable], pa.string()),
        )  # fmt: skip
        qtable.overwrite(marked.cast(QUARANTINE_SCHEMA), overwrite_filter=mine)
        batch = pa.Table.from_pylist(records).combine_chunks().to_batches()[0]
        self.result.rows_in += batch.num_rows
        kept, bad = self.transformer.apply(batch, "quarantine replay")
        self._commit([kept] if kept is not None and kept.num_rows else [], [bad] if bad is not None else [],
                     state["cursor"], replay_id=replay_id)  # fmt: skip
        self._finish_replay()

    def _finish_replay(self) -> None:
        """Delete records of a committed replay; un-mark those of a replay that never committed."""
        qtable = _load(self.ws, self.principal, self.spec.destination.dataset + QUARANTINE_SUFFIX)
        if qtable is None:
            return
        marked_filter = f"pipeline = '{self.spec.name}' AND replay_id IS NOT NULL"
        marked = qtable.scan(row_filter=marked_filter).to_arrow()
        if not marked.num_rows:
            return
        table = _load(self.ws, self.principal, self.spec.destination.dataset)
        committed = table.properties.get(REPLAY_PROPERTY.format(name=self.spec.name)) if table else None
        done = pc.equal(marked.column("replay_id"), committed or "")
        rest = marked.filter(pc.invert(done))
        rest = rest.set_column(
            rest.schema.get_field_index("replay_id"), "replay_id", pa.nulls(rest.num_rows, pa.string())
        )
        qtable.overwrite(rest.cast(QUARANTINE_SCHEMA), overwrite_filter=marked_filter)

    def _forget_uncommitted_quarantine(self) -> None:
        """Delete quarantine rows of groups whose data commit never happened (a run that died between)."""
        qtable = _load(self.ws, self.principal, self.spec.destination.dataset + QUARANTINE_SUFFIX)
        if qtable is None:
            return
        stale = f"pipeline = '{self.spec.name}' AND seq > {self.seq}"  # the name is [a-z0-9_] only
        if qtable.scan(row_filter=stale, selected_fields=("seq",)).to_arrow().num_rows:
            qtable.delete(delete_filter=stale)

    def _commit(
        self,
        rows: list[pa.RecordBatch],
        rejects: list[pa.Table],
        cursor: Any,
        replay_id: str | None = None,
        stream: _Stream | None = None,
    ) -> None:
        """Commit one group: `rows` (a replay, or only rejects and a cursor) or the rows of `stream`
        (a run), its rejects to the quarantine first, and the cursor with the rows in one commit."""
        self.seq += 1
        if rejects:
            self._quarantine(pa.concat_tables(rejects))
        table = _load(self.ws, self.principal, self.spec.destination.dataset)
        if table is None and not rows and stream is None:
            return  # nothing to create the dataset with; the cursor is re-read next time (idempotent)
        data = pa.Table.from_batches(rows) if rows else None
        incoming = stream.plan.target if stream is not None else (data.schema if data is not None else None)
        written: pa.Table | None = None
        props = {
            "manara.pipeline": self.spec.name,
            "manara.pipeline.run": self.result.run_id,
            "manara.pipeline.seq": str(self.seq),
            "manara.source": f"pipeline:{self.spec.name}",
            "manara.actor": self.principal.actor,
        }
        catalog = self.ws.catalog
        added: list[str] = []
        plan: schema_rules.SchemaPlan | None
        tx: Transaction
        if table is None:
            assert incoming is not None
            plan = schema_rules.plan(None, incoming)
            tx = catalog.create_table_transaction(
                self.ident, schema=plan.target,
                properties={**TABLE_DEFAULTS, "manara.owner": self.principal.actor},
            )  # fmt: skip
        else:
            plan = schema_rules.plan(table.schema().as_arrow(), incoming) if incoming is not None else None
            tx = table.transaction()
            if plan is not None and (plan.added or plan.promoted):
                added = [f.name for f in plan.added]
                with tx.update_schema() as upd:
                    if plan.added:
                        upd.union_by_name(pa.schema(plan.added))
                    for col, new_type in plan.promoted.items():
                        upd.update_column(col, field_type=new_type)
        if data is not None and plan is not None:
            conform = schema_rules.conformer(plan, f"pipeline '{self.spec.name}'")
            try:
                batches = [conform(b, 0) for b in data.to_batches()]
            except SchemaMismatch as err:
                raise self._paused(err, plan, data) from None
            written = pa.Table.from_batches(batches, schema=plan.target)
            tx.append(written, snapshot_properties=props)
        n = data.num_rows if data is not None else 0
        if stream is not None:
            assert plan is not None
            if plan.target != stream.plan.target:  # another writer changed the dataset meanwhile
                raise Conflict(f"dataset '{self.ident[1]}' was changed by another writer; rerun")
            files = stream.write_files(
                tx.table_metadata, load_file_io(catalog.properties, tx.table_metadata.location)
            )
            if files:  # written while the source was read: only the metadata is left to write
                with tx.update_snapshot(snapshot_properties=props).fast_append() as append:
                    for data_file in files:
                        append.append_data_file(data_file)
            cursor, n = stream.cursor, stream.rows
            if stream.rejects:  # known now that the group has ended; committed before its rows
                self._quarantine(pa.concat_tables(stream.rejects))
            written = stream.table()
        state = {"seq": self.seq, "cursor": cursor, "run": self.result.run_id}
        table_props = {STATE_PROPERTY.format(name=self.spec.name): json.dumps(state, default=str)}
        if replay_id is not None:
            table_props[REPLAY_PROPERTY.format(name=self.spec.name)] = replay_id
        tx.set_properties(table_props)
        ev = audit.EventFields(
            self.principal.actor, "dataset.pipeline_commit", tenant=self.principal.tenant,
            target=self.spec.destination.dataset,
            detail={"pipeline": self.spec.name, "run": self.result.run_id, "seq": self.seq,
                    "rows": n, "columns_added": added},
            request_id=audit.request_id_var.get(),
        )  # fmt: skip
        try:
            with audit.iceberg_commit_audit(catalog.engine, ev):
                tx.commit_transaction()
        except CommitFailedException as err:
            if stream is not None:
                stream.discard()  # refused: its files are referenced by nothing
            raise Conflict(
                f"dataset '{self.ident[1]}' was changed by another writer; rerun ({err})"
            ) from None
        self.result.commits += 1
        self.result.rows_loaded += n
        self.result.columns_added += [c for c in added if c not in self.result.columns_added]
        if self.deliveries is not None:  # after the lake commit: the lake is the record
            self.deliveries.deliver(written, self.seq)

    def _paused(self, err: SchemaMismatch, plan: schema_rules.SchemaPlan, data: pa.Table) -> PipelinePaused:
        """The pause for a column the source changed incompatibly, with the widening a steward may
        approve (`manara pipeline approve`) when one type holds both the stored and the new values."""
        from manara.lake.widen import widened_type

        column = err.extra.get("column")
        change = None
        if column in plan.target.names and column in data.schema.names:
            stored = plan.target.field(column).type
            incoming = schema_rules.iceberg_compatible(data.schema.field(column).type)
            to = widened_type(stored, incoming)
            if to is not None and to != stored:
                change = {"column": column, "from": schema_rules.type_name(stored),
                          "to": schema_rules.type_name(to)}  # fmt: skip
        how = "Change the mapping (for example a cast transform) and `manara pipeline apply` it to resume"
        if change is not None:
            how = (
                f"To keep the new values, widen the dataset's column '{column}' from {change['from']} to "
                f"{change['to']} (every stored row is kept): `manara pipeline approve {self.spec.name}`. "
                f"Or c{how[1:]}"
            )
        return PipelinePaused(f"{err.detail}. Nothing of this batch was written. {how}.", change=change)

    def _quarantine(self, rejects: pa.Table) -> None:
        n = rejects.num_rows
        now = datetime.now(UTC)
        table = pa.table(
            {
                "pipeline": [self.spec.name] * n,
                "run_id": [self.result.run_id] * n,
                "seq": pa.array([self.seq] * n, pa.int64()),
                "quarantined_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
                "reason": rejects.column("reason"),
                "position": rejects.column("position"),
                "payload": rejects.column("payload"),
                "replay_id": pa.nulls(n, pa.string()),
            },
            schema=QUARANTINE_SCHEMA,
        )
        catalog = self.ws.catalog
        try:
            qtable = catalog.load_table(self.qident)
            tx = qtable.transaction()
        except NoSuchTableError:
            tx = catalog.create_table_transaction(
                self.qident, schema=QUARANTINE_SCHEMA, properties=TABLE_DEFAULTS
            )
        tx.append(
            table,
            snapshot_properties={"manara.pipeline": self.spec.name, "manara.pipeline.seq": str(self.seq)},
        )
        ev = audit.EventFields(
            self.principal.actor, "dataset.quarantine", tenant=self.principal.tenant, target=self.qident[1],
            detail={"pipeline": self.spec.name, "run": self.result.run_id, "seq": self.seq, "rows": n},
            request_id=audit.request_id_var.get(),
        )  # fmt: skip
        with audit.iceberg_commit_audit(catalog.engine, ev):
            tx.commit_transaction()
        self.result.rows_quarantined += n
