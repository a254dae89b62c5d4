"""A workspace: settings, the metadata database and the Iceberg catalog, opened together.

`init_workspace` creates one (folder, `manara.toml`, migrated database, warehouse, first tenant
and admin); `Workspace.open` opens an existing one. The CLI, the API and the tests all go
through this object, so they share one code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from pathlib import Path

from pyiceberg.catalog.sql import SqlCatalog
from sqlalchemy import Engine, select

from manara.config import CONFIG_FILE, Settings
from manara.errors import ManaraError
from manara.govern import identity
from manara.govern.principal import Principal
from manara.meta import migrate
from manara.meta.db import get_engine, session_scope
from manara.meta.models import Role, Tenant

_TOML_TEMPLATE = """# Manara workspace settings. Environment variables MANARA_<NAME> override these.
# See `manara config show` for every setting and its effective value.
default_tenant = "{tenant}"
port = {port}
sql_row_limit = 10000
sql_timeout_s = 30.0
"""


class WorkspaceMissing(ManaraError):
    type, title, status = "workspace-missing", "Workspace not initialised", 503


@dataclass
class Workspace:
    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        return get_engine(self.settings.db_url)

    @cached_property
    def catalog(self) -> SqlCatalog:
        from manara.lake.catalog import open_catalog

        return open_catalog(self.settings)

    @classmethod
    def open(cls, settings: Settings) -> Workspace:
        ws = cls(settings)
        sqlite_file = (
            settings.db_url.removeprefix("sqlite:///") if settings.db_url.startswith("sqlite:///") else None
        )
        if (sqlite_file and not Path(sqlite_file).is_file()) or migrate.current_revision(ws.engine) is None:
            raise WorkspaceMissing(
                f"no Manara workspace at {settings.home} (database {settings.redacted()['database_url']}); "
                "run 'manara init' first"
            )
        migrate.upgrade(ws.engine)  # no-op when current; applies new migrations after an upgrade
        return ws

    def close(self) -> None:
        """Release database connections (the catalog's engine too)."""
        if "catalog" in self.__dict__:
            self.catalog.engine.dispose()
        self.engine.dispose()

    def principal(self, tenant: str | None = None, actor: str | None = None) -> Principal:
        """The local operator, acting as admin of `tenant` (the CLI runs with the workspace's files)."""
        from manara.govern.principal import local_operator_name

        slug = tenant or self.settings.default_tenant
        with session_scope(self.engine) as s:
            t = identity.get_tenant(s, slug)
            return Principal(
                tenant=t.slug, tenant_id=t.id, actor=actor or local_operator_name(), role=Role.admin
            )


@dataclass
class InitResult:
    workspace: Workspace
    created: bool
    admin_token: str | None


def init_workspace(settings: Settings, *, tenant: str | None = None, actor: str = "system") -> InitResult:
    """Create the workspace if needed. The first admin token is returned (and so shown) only once."""
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    (home / "tmp").mkdir(exist_ok=True)
    slug = tenant or settings.default_tenant
    toml = home / CONFIG_FILE
    if not toml.exists():
        toml.write_text(_TOML_TEMPLATE.format(tenant=slug, port=settings.port), "utf-8")
    settings.warehouse_path.mkdir(parents=True, exist_ok=True)
    ws = Workspace(settings)
    migrate.upgrade(ws.engine)
    _ = ws.catalog  # creates pyiceberg's catalog tables
    with session_scope(ws.engine) as s:
        if s.scalar(select(Tenant).where(Tenant.slug == slug)) is not None:
            return InitResult(ws, created=False, admin_token=None)
        t = identity.create_tenant(s, slug, slug, actor)
        admin = identity.create_user(s, t, "admin", None, Role.admin, actor)
        issued = identity.create_token(
            s,
            t,
            role=Role.admin,
            name="first admin token",
            actor=actor,
            user=admin,
            expires_in=timedelta(days=365),
        )
    from manara.lake.catalog import ensure_namespace

    ensure_namespace(ws.catalog, slug)
    return InitResult(ws, created=True, admin_token=issued.secret)


def workspace_exists(home: Path) -> bool:
    return (home / CONFIG_FILE).exists()
