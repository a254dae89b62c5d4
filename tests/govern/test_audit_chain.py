"""The hash-chained audit log: it verifies, it detects tampering, the database refuses edits,
concurrent writers keep it gapless, and an ingest's event is committed with its Iceberg commit."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from manara.errors import IngestError
from manara.govern import audit, identity
from manara.govern.principal import Principal
from manara.lake.datasets import dataset_history, list_datasets, show_dataset
from manara.lake.ingest import ingest_file
from manara.lake.sql import run_query
from manara.meta.db import session_scope
from manara.meta.models import Role
from manara.workspace import Workspace

# --- helpers -------------------------------------------------------------------------------------------


def chain(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as c:
        return [dict(r) for r in c.execute(text("SELECT * FROM manara_audit_events ORDER BY seq")).mappings()]


def head(engine: Engine) -> tuple[int, str]:
    with engine.connect() as c:
        row = c.execute(text("SELECT seq, last_hash FROM manara_audit_head WHERE id = 1")).one()
    return int(row[0]), str(row[1])


def drop_append_only_triggers(engine: Engine) -> None:
    with engine.begin() as c:
        if engine.dialect.name == "sqlite":
            c.execute(text("DROP TRIGGER manara_audit_no_update"))
            c.execute(text("DROP TRIGGER manara_audit_no_delete"))
        elif engine.dialect.name == "postgresql":
            c.execute(text("DROP TRIGGER manara_audit_append_only ON manara_audit_events"))
        else:  # pragma: no cover
            pytest.skip(f"no trigger names known for {engine.dialect.name}")


def raw(engine: Engine, sql: str, **params: object) -> int:
    with engine.begin() as c:
        return c.execute(text(sql), params).rowcount


def busy_workspace(ws: Workspace, operator: Principal, tmp_path: Path) -> None:
    """Many different actions through the public services, each audited."""
    with session_scope(ws.engine) as s:
        t = identity.create_tenant(s, "second", "Second", "test")
        u = identity.create_user(s, t, "salma", None, Role.analyst, "test")
        tok = identity.create_token(s, t, role=Role.analyst, name="t", actor="test", user=u)
        identity.revoke_token(s, t, tok.token.id, "test")
    for i in range(3):
        f = tmp_path / f"part{i}.csv"
        f.write_text(f"id,ville\n{i},فاس\n", "utf-8")
        ingest_file(ws, operator, f, "villes")
    list_datasets(ws, operator)
    show_dataset(ws, operator, "villes")
    dataset_history(ws, operator, "villes")
    run_query(ws, operator, "select count(*) from villes")
    with pytest.raises(Exception):  # noqa: B017 - a denied query is audited too
        run_query(ws, operator, "drop table villes")
    for i in range(20):
        audit.write(ws.engine, audit.EventFields(f"user:u{i}", "test.event", tenant="default", target=f"t{i}",
                                                 detail={"i": i, "texte": "نص عربي"}))  # fmt: skip


# --- the chain verifies -----------------------------------------------------------------------------------


def test_chain_verifies_after_many_actions(ws: Workspace, operator: Principal, tmp_path: Path) -> None:
    busy_workspace(ws, operator, tmp_path)

    result = audit.verify(ws.engine)
    events = chain(ws.engine)

    assert result.ok and result.first_broken_seq is None and result.reason is None
    assert result.checked == len(events) >= 35
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["prev_hash"] == audit.GENESIS
    for prev, cur in zip(events, events[1:], strict=False):
        assert cur["prev_hash"] == prev["hash"]
    assert head(ws.engine) == (len(events), events[-1]["hash"])
    actions = {e["action"] for e in events}
    assert {"tenant.create", "user.create", "token.create", "token.revoke", "dataset.ingest", "dataset.list",
            "dataset.show", "dataset.history", "sql.query", "test.event"} <= actions  # fmt: skip


def test_verify_in_small_batches(ws: Workspace, operator: Principal, tmp_path: Path) -> None:
    busy_workspace(ws, operator, tmp_path)
    full = audit.verify(ws.engine)
    assert audit.verify(ws.engine, batch=3) == full
    assert audit.verify(ws.engine, batch=1) == full


def test_query_filters_and_pages(ws: Workspace, operator: Principal, tmp_path: Path) -> None:
    busy_workspace(ws, operator, tmp_path)
    tests = audit.query(ws.engine, action="test.event", limit=1000)
    assert [e["detail"]["i"] for e in tests] == list(range(19, -1, -1))  # newest first
    assert tests[0]["detail"]["texte"] == "نص عربي"
    page = audit.query(ws.engine, action="test.event", limit=5, before_seq=tests[4]["seq"])
    assert [e["detail"]["i"] for e in page] == [14, 13, 12, 11, 10]
    assert [e["target"] for e in audit.query(ws.engine, target="t1", action="test.event", limit=100)] == [
        f"t{i}" for i in (19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 1)
    ]  # target is a prefix filter
    assert (
        audit.query(ws.engine, outcome="denied", action="sql.query")[0]["detail"]["sql"]
        == "drop table villes"
    )
    assert {e["tenant"] for e in audit.query(ws.engine, tenant="second", limit=100)} == {"second"}


# --- tampering --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [("target", "someone-else"), ("actor", "user:ghost"), ("outcome", "tampered"), ("detail", '{"i": 999}'),
     ("tenant", "second")],
)  # fmt: skip
def test_altered_event_is_named(
    ws: Workspace, operator: Principal, tmp_path: Path, column: str, value: str
) -> None:
    busy_workspace(ws, operator, tmp_path)
    n = len(chain(ws.engine))
    victim = n // 2
    drop_append_only_triggers(ws.engine)

    assert (
        raw(ws.engine, f"UPDATE manara_audit_events SET {column} = :v WHERE seq = :s", v=value, s=victim) == 1
    )

    result = audit.verify(ws.engine)
    assert not result.ok
    assert result.first_broken_seq == victim
    assert result.checked == victim - 1
    assert "altered" in (result.reason or "")


def test_altered_timestamp_is_named(ws: Workspace, operator: Principal, tmp_path: Path) -> None:
    busy_workspace(ws, operator, tmp_path)
    victim = 7
    ts = chain(ws.engine)[victim - 1]["ts"]
    drop_append_only_triggers(ws.engine)
    with ws.engine.begin() as c:
        c.execute(
            text("UPDATE manara_audit_events SET ts = :ts WHERE seq = :s"),
            {"ts": datetime.fromisoformat(str(ts)) - timedelta(days=1), "s": victim},
        )
    result = audit.verify(ws.engine)
    assert not result.ok and result.first_broken_seq == victim


def test_rehashed_event_breaks_the_next_link(ws: Workspace, operator: Principal, tmp_path: Path) -> None:
    """An attacker who recomputes the altered event's own hash is caught by the following event."""
    busy_workspace(ws, operator, tmp_path)
    events = chain(ws.engine)
    victim = events[10]
    forged = audit.event_hash({**victim, "ts": datetime.fromisoformat(str(victim["ts"])), "target": "forged"})
    drop_append_only_triggers(ws.engine)
    raw(ws.engine, "UPDATE manara_audit_events SET target = 'forged', hash = :h WHERE seq = :s", h=forged,
        s=victim["seq"])  # fmt: skip

    result = audit.verify(ws.engine)
    assert not result.ok
    assert result.first_broken_seq == victim["seq"] + 1
    assert "previous-hash" in (result.reason or "")


