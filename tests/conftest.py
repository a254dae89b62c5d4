"""Shared fixtures: a fresh workspace per test, on SQLite or on PostgreSQL.

Set MANARA_TEST_DATABASE_URL to a PostgreSQL server URL (scripts/test.sh does it) to run every
test on a fresh PostgreSQL database of its own; otherwise each test gets a SQLite file.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from manara.config import Settings
from manara.govern.principal import Principal
from manara.meta.db import dispose_all
from manara.workspace import Workspace, init_workspace

# the in-process CLI runner (tests/cli/cli_runner.py) is shared with the connector tests
sys.path.insert(0, str(Path(__file__).resolve().parent / "cli"))

PG_URL = os.environ.get("MANARA_TEST_DATABASE_URL")
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def database_url() -> Iterator[str | None]:
    if not PG_URL:
        yield None
        return
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(PG_URL)
    name = f"manara_test_{uuid.uuid4().hex[:12]}"
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.set(database=name).render_as_string(hide_password=False)
    dispose_all()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    # files pipelines in tests read folders under tmp_path (in a deployment: $MANARA_HOME/landing)
    overrides: dict[str, object] = {"home": tmp_path / "home", "file_roots": [tmp_path]}
    if database_url:
        overrides["database_url"] = database_url
    return Settings(**overrides)  # type: ignore[arg-type]


@pytest.fixture
def initialised(settings: Settings) -> Iterator[tuple[Workspace, str]]:
    result = init_workspace(settings)
    assert result.admin_token is not None
    yield result.workspace, result.admin_token
    result.workspace.close()


@pytest.fixture
def ws(initialised: tuple[Workspace, str]) -> Workspace:
    return initialised[0]


@pytest.fixture
def admin_token(initialised: tuple[Workspace, str]) -> str:
    return initialised[1]


@pytest.fixture
def operator(ws: Workspace) -> Principal:
    """The local operator (admin of the default tenant), as the CLI acts."""
    return ws.principal()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SHARED_DATA} is missing: CI must have ../shared/data beside the repository")
        pytest.skip(
            f"evaluation data not found at {SHARED_DATA} (clone the project with ../shared beside it)"
        )
    return SHARED_DATA


# --- real services (scripts/services.sh starts them on loopback; scripts/test.sh exports the URLs) ---


def _service(key: str, what: str) -> str:
    url = os.environ.get(f"MANARA_TEST_{key}_URL")
    if url:
        return url
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"{what} is not running (MANARA_TEST_{key}_URL unset): CI must run it (scripts/services.sh)"
        )
    pytest.skip(
        f"needs {what}: run `eval $(bash scripts/services.sh start | sed 's/^/export /')` "
        "first (installs it with apt-get as root), or `make test`"
    )


@pytest.fixture
def mqtt_url() -> str:
    """A Mosquitto broker: mqtt://127.0.0.1:PORT."""
    return _service("MQTT", "an MQTT broker (Mosquitto)")


@pytest.fixture
def mysql_url() -> str:
    """A MariaDB server: mysql+pymysql://manara:manara@127.0.0.1:PORT/manara_test."""
    return _service("MYSQL", "MariaDB")


@pytest.fixture
def nats_url() -> str:
    """A NATS server with JetStream: nats://127.0.0.1:PORT."""
    return _service("NATS", "a NATS server with JetStream")


@pytest.fixture
def opcua_url() -> str:
    """The asyncua test server simulating a controller (scripts/opcua_test_server.py)."""
    return _service("OPCUA", "the OPC UA test server (asyncua)")
