"""The `manara` command line, driven in-process with Typer's CliRunner (and once as a real process)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import Cli
from sqlalchemy import text

from manara.config import Settings
from manara.govern import audit

TOKEN_RE = re.compile(r"mnr_[A-Za-z0-9_-]{43}")

VILLES_CSV = "id,ville,demande,montant\n1,الدار البيضاء,شهادة السكنى,10\n2,Fès,État civil,20\n3,Rabat,Légalisation,30\n"
MORE_CSV = "id,ville,demande,montant\n4,Tanger,طلب,40\n5,Agadir,Permis,50\n"


@pytest.fixture
def cli(settings: Settings, database_url: str | None) -> Cli:
    return Cli(settings.home, database_url)


@pytest.fixture
def ready(cli: Cli, tmp_path: Path) -> Cli:
    """An initialised workspace with dataset `villes` (3 rows, then 5)."""
    cli.ok("init")
    (tmp_path / "villes.csv").write_text(VILLES_CSV, "utf-8")
    (tmp_path / "more.csv").write_text(MORE_CSV, "utf-8")
    cli.ok("ingest", str(tmp_path / "villes.csv"), "--dataset", "villes")
    cli.ok("ingest", str(tmp_path / "more.csv"), "--dataset", "villes")
    return cli


# --- init and config -------------------------------------------------------------------------------


def test_init_prints_token_once(cli: Cli) -> None:
    first = cli.ok("init")
    tokens = TOKEN_RE.findall(first.stdout)
    assert len(tokens) == 1
    assert "shown once" in first.stdout
    assert (cli.home / "manara.toml").is_file()
    assert (cli.home / "warehouse").is_dir()

    second = cli.ok("init")
    assert "already initialised" in second.stdout
    assert TOKEN_RE.search(second.output) is None
    assert tokens[0] not in second.output

    # the token printed works against the workspace
    from manara.govern import identity
    from manara.meta.db import session_scope

    ws = cli.workspace()
    with session_scope(ws.engine) as s:
        principal = identity.authenticate(s, tokens[0])
    assert principal.tenant == "default" and principal.role.value == "admin"


def test_config_show_hides_database_password(cli: Cli) -> None:
    env = {"MANARA_DATABASE_URL": "postgresql+psycopg://u:s3cret@h/db", "MANARA_SQL_ROW_LIMIT": "1234"}
    shown = cli.ok("config", "show", env=env)
    assert "s3cret" not in shown.output
    assert "postgresql+psycopg://u:***@h/db" in shown.stdout
    assert "1234" in shown.stdout

    as_json = json.loads(cli.ok("config", "show", "--json", env=env).stdout)
    assert "s3cret" not in json.dumps(as_json)
    assert as_json["database_url"] == "postgresql+psycopg://u:***@h/db"
    assert as_json["sql_row_limit"] == 1234
    assert as_json["home"] == str(cli.home)


# --- tenants, users, tokens ------------------------------------------------------------------------


def test_tenants_users_tokens(cli: Cli) -> None:
    cli.ok("init")
    assert "rival" in cli.ok("tenant", "create", "rival", "--name", "Rival SARL").stdout
    tenants = cli.json("tenant", "list", "--json")
    assert [(t["slug"], t["name"]) for t in tenants] == [("default", "default"), ("rival", "Rival SARL")]
    assert "rival" in cli.ok("tenant", "list").stdout
    assert "already exists" in cli.fails("tenant", "create", "rival")
    assert "not valid" in cli.fails("tenant", "create", "Bad Tenant")

    cli.ok("user", "create", "amina", "--role", "analyst", "--no-password")
    assert "already exists" in cli.fails("user", "create", "amina", "--no-password")
    assert "unknown role" in cli.fails("user", "create", "omar", "--role", "boss", "--no-password")
    cli.ok("user", "create", "youssef", "--role", "viewer", "--password-stdin", input="un mot de passe\n")

    created = cli.json(
        "token", "create", "--user", "amina", "--role", "analyst", "--name", "rapport", "--json"
    )
    secret = created["secret"]
    assert TOKEN_RE.fullmatch(secret)
    assert created["role"] == "analyst" and created["tenant"] == "default"
    # a viewer user cannot hold an analyst token
    assert "cannot hold" in cli.fails("token", "create", "--user", "youssef", "--role", "analyst")

    listing = cli.ok("token", "list", "--json")
    assert secret not in listing.output
    rows = json.loads(listing.stdout)
    assert all("secret" not in r for r in rows)
    mine = next(r for r in rows if r["id"] == created["id"])
    assert mine["user"] == "amina" and mine["revoked_at"] is None
    assert secret not in cli.ok("token", "list").output

    cli.ok("token", "revoke", created["id"])
    after = {r["id"]: r for r in cli.json("token", "list", "--json")}
    assert after[created["id"]]["revoked_at"] is not None
    assert "does not exist" in cli.fails("token", "revoke", "tok_nope")

    # the revoked secret no longer authenticates
    from manara.errors import InvalidToken
    from manara.govern import identity
    from manara.meta.db import session_scope

    ws = cli.workspace()
    with session_scope(ws.engine) as s, pytest.raises(InvalidToken, match="revoked"):
        identity.authenticate(s, secret)

    # tokens are per tenant
    rival = cli.json("token", "create", "--tenant", "rival", "--role", "viewer", "--json")
    assert rival["tenant"] == "rival"
    assert rival["id"] not in {r["id"] for r in cli.json("token", "list", "--json")}
    assert rival["id"] in {r["id"] for r in cli.json("token", "list", "--tenant", "rival", "--json")}


# --- data ------------------------------------------------------------------------------------------


def test_ingest_datasets_show_history_sql(ready: Cli, tmp_path: Path) -> None:
    cli = ready
    extra = tmp_path / "extra.csv"
    extra.write_text("id,ville,demande,montant\n6,Oujda,x,60\n", "utf-8")
    out = cli.ok("ingest", str(extra), "--dataset", "villes", "--description", "Demandes par ville")
    assert "1 rows" in out.stdout and "villes" in out.stdout and "append" in out.stdout
    as_json = cli.json("ingest", str(extra), "--dataset", "villes_copy", "--json")
    assert as_json["rows"] == 1 and as_json["created"] is True

    assert "villes" in cli.ok("datasets").stdout
    listed = {d["name"]: d for d in cli.json("datasets", "--json")}
    assert set(listed) == {"villes", "villes_copy"}
    assert listed["villes"]["rows"] == 6
    assert listed["villes"]["description"] == "Demandes par ville"

    show = cli.json("dataset", "show", "villes", "--json")
    assert show["rows"] == 6 and show["snapshots"] == 3
    assert [c["name"] for c in show["columns"]] == ["id", "ville", "demande", "montant"]
    text_show = cli.ok("dataset", "show", "villes").stdout
    assert "Demandes par ville" in text_show and "montant" in text_show

    history = cli.json("dataset", "history", "villes", "--json")
    assert [h["total_rows"] for h in history] == [6, 5, 3]
    assert [h["current"] for h in history] == [True, False, False]
    assert cli.ok("dataset", "history", "villes").exit_code == 0
    first_snapshot = str(history[-1]["snapshot_id"])

    # time travel
    old = cli.json("sql", "SELECT count(*) AS n FROM villes", "--as-of", first_snapshot, "--output", "json")
    assert old == [{"n": 3}]
    now = cli.json("sql", "SELECT count(*) AS n FROM villes", "--output", "json")
    assert now == [{"n": 6}]

    rows = cli.json("sql", "SELECT id, ville, demande FROM villes WHERE id < 3 ORDER BY id", "-o", "json")
    assert rows == [
        {"id": 1, "ville": "الدار البيضاء", "demande": "شهادة السكنى"},
        {"id": 2, "ville": "Fès", "demande": "État civil"},
    ]
    as_csv = cli.ok(
        "sql", "SELECT id, ville FROM villes ORDER BY id", "--output", "csv", "--as-of", first_snapshot
    )
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert parsed == [
        {"id": "1", "ville": "الدار البيضاء"},
        {"id": "2", "ville": "Fès"},
        {"id": "3", "ville": "Rabat"},
    ]
    table = cli.ok("sql", "SELECT ville FROM villes ORDER BY id")
    assert "Rabat" in table.stdout and "6 rows" in table.stderr

    limited = cli.ok("sql", "SELECT id FROM villes ORDER BY id", "--limit", "2", "-o", "json")
    assert json.loads(limited.stdout) == [{"id": 1}, {"id": 2}]
    assert "cut at 2 rows" in limited.stderr

    cli.ok("dataset", "describe", "villes", "--owner", "data@region.ma")
    assert cli.json("dataset", "show", "villes", "--json")["owner"] == "data@region.ma"


def test_upsert_and_encoding_from_cli(ready: Cli, tmp_path: Path) -> None:
    upd = tmp_path / "upd.csv"
    upd.write_text("id,ville,demande,montant\n2,فاس,مراجعة,25\n", "utf-8")
    ready.ok("ingest", str(upd), "-d", "villes", "--mode", "upsert", "--key", "id")
    assert ready.json("sql", "SELECT ville, montant FROM villes WHERE id = 2", "-o", "json") == [
        {"ville": "فاس", "montant": 25}
    ]
    cp = tmp_path / "fournisseurs.csv"
    cp.write_bytes("ice,raison_sociale\r\n001234567000089,شركة الأطلس ش.م.م\r\n".encode("cp1256"))
    res = ready.json("ingest", str(cp), "-d", "fournisseurs", "--encoding", "windows-1256", "--json")
    assert res["rows"] == 1
    assert ready.json("sql", "SELECT ice, raison_sociale FROM fournisseurs", "-o", "json") == [
        {"ice": "001234567000089", "raison_sociale": "شركة الأطلس ش.م.م"}
    ]


def test_fixed_column_type_from_cli(ready: Cli, tmp_path: Path) -> None:
    codes = tmp_path / "codes.csv"
    codes.write_text("code,montant\n120,1.50\n007,2\n", "utf-8")
    ready.ok("ingest", str(codes), "-d", "codes", "--type", "code=string", "--type", "montant=double")
    assert ready.json("sql", "SELECT code, montant FROM codes ORDER BY code", "-o", "json") == [
        {"code": "007", "montant": 2.0},
        {"code": "120", "montant": 1.5},
    ]
    assert "not COLUMN=TYPE" in ready.fails("ingest", str(codes), "-d", "codes2", "--type", "code")


# --- errors: one line, exit 1, no traceback --------------------------------------------------------


def test_errors_are_one_line(ready: Cli, tmp_path: Path) -> None:
    cli = ready
    state_before = cli.json("dataset", "show", "villes", "--json")

    assert "parse" in cli.fails("sql", "SELECT * FROM villes WHERE (")
    assert cli.fails("sql", "SELEC * FRM villes")
    assert "only SELECT" in cli.fails("sql", "DROP TABLE villes")
    assert "unknown dataset" in cli.fails("sql", "SELECT * FROM ghost")
    assert "no_such_col" in cli.fails("sql", "SELECT no_such_col FROM villes")
    assert "ghost" in cli.fails("dataset", "show", "ghost")
    assert "ghost" in cli.fails("dataset", "history", "ghost")
    assert "does not exist" in cli.fails("sql", "SELECT 1 FROM villes", "--as-of", "42")

    bad = tmp_path / "ragged.csv"
    bad.write_text("id,ville,demande,montant\n7,a,b,1\n8,a,b,1,2,3\n9,a,b,1\n", "utf-8")
    assert cli.fails("ingest", str(bad), "-d", "villes").startswith("error: ragged.csv")
    mismatch = tmp_path / "mismatch.csv"
    mismatch.write_text("id,ville,demande,montant\n7,a,b,beaucoup\n", "utf-8")
    assert "montant" in cli.fails("ingest", str(mismatch), "-d", "villes")
    empty = tmp_path / "empty.csv"
    empty.write_text("", "utf-8")
    assert "empty" in cli.fails("ingest", str(empty), "-d", "villes")

    assert "not valid" in cli.fails("ingest", str(tmp_path / "villes.csv"), "-d", "Bad-Name")
    assert "unknown mode" in cli.fails(
        "ingest", str(tmp_path / "villes.csv"), "-d", "villes", "--mode", "merge"
    )
    assert "does not exist" in cli.fails("datasets", "--tenant", "nobody")

    # nothing was written by any of the failures
    assert cli.json("dataset", "show", "villes", "--json") == state_before


def test_commands_before_init_say_run_init(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "a.csv"
    src.write_text("a,b\n1,2\n", "utf-8")
    for args in (
        ("datasets",),
        ("sql", "SELECT 1"),
        ("ingest", str(src), "-d", "abc"),
        ("token", "list"),
        ("audit", "verify"),
        ("dataset", "show", "abc"),
    ):
        line = cli.fails(*args)
        assert "manara init" in line, line
    # and init still works afterwards
    assert TOKEN_RE.search(cli.ok("init").stdout)


# --- audit -----------------------------------------------------------------------------------------


def test_audit_verify_and_tamper(ready: Cli) -> None:
    cli = ready
    ok = cli.ok("audit", "verify")
    assert "intact" in ok.stdout
    events = cli.json("audit", "list", "--json", "--action", "dataset.ingest")
    assert len(events) == 2 and all(e["target"] == "villes" for e in events)

    ws = cli.workspace()
    victim = events[-1]["seq"]
    with ws.engine.begin() as conn:
        if ws.engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER manara_audit_no_update"))
        else:
            conn.execute(text("DROP TRIGGER manara_audit_append_only ON manara_audit_events"))
        conn.execute(
            text("UPDATE manara_audit_events SET actor = 'mallory' WHERE seq = :seq"), {"seq": victim}
        )
    broken = cli(*["audit", "verify"])
    assert broken.exit_code == 1, broken.output
    assert "Traceback" not in broken.output
    assert f"broken at event {victim}" in broken.stderr
    assert "altered" in broken.stderr
    assert audit.verify(ws.engine).first_broken_seq == victim


def test_audit_log_is_append_only(ready: Cli) -> None:
    ws = ready.workspace()
    with pytest.raises(Exception, match="append-only"), ws.engine.begin() as conn:
        conn.execute(text("UPDATE manara_audit_events SET actor = 'mallory' WHERE seq = 1"))
    with pytest.raises(Exception, match="append-only"), ws.engine.begin() as conn:
        conn.execute(text("DELETE FROM manara_audit_events WHERE seq = 1"))
    assert ready.ok("audit", "verify").exit_code == 0


# --- the real console script -----------------------------------------------------------------------


def test_console_script_subprocess(settings: Settings, database_url: str | None, tmp_path: Path) -> None:
    home = settings.home
    env = {k: v for k, v in os.environ.items() if not k.startswith("MANARA_")}
    if database_url:
        env["MANARA_DATABASE_URL"] = database_url
    src = tmp_path / "villes.csv"
    src.write_text(VILLES_CSV, "utf-8")

    def manara(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "manara.cli.main", "--home", str(home), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    init = manara("init")
    assert init.returncode == 0, init.stderr
    assert len(TOKEN_RE.findall(init.stdout)) == 1

    ingest = manara("ingest", str(src), "--dataset", "villes", "--json")
    assert ingest.returncode == 0, ingest.stderr
    assert json.loads(ingest.stdout)["rows"] == 3

    query = manara("sql", "SELECT id, ville FROM villes ORDER BY id", "--output", "json")
    assert query.returncode == 0, query.stderr
    assert json.loads(query.stdout) == [
        {"id": 1, "ville": "الدار البيضاء"},
        {"id": 2, "ville": "Fès"},
        {"id": 3, "ville": "Rabat"},
    ]

    bad = manara("sql", "DROP TABLE villes")
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
    assert bad.stdout == ""