def test_deleted_middle_event_is_named(ws: Workspace, operator: Principal, tmp_path: Path) -> None:
    busy_workspace(ws, operator, tmp_path)
    n = len(chain(ws.engine))
    victim = n // 3
    drop_append_only_triggers(ws.engine)

    assert raw(ws.engine, "DELETE FROM manara_audit_events WHERE seq = :s", s=victim) == 1

    result = audit.verify(ws.engine)
    assert not result.ok
    assert result.first_broken_seq == victim
    assert result.reason == f"event {victim} is missing (next is {victim + 1})"


def test_deleted_last_event_is_detected_by_the_head(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    busy_workspace(ws, operator, tmp_path)
    n = len(chain(ws.engine))
    drop_append_only_triggers(ws.engine)

    assert raw(ws.engine, "DELETE FROM manara_audit_events WHERE seq = :s", s=n) == 1

    result = audit.verify(ws.engine)
    assert not result.ok
    assert result.checked == n - 1
    assert result.first_broken_seq == n
    assert f"head says {n} events but {n - 1} are present" in (result.reason or "")


def test_deleted_tail_with_head_rewound_is_detected(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    """Cutting the last events and moving the head's seq back still leaves its hash pointing past them."""
    busy_workspace(ws, operator, tmp_path)
    n = len(chain(ws.engine))
    drop_append_only_triggers(ws.engine)
    raw(ws.engine, "DELETE FROM manara_audit_events WHERE seq > :s", s=n - 3)
    raw(ws.engine, "UPDATE manara_audit_head SET seq = :s WHERE id = 1", s=n - 3)

    result = audit.verify(ws.engine)
    assert not result.ok and result.first_broken_seq == n - 2


def test_chain_still_verifies_when_triggers_are_gone_but_nothing_changed(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    busy_workspace(ws, operator, tmp_path)
    drop_append_only_triggers(ws.engine)
    assert audit.verify(ws.engine).ok  # the tamper tests above fail because of the change, not the DDL


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE manara_audit_events SET target = 'x' WHERE seq = 2",
        "UPDATE manara_audit_events SET outcome = 'ok'",
        "DELETE FROM manara_audit_events WHERE seq = 2",
        "DELETE FROM manara_audit_events",
    ],
)
def test_database_refuses_update_and_delete(ws: Workspace, operator: Principal, tmp_path: Path,
                                            statement: str) -> None:  # fmt: skip
    busy_workspace(ws, operator, tmp_path)
    before = chain(ws.engine)

    with pytest.raises(DBAPIError) as info:
        raw(ws.engine, statement)

    assert "append-only" in str(info.value)
    assert chain(ws.engine) == before
    assert audit.verify(ws.engine).ok


# --- concurrency --------------------------------------------------------------------------------------------


def test_concurrent_writers_keep_the_chain_gapless(ws: Workspace) -> None:
    start_seq = head(ws.engine)[0]
    barrier = threading.Barrier(4)
    seqs: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        try:
            barrier.wait()
            for i in range(25):
                seq = audit.write(
                    ws.engine,
                    audit.EventFields(
                        f"user:w{w}", "test.concurrent", tenant="default", detail={"w": w, "i": i}
                    ),
                )
                with lock:
                    seqs.append(seq)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert not errors, errors
    assert sorted(seqs) == list(range(start_seq + 1, start_seq + 101))  # each seq handed out once
    result = audit.verify(ws.engine)
    assert result.ok, result
    assert result.checked == start_seq + 100 >= 100
    events = chain(ws.engine)
    assert [e["seq"] for e in events] == list(range(1, start_seq + 101))
    ours = [e for e in events if e["action"] == "test.concurrent"]
    assert len(ours) == 100
    for w in range(4):  # each writer's own events are in its own order
        mine = [json.loads(str(e["detail"]))["i"] for e in ours if e["actor"] == f"user:w{w}"]
        assert mine == list(range(25))


def test_concurrent_ingests_and_writes(ws: Workspace, operator: Principal, tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def ingester(k: int) -> None:
        try:
            for i in range(3):
                f = tmp_path / f"d{k}_{i}.csv"
                f.write_text(f"id,v\n{i},x\n", "utf-8")
                ingest_file(ws, operator, f, f"ds{k}")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def writer() -> None:
        try:
            for i in range(30):
                audit.write(ws.engine, audit.EventFields("user:w", "test.concurrent", detail={"i": i}))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=ingester, args=(k,)) for k in range(2)] + [
        threading.Thread(target=writer)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert not errors, errors
    assert audit.verify(ws.engine).ok
    oks = audit.query(ws.engine, action="dataset.ingest", outcome="ok", limit=100)
    assert len(oks) == 6
    for k in range(2):
        table = ws.catalog.load_table(("default", f"ds{k}"))
        assert len(table.snapshots()) == 3
        assert {e["detail"]["snapshot_id"] for e in oks if e["target"] == f"ds{k}"} == {
            s.snapshot_id for s in table.snapshots()
        }


# --- atomicity of an ingest and its audit event ----------------------------------------------------------


def test_ingest_event_names_the_committed_snapshot(
    ws: Workspace, operator: Principal, tmp_path: Path
) -> None:
    f1 = tmp_path / "a.csv"
    f1.write_text("id,v\n1,a\n2,b\n", "utf-8")
    f2 = tmp_path / "b.csv"
    f2.write_text("id,v,w\n3,c,z\n", "utf-8")

    r1 = ingest_file(ws, operator, f1, "atom")
    r2 = ingest_file(ws, operator, f2, "atom", mode="overwrite")

    table = ws.catalog.load_table(("default", "atom"))
    events = audit.query(ws.engine, action="dataset.ingest", target="atom")
    assert [e["outcome"] for e in events] == ["ok", "ok"]
    newest, oldest = events
    assert newest["detail"]["snapshot_id"] == r2.snapshot_id == table.metadata.current_snapshot_id
    assert oldest["detail"]["snapshot_id"] == r1.snapshot_id == table.snapshots()[0].snapshot_id
    assert newest["detail"]["rows"] == 1 and newest["detail"]["mode"] == "overwrite"
    assert newest["detail"]["columns_added"] == ["w"] and newest["detail"]["source"] == "b.csv"
    assert newest["actor"] == operator.actor and newest["tenant"] == "default"
    # the Iceberg snapshot carries the same actor, so each side can be checked against the other
    assert table.current_snapshot().summary.additional_properties["manara.actor"] == operator.actor


def _fail_ok_ingest_events(engine: Engine) -> None:
    """A database trigger that refuses to store an 'ok' dataset.ingest event (and nothing else)."""
    with engine.begin() as c:
        if engine.dialect.name == "sqlite":
            c.execute(text(
                "CREATE TRIGGER test_refuse_ingest_ok BEFORE INSERT ON manara_audit_events "
                "WHEN NEW.action = 'dataset.ingest' AND NEW.outcome = 'ok' "
                "BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END"
            ))  # fmt: skip
        else:
            c.execute(text(
                "CREATE FUNCTION test_refuse_ingest_ok() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.action = 'dataset.ingest' AND NEW.outcome = 'ok' THEN "
                "RAISE EXCEPTION 'injected audit failure'; END IF; RETURN NEW; END $$"
            ))  # fmt: skip
            c.execute(text(
                "CREATE TRIGGER test_refuse_ingest_ok BEFORE INSERT ON manara_audit_events "
                "FOR EACH ROW EXECUTE FUNCTION test_refuse_ingest_ok()"
            ))  # fmt: skip


def test_no_commit_without_its_audit_event(ws: Workspace, operator: Principal, tmp_path: Path) -> None:
    """If the audit event cannot be stored, the Iceberg commit does not happen either."""
    f = tmp_path / "a.csv"
    f.write_text("id,v\n1,a\n", "utf-8")
    ingest_file(ws, operator, f, "kept")
    table = ws.catalog.load_table(("default", "kept"))
    before = (table.metadata.current_snapshot_id, len(table.snapshots()))
    _fail_ok_ingest_events(ws.engine)

    f2 = tmp_path / "b.csv"
    f2.write_text("id,v\n2,b\n", "utf-8")
    with pytest.raises(IngestError):
        ingest_file(ws, operator, f2, "kept")  # an existing dataset
    with pytest.raises(IngestError):
        ingest_file(ws, operator, f2, "brand_new")  # a dataset the ingest would create

    table = ws.catalog.load_table(("default", "kept"))
    assert (table.metadata.current_snapshot_id, len(table.snapshots())) == before
    assert table.scan().to_arrow().num_rows == 1
    assert not ws.catalog.table_exists(("default", "brand_new"))
    events = audit.query(ws.engine, action="dataset.ingest")
    assert [(e["target"], e["outcome"]) for e in events] == [
        ("brand_new", "error"),
        ("kept", "error"),
        ("kept", "ok"),
    ]
    assert audit.verify(ws.engine).ok
