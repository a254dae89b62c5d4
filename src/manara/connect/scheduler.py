"""The in-process scheduler `manara up` runs: cron schedules, one run at a time, retries with backoff.

Every `TICK` seconds the scheduler looks at the pipelines that declare a `schedule` and are not
paused, in every tenant. A pipeline whose next cron time has passed is started in a worker thread
(the run lock in `run_pipeline` keeps it to one run at a time, also against a CLI run). A run that
fails is retried after 30 s, 1 min, 2 min… (at most `MAX_RETRIES` times), then waits for its next
cron time. A paused pipeline is not retried: it waits for a steward. Missed times while the hub was
down are not replayed one by one: the next tick runs the pipeline once, and a run loads everything
since its committed cursor anyway.

A pipeline scheduled `@continuous` (a listening source: MQTT, OPC UA) is started again at the
first tick after its run ends; with `idle_seconds: null` its run listens until the hub stops, and
`stop()` asks running pipelines to end and waits for them to commit what they received.

`tick(now)` does one round with an explicit clock, which is what the tests drive.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter
from sqlalchemy import select

from manara.connect.pipelines import CONTINUOUS, run_pipeline
from manara.errors import Conflict
from manara.meta.db import session_scope
from manara.meta.models import Pipeline, Tenant
from manara.workspace import Workspace

log = logging.getLogger("manara.scheduler")
TICK = 15.0
MAX_RETRIES = 3
BACKOFF = timedelta(seconds=30)
ACTOR = "scheduler"


@dataclass
class _Plan:
    schedule: str
    next_at: datetime
    retries: int = 0


class Scheduler:
    def __init__(self, ws: Workspace, *, tick: float = TICK, synchronous: bool = False) -> None:
        self.ws = ws
        self.tick_seconds = tick
        self.synchronous = synchronous  # run pipelines in the caller's thread (tests)
        self.plans: dict[tuple[str, str], _Plan] = {}
        self.running: dict[tuple[str, str], threading.Thread] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- one round -------------------------------------------------------------------------------

    def scheduled(self) -> dict[tuple[str, str], str]:
        """(tenant, pipeline) → cron expression, for the pipelines that are scheduled and not paused."""
        out = {}
        with session_scope(self.ws.engine) as s:
            rows = s.execute(
                select(Tenant.slug, Pipeline.name, Pipeline.spec)
                .join(Tenant, Tenant.id == Pipeline.tenant_id)
                .where(Pipeline.paused.is_(None))
            ).all()
        for tenant, name, spec in rows:
            schedule = json.loads(spec).get("schedule")
            if schedule:
                out[(tenant, name)] = schedule
        return out

    def tick(self, now: datetime | None = None) -> list[tuple[str, str]]:
        """Start the pipelines that are due at `now`; returns which were started."""
        now = now or datetime.now(UTC)
        started = []
        current = self.scheduled()
        for key in list(self.plans):
            if key not in current:  # unscheduled, paused or deleted
                del self.plans[key]
        for key, schedule in current.items():
            plan = self.plans.get(key)
            if plan is None or plan.schedule != schedule:
                self.plans[key] = _Plan(schedule, _next(schedule, now))
                continue
            worker = self.running.get(key)
            if worker is not None and worker.is_alive():
                continue
            if now >= plan.next_at:
                started.append(key)
                self._start(key, now)
        return started

    def _start(self, key: tuple[str, str], now: datetime) -> None:
        if self.synchronous:
            self._run(key, now)
            return
        worker = threading.Thread(target=self._run, args=(key, now), name=f"pipeline-{key[1]}", daemon=True)
        self.running[key] = worker
        worker.start()

    def _run(self, key: tuple[str, str], now: datetime) -> None:
        tenant, name = key
        plan = self.plans[key]
        try:
            result = run_pipeline(self.ws, self.ws.principal(tenant, actor=ACTOR), name, trigger="schedule",
                                  stop=self._stop)  # fmt: skip
            ok = result.status in ("succeeded", "paused")  # paused: a steward's turn, not a retry
            error = result.error
        except Conflict as err:  # already running (e.g. from the CLI): try at the next time
            ok, error = True, err.detail
        except Exception as err:  # the scheduler must outlive any pipeline
            ok, error = False, f"{type(err).__name__}: {err}"
        if ok or plan.retries >= MAX_RETRIES:
            if not ok:
                log.warning("pipeline %s/%s failed %d times, waiting for its next time: %s", tenant, name,
                            plan.retries + 1, error)  # fmt: skip
            plan.retries = 0
            plan.next_at = _next(plan.schedule, max(now, plan.next_at))
        else:
            plan.next_at = now + BACKOFF * (2**plan.retries)
            plan.retries += 1
            log.warning("pipeline %s/%s failed, retry %d at %s: %s", tenant, name, plan.retries,
                        plan.next_at.isoformat(), error)  # fmt: skip

    # --- the background thread -------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="manara-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop scheduling; listening runs end, and what they received is committed (up to `timeout`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for worker in list(self.running.values()):
            worker.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("scheduler tick failed")
            self._stop.wait(self.tick_seconds)


def _next(schedule: str, after: datetime) -> datetime:
    if schedule == CONTINUOUS:
        return after
    nxt: datetime = croniter(schedule, after).get_next(datetime)
    return nxt if nxt.tzinfo else nxt.replace(tzinfo=UTC)
