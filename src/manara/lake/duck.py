"""DuckDB connections made the same way everywhere: in memory, offline, bounded."""

from __future__ import annotations

import duckdb

OFFLINE = {
    # never fetch or load extensions at run time (json, parquet and icu are statically linked)
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}


def connect(*, threads: int = 2, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    config: dict[str, str | bool | int | float | list[str]] = {**OFFLINE, "threads": threads}
    if memory_limit:
        config["memory_limit"] = memory_limit
    return duckdb.connect(":memory:", config=config)
