"""`manara audit verify | list`: prove the audit log is intact; read it."""

from __future__ import annotations

from datetime import datetime

import typer

from manara.cli.common import JsonOption, console, err_console, print_json, print_rows, run, workspace
from manara.govern import audit
from manara.govern.principal import local_operator_name

audit_app = typer.Typer(help="The hash-chained audit log.")


@audit_app.command("verify")
def verify() -> None:
    """Recompute the whole chain; name the first broken event. Exit 1 when broken."""

    def go() -> None:
        engine = workspace().engine
        result = audit.verify(engine)
        audit.write(
            engine,
            audit.EventFields(
                local_operator_name(), "audit.verify", outcome="ok" if result.ok else "broken",
                detail={"checked": result.checked, "first_broken_seq": result.first_broken_seq},
            ),
        )  # fmt: skip
        if result.ok:
            console.print(f"[green]✓[/] audit chain intact: {result.checked:,} events verified")
            return
        err_console.print(
            f"[bold red]audit chain broken at event {result.first_broken_seq}:[/] {result.reason} "
            f"({result.checked:,} events before it verified)"
        )
        raise typer.Exit(1)

    run(go)


@audit_app.command("list")
def list_events(
    tenant: str | None = typer.Option(None, "--tenant"),
    actor: str | None = typer.Option(None, "--actor"),
    action: str | None = typer.Option(None, "--action"),
    outcome: str | None = typer.Option(None, "--outcome"),
    since: datetime | None = typer.Option(None, "--since"),
    until: datetime | None = typer.Option(None, "--until"),
    limit: int = typer.Option(50, "--limit"),
    as_json: bool = JsonOption,
) -> None:
    """Newest events first."""

    def go() -> None:
        engine = workspace().engine
        audit.write(engine, audit.EventFields(local_operator_name(), "audit.read", tenant=tenant))
        rows = audit.query(
            engine, tenant=tenant, actor=actor, action=action, outcome=outcome,
            since=since, until=until, limit=limit,
        )  # fmt: skip
        if as_json:
            print_json(rows)
        else:
            print_rows(rows, ["seq", "ts", "tenant", "actor", "action", "target", "outcome"])

    run(go)
