"""Watched folders: a files pipeline that loads files as they land, each one whole and once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from manara.connect.pipelines import RunResult, apply_pipeline, parse_spec, run_pipeline
from manara.connect.protocol import Context
from manara.connect.registry import get_connector
from manara.connect.sources.files import FilesOptions, FilesSource
from manara.errors import BadRequest
from manara.govern.principal import Principal
from manara.workspace import Workspace

NAME = "drops"


def declare(
    ws: Workspace, operator: Principal, folder: Path, commit_seconds: float = 0.5, **options: object
) -> None:
    opts = {"path": str(folder), "watch": True, "settle_seconds": 0.3, "tick_seconds": 0.1,
            "idle_seconds": None, **options}  # fmt: skip
    body = {"name": NAME, "source": {"type": "files", "options": opts},
            "destination": {"dataset": NAME, "commit_seconds": commit_seconds}}  # fmt: skip
    apply_pipeline(ws, operator, parse_spec(json.dumps(body)))


def csv_text(start: int, n: int) -> str:
    return "id,amount\n" + "".join(f"{i},{i * 1.5}\n" for i in range(start, start + n))


def loaded(ws: Workspace, dataset: str = NAME) -> list[int]:
    ident = ("default", dataset)
    if not ws.catalog.table_exists(ident):
        return []
    return sorted(ws.catalog.load_table(ident).scan().to_arrow().column("id").to_pylist())


def wait_for(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until `check()` held; fails after `timeout`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"not within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - started


class Watching:
    """A pipeline run in a thread, as the scheduler runs it, ended by its stop event."""

    def __init__(self, ws: Workspace, operator: Principal) -> None:
        self.stop = threading.Event()
        self.results: list[RunResult] = []
        self.thread = threading.Thread(
            target=lambda: self.results.append(run_pipeline(ws, operator, NAME, stop=self.stop)), daemon=True
        )
        self.thread.start()

    def finish(self) -> tuple[RunResult, float]:
        """Stop the run; returns its result and how long it took to end after the stop."""
        asked = time.monotonic()
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive() and self.results, "the run did not end"
        return self.results[0], time.monotonic() - asked


@pytest.fixture
def watching(ws: Workspace, operator: Principal) -> Iterator[Callable[[], Watching]]:
    runs: list[Watching] = []

    def start() -> Watching:
        runs.append(Watching(ws, operator))
        return runs[-1]

    yield start
    for run in runs:  # a failed test never leaves a run behind
        run.stop.set()
        run.thread.join(10)


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder


def test_a_dropped_file_is_committed_while_watching_and_a_stop_ends_the_run_promptly(
    ws: Workspace, operator: Principal, landing: Path, watching: Callable[[], Watching]
) -> None:
    (landing / "a.csv").write_text(csv_text(1, 3), encoding="utf-8")
    declare(ws, operator, landing, commit_seconds=0.5)
    run = watching()
    wait_for(lambda: loaded(ws) == [1, 2, 3], 8)  # what was there first
    (landing / "b.csv").write_text(csv_text(10, 5), encoding="utf-8")
    # settle (0.3 s) + commit_seconds (0.5 s) + a tick, with room for a busy machine
    assert wait_for(lambda: len(loaded(ws)) == 8, 4) < 4
    assert run.thread.is_alive(), "committed by time while still watching"
    result, took = run.finish()
    assert took < 2
    assert (result.status, result.rows_loaded, result.rows_quarantined) == ("succeeded", 8, 0), result.error

    # a rerun sees both files as loaded: nothing twice, no empty commits
    again = watching()
    time.sleep(1.0)  # past settle_seconds and several ticks
    second, took = again.finish()
    assert took < 2
    assert (second.status, second.rows_in, second.rows_loaded, second.commits) == ("succeeded", 0, 0, 0)
    assert loaded(ws) == [1, 2, 3, 10, 11, 12, 13, 14]


def test_a_file_written_in_two_steps_is_loaded_whole_once(
    ws: Workspace, operator: Principal, landing: Path, watching: Callable[[], Watching]
) -> None:
    declare(ws, operator, landing, settle_seconds=1.5, tick_seconds=0.05)
    run = watching()
    text = csv_text(0, 100)
    cut = text.index("50,75.0") + 4  # half-way, inside a row: "50,7" | "5.0\n51,..."
    path = landing / "big.csv"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text[:cut])
    time.sleep(0.4)  # many scans see the first half; it has not settled yet
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text[cut:])
    wait_for(lambda: len(loaded(ws)) > 0, 8)
    time.sleep(0.3)
    result, _ = run.finish()
    assert (result.status, result.rows_in, result.rows_loaded, result.rows_quarantined) == (
        "succeeded", 100, 100, 0,
    ), result.error  # fmt: skip
    assert loaded(ws) == list(range(100))
    assert not ws.catalog.table_exists(("default", f"{NAME}__quarantine"))


def test_partial_uploads_are_ignored_until_renamed_and_vanished_files_skipped(
    ws: Workspace, operator: Principal, landing: Path, watching: Callable[[], Watching]
) -> None:
    declare(ws, operator, landing, settle_seconds=0.5)  # pattern "*": every name matches
    run = watching()
    (landing / "a.csv.part").write_text(csv_text(1, 4), encoding="utf-8")
    (landing / "b.CSV.crdownload").write_text(csv_text(5, 1), encoding="utf-8")
    (landing / ".~lock.a.csv#").write_text("owner\n", encoding="utf-8")
    (landing / "gone.csv").write_text(csv_text(90, 2), encoding="utf-8")
    time.sleep(0.2)
    (landing / "gone.csv").unlink()  # removed before it settled: skipped, no error
    time.sleep(1.2)  # well past settle_seconds
    assert run.thread.is_alive() and loaded(ws) == []
    (landing / "a.csv.part").rename(landing / "a.csv")
    wait_for(lambda: loaded(ws) == [1, 2, 3, 4], 5)
    result, _ = run.finish()
    assert (result.status, result.rows_loaded, result.rows_quarantined) == ("succeeded", 4, 0), result.error


def test_idle_seconds_ends_the_run(ws: Workspace, operator: Principal, landing: Path) -> None:
    (landing / "a.csv").write_text(csv_text(1, 2), encoding="utf-8")
    declare(ws, operator, landing, settle_seconds=0.2, idle_seconds=0.6)
    started = time.monotonic()
    result = run_pipeline(ws, operator, NAME)  # no stop event: only idle_seconds ends it
    took = time.monotonic() - started
    assert (result.status, result.rows_loaded) == ("succeeded", 2), result.error
    assert 0.8 <= took < 6  # settled, read, then 0.6 s of quiet
    again = run_pipeline(ws, operator, NAME)
    assert (again.rows_in, again.commits) == (0, 0)


def test_a_malformed_file_goes_to_quarantine_and_watching_goes_on(
    ws: Workspace, operator: Principal, landing: Path, watching: Callable[[], Watching]
) -> None:
    declare(ws, operator, landing, pattern="*.csv")
    run = watching()
    (landing / "broken.csv").write_bytes(b"id,amount\n1,\xff\xfe\x00\x00garbage\x00\n")
    quarantine = ("default", f"{NAME}__quarantine")
    wait_for(lambda: ws.catalog.table_exists(quarantine), 6)
    (landing / "good.csv").write_text(csv_text(1, 3), encoding="utf-8")
    wait_for(lambda: loaded(ws) == [1, 2, 3], 6)
    assert run.thread.is_alive()
    result, _ = run.finish()
    assert result.status == "succeeded" and result.rows_loaded == 3, result.error
    rows = ws.catalog.load_table(quarantine).scan().to_arrow().to_pylist()
    assert rows and all(r["position"] == "broken.csv" for r in rows)
    assert result.rows_quarantined == len(rows)


# --- the source on its own --------------------------------------------------------------------


def source(folder: Path, stop: threading.Event | None = None, **options: object) -> FilesSource:
    context = Context(tmp_dir=folder.parent / "tmp", file_roots=(folder.parent,), stop=stop)
    return FilesSource(FilesOptions.model_validate({"path": str(folder), **options}), context)


def test_waiting_costs_no_cpu_and_ticks_hand_back_the_cursor(landing: Path) -> None:
    (landing / "a.csv").write_text(csv_text(1, 2), encoding="utf-8")
    chunks = source(landing, watch=True, settle_seconds=0.1, tick_seconds=0.05, idle_seconds=1.0).read(None)
    first_tick = None
    for chunk in chunks:  # read a.csv, up to the first tick after it
        if chunk.position == "listening" and first_tick is None and chunk.cursor.get("done"):
            first_tick = chunk
            break
    assert first_tick is not None and first_tick.cursor == {
        "done": {"a.csv": first_tick.cursor["done"]["a.csv"]}
    }
    cpu, wall = time.process_time(), time.monotonic()
    ticks = [c for c in chunks]  # 1 s of quiet, then idle_seconds ends it
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    assert 0.8 <= wall < 3 and cpu < 0.25, (wall, cpu)
    assert 10 <= len(ticks) <= 1.0 / 0.05 + 5  # one per tick_seconds: no busy loop
    assert all(t.batch is None and t.cursor == first_tick.cursor for t in ticks)


def test_a_stop_is_heard_within_a_tick(landing: Path) -> None:
    stop = threading.Event()
    chunks = source(landing, stop, watch=True, tick_seconds=0.5, idle_seconds=None).read({"done": {}})
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert [c.position for c in chunks] == ["listening"]
    assert time.monotonic() - started < 0.7


def test_a_cursor_handed_out_never_changes_afterwards(landing: Path) -> None:
    """The runner commits a group in a second thread while the source reads on: a chunk's cursor
    must still say what it said when it was yielded."""
    (landing / "a.csv").write_text(csv_text(1, 2), encoding="utf-8")
    (landing / "b.csv").write_text(csv_text(3, 2), encoding="utf-8")
    chunks = list(source(landing).read(None))
    assert [c.position for c in chunks] == ["a.csv rows 1–2", "a.csv", "b.csv rows 1–2", "b.csv"]
    assert chunks[0].cursor["done"] == {} and chunks[0].cursor["file"] == "a.csv"
    assert list(chunks[2].cursor["done"]) == ["a.csv"] and list(chunks[3].cursor["done"]) == [
        "a.csv",
        "b.csv",
    ]


def test_a_file_gone_before_it_is_read_is_skipped(landing: Path) -> None:
    src = source(landing, watch=True)
    path = landing / "gone.csv"
    path.write_text(csv_text(1, 2), encoding="utf-8")
    fp = f"{path.stat().st_size}:{path.stat().st_mtime_ns}"
    path.unlink()
    reader = src._read_file("gone.csv", path, fp, 0, {}, stop=threading.Event())
    with pytest.raises(StopIteration) as end:
        next(reader)
    assert end.value.value == {}  # not marked loaded, nothing quarantined


def test_watch_options(tmp_path: Path) -> None:
    files = get_connector("files", "source")
    opts = files.parse_options({"path": str(tmp_path), "watch": True})
    assert isinstance(opts, FilesOptions)
    assert (opts.settle_seconds, opts.max_seconds, opts.idle_seconds, opts.tick_seconds) == (
        2.0,
        None,
        5.0,
        0.5,
    )
    with pytest.raises(BadRequest, match="only used with watch"):
        files.parse_options({"path": str(tmp_path), "idle_seconds": 1})
    with pytest.raises(BadRequest, match="tick_seconds"):  # the limits listening sources have
        files.parse_options({"path": str(tmp_path), "watch": True, "tick_seconds": 100})
    described = {o["name"]: o for o in files.describe()["options"]}
    assert described["idle_seconds"]["description"].startswith("watch:")
