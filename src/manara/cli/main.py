"""The `manara` command: workspace set-up, the server, and every verb group."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from manara import __version__
from manara.cli import audit as audit_cli
from manara.cli import data as data_cli
from manara.cli import evaluate as eval_cli
from manara.cli import identity as identity_cli
from manara.cli import pipeline as pipeline_cli
from manara.cli import search as search_cli
from manara.cli import text as text_cli
from manara.cli.common import _state, console, err_console, print_json, run, settings
from manara.workspace import Workspace, init_workspace

app = typer.Typer(
    help="Manara: a sovereign, offline data & AI hub. Workspace: $MANARA_HOME (default ./manara-data).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Settings.")
app.add_typer(config_app, name="config")
app.add_typer(identity_cli.tenant_app, name="tenant")
app.add_typer(identity_cli.user_app, name="user")
app.add_typer(identity_cli.token_app, name="token")
app.add_typer(data_cli.dataset_app, name="dataset")
app.add_typer(audit_cli.audit_app, name="audit")
app.add_typer(text_cli.text_app, name="text")
app.add_typer(eval_cli.eval_app, name="eval")
app.add_typer(search_cli.collection_app, name="collection")
app.command("search")(search_cli.search)
app.command("ask")(search_cli.ask)
app.command("ingest")(data_cli.ingest)
app.command("datasets")(data_cli.datasets)
app.command("sql")(data_cli.sql)
app.add_typer(pipeline_cli.pipeline_app, name="pipeline")
app.command("connectors")(pipeline_cli.connectors)
app.add_typer(pipeline_cli.quarantine_app, name="quarantine")

DEMO_TOKEN_FILE = "demo-token"


@app.callback()
def root(
    home: Path | None = typer.Option(None, "--home", help="workspace folder (overrides MANARA_HOME)"),
    version: bool = typer.Option(False, "--version", help="print the version and exit"),
) -> None:
    if version:
        console.print(f"manara {__version__}")
        raise typer.Exit()
    _state["home"] = home


@app.command("init")
def init(
    tenant: str | None = typer.Option(None, "--tenant", help="first tenant (default: default_tenant)"),
) -> None:
    """Create the workspace: manara.toml, metadata database, warehouse, first tenant and admin token."""

    def go() -> None:
        s = settings()
        result = init_workspace(s, tenant=tenant, actor="cli:init")
        if not result.created:
            console.print(f"workspace at {s.home} already initialised; nothing to do")
            return
        console.print(f"[green]✓[/] workspace created at {s.home}")
        console.print("first admin token (shown once, store it now):")
        console.print(result.admin_token, highlight=False, soft_wrap=True)

    run(go)


@config_app.command("show")
def config_show(as_json: bool = typer.Option(False, "--json")) -> None:
    """Print the effective settings (environment over manara.toml over defaults), secrets hidden."""

    def go() -> None:
        values = settings().redacted()
        if as_json:
            print_json(values)
        else:
            for k, v in values.items():
                console.print(f"[bold]{k:>16}[/] = {v}", highlight=False)

    run(go)


def _write_secret(path: Path, secret: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    os.chmod(path, 0o600)


def _demo_token(ws: Workspace, fresh: str | None) -> str:
    """The demo admin token: the one just created, else the one kept in $MANARA_HOME/demo-token."""
    from datetime import timedelta

    from manara.errors import InvalidToken
    from manara.govern import identity
    from manara.meta.db import session_scope
    from manara.meta.models import Role

    path = ws.settings.home / DEMO_TOKEN_FILE
    if fresh:
        _write_secret(path, fresh)
        return fresh
    with session_scope(ws.engine) as s:
        if path.is_file():
            kept = path.read_text().strip()
            try:
                identity.authenticate(s, kept)
                return kept
            except InvalidToken:  # revoked or expired: issue a new one
                pass
        t = identity.get_tenant(s, ws.settings.default_tenant)
        issued = identity.create_token(
            s, t, role=Role.admin, name="demo token", actor="cli:up", expires_in=timedelta(days=30)
        )
    _write_secret(path, issued.secret)
    return issued.secret


@app.command("up")
def up(
    demo: bool = typer.Option(False, "--demo", help="create the workspace if needed and load demo datasets"),
    host: str | None = typer.Option(None, "--host", help="bind address (default: MANARA_HOST or 127.0.0.1)"),
    port: int | None = typer.Option(None, "--port", help="port (default: MANARA_PORT or 8000)"),
) -> None:
    """Start the hub: HTTP server (API under /api/v1, docs at /api/v1/docs), pipeline scheduler, event delivery."""
    import uvicorn

    from manara.api.app import create_app

    def prepare() -> Workspace:
        s = settings()
        if demo:
            result = init_workspace(s, actor="cli:up")
            ws = result.workspace
            token = _demo_token(ws, result.admin_token)
            from manara.demo.load import load_demo

            loaded = load_demo(
                ws,
                ws.principal(actor="cli:up"),
                on_result=lambda r: err_console.print(
                    f"  demo dataset [bold]{r.dataset}[/]: {r.rows:,} rows"
                ),
            )
            if not loaded:
                err_console.print("  demo datasets already loaded")
            from manara.demo.load import DEMO_COLLECTION, load_demo_collection

            added = load_demo_collection(ws, ws.principal(actor="cli:up"))
            err_console.print(
                f"  demo collection [bold]{DEMO_COLLECTION}[/]: {added} documents added"
                if added
                else f"  demo collection {DEMO_COLLECTION} already loaded"
            )
            console.print(f"\nManara {__version__} — workspace {s.home}")
            console.print(f"  URL:        http://{host or s.host}:{port or s.port}/")
            console.print(f"  API docs:   http://{host or s.host}:{port or s.port}/api/v1/docs")
            console.print(f"  admin token (also in {s.home / DEMO_TOKEN_FILE}):")
            console.print(f"  {token}\n", highlight=False, soft_wrap=True)
            return ws
        return Workspace.open(s)

    ws = run(prepare)
    s = ws.settings
    import functools

    from manara.connect.bus import Dispatcher
    from manara.connect.scheduler import Scheduler
    from manara.govern.egress import check_egress

    scheduler = Scheduler(ws)  # runs the pipelines that declare a cron `schedule`
    dispatcher = Dispatcher(  # delivers events to webhooks (and NATS with bus_url), to allowed hosts only
        ws,
        check_egress=functools.partial(
            check_egress, ws, actor="bus", tenant=None, purpose="event bus (webhook or NATS)"
        ),
        bus_url=s.bus_url,
    )
    scheduler.start()
    dispatcher.start()
    try:
        uvicorn.run(create_app(s, ws), host=host or s.host, port=port or s.port, log_level=s.log_level)
    finally:
        dispatcher.stop()
        scheduler.stop()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
