"""What every CLI module shares: consoles, the workspace, rendering, and one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from manara.config import Settings, load_settings
from manara.errors import ManaraError
from manara.govern.principal import Principal
from manara.workspace import Workspace

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")

_state: dict[str, Any] = {"home": None}


def settings() -> Settings:
    overrides = {"home": _state["home"]} if _state["home"] else {}
    return load_settings(**overrides)


def workspace() -> Workspace:
    return Workspace.open(settings())


def operator(ws: Workspace, tenant: str | None) -> Principal:
    return ws.principal(tenant)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Print a ManaraError as one readable line and exit 1; anything else is a bug: show it."""
    try:
        yield
    except ManaraError as e:
        err_console.print(f"[bold red]error:[/] {e.detail}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def run(fn: Callable[[], T]) -> T:
    with friendly_errors():
        return fn()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def print_rows(
    rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, title: str | None = None
) -> None:
    if not rows:
        console.print("[dim](none)[/]")
        return
    cols = list(columns or rows[0].keys())
    table = Table(title=title, show_lines=False)
    for c in cols:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*[_cell(r.get(c)) for c in cols])
    console.print(table)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


TenantOption = typer.Option(None, "--tenant", "-t", help="tenant (default: the workspace's default_tenant)")
JsonOption = typer.Option(False, "--json", help="print JSON instead of a table")
