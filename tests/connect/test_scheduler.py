"""The scheduler: cron times, no overlap, retries with backoff, paused pipelines left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from manara.connect.pipelines import apply_pipeline, parse_spec, pipeline_runs
from manara.connect.scheduler import BACKOFF, Scheduler
from manara.govern.principal import Principal
from manara.workspace import Workspace

T0 = datetime(2026, 11, 23, 10, 0, 30, tzinfo=UTC)


def declare(ws: Workspace, operator: Principal, folder: Path, schedule: str | None = "*/5 * * * *") -> None:
    text = f"name: hourly\nsource: {{type: files, options: {{path: '{folder}'}}}}\ndestination: {{dataset: hourly}}\n"
    apply_pipeline(ws, operator, parse_spec(text + (f"schedule: '{schedule}'\n" if schedule else "")))


def test_a_scheduled_pipeline_runs_at_its_cron_times(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    (tmp_path / "a.csv").write_text("id\n1\n2\n", encoding="utf-8")
    declare(ws, operator, tmp_path)
    sched = Scheduler(ws, synchronous=True)
    assert sched.tick(T0) == []  # first sight: due at 10:05
    assert sched.tick(T0 + timedelta(minutes=4)) == []
    assert sched.tick(T0 + timedelta(minutes=4, seconds=31)) == [("default", "hourly")]
    runs = pipeline_runs(ws, operator, "hourly")
    assert [(r["trigger"], r["actor"], r["rows_loaded"]) for r in runs] == [("schedule", "scheduler", 2)]
    assert sched.tick(T0 + timedelta(minutes=6)) == []  # next at 10:10
    assert sched.tick(T0 + timedelta(minutes=10)) == [("default", "hourly")]


def test_a_failing_run_is_retried_with_backoff(ws: Workspace, operator: Principal, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    declare(ws, operator, landing)
    landing.rmdir()  # the source folder disappears: runs fail
    sched = Scheduler(ws, synchronous=True)
    sched.tick(T0)
    due = T0 + timedelta(minutes=5)
    assert sched.tick(due) == [("default", "hourly")]
    plan = sched.plans[("default", "hourly")]
    assert (plan.retries, plan.next_at) == (1, due + BACKOFF)
    assert sched.tick(due + BACKOFF - timedelta(seconds=1)) == []
    assert sched.tick(due + BACKOFF) == [("default", "hourly")]
    assert (plan.retries, plan.next_at) == (2, due + BACKOFF + 2 * BACKOFF)
    assert [r["status"] for r in pipeline_runs(ws, operator, "hourly")] == ["failed", "failed"]
    landing.mkdir()
    (landing / "a.csv").write_text("id\n1\n", encoding="utf-8")
    assert sched.tick(due + 3 * BACKOFF) == [("default", "hourly")]
    assert plan.retries == 0 and plan.next_at == datetime(2026, 11, 23, 10, 10, tzinfo=UTC)


def test_paused_and_unscheduled_pipelines_are_not_started(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    declare(ws, operator, tmp_path, schedule=None)
    sched = Scheduler(ws, synchronous=True)
    assert sched.scheduled() == {}
    declare(ws, operator, tmp_path)
    assert sched.scheduled() == {("default", "hourly"): "*/5 * * * *"}
    from manara.meta.db import session_scope
    from manara.meta.models import Pipeline

    with session_scope(ws.engine) as s:
        s.query(Pipeline).update({Pipeline.paused: "column 'id' changed type"})
    assert sched.scheduled() == {}
    assert sched.tick(T0 + timedelta(days=1)) == []


def test_the_background_thread_starts_and_stops(ws: Workspace) -> None:
    sched = Scheduler(ws, tick=0.05)
    sched.start()
    assert sched._thread is not None and sched._thread.is_alive()
    sched.stop()
    assert sched._thread is None
