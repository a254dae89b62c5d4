"""Shared fixtures: a fresh workspace per test, on SQLite or on PostgreSQL.

Set MANARA_TEST_DATABASE_URL to a PostgreSQL server URL (scripts/test.sh does it) to run every
test on a fresh PostgreSQL database of its own; otherwise each test gets a SQLite file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from manara.config import Settings
from manara.govern.principal import Principal
from manara.meta.db import dispose_all
from manara.workspace import Workspace, init_workspace

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
