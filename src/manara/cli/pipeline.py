"""`manara connectors` and `manara pipeline apply|run|list|status|runs|approve`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from manara.cli.common import (
    JsonOption,
    TenantOption,
    console,
    operator,
    print_json,
    print_rows,
    run,
    workspace,
)

pipeline_app = typer.Typer(help="Declarative pipelines: apply a YAML file, run, list, status, runs.")


def connectors(as_json: bool = JsonOption) -> None:
    """The installed connectors (Manara's and third parties', through entry points) and their options."""
    from manara.connect.registry import discover

    def go() -> None:
        found, broken = discover()
        described = [c.describe() for c in found.values()]
        if as_json:
            print_json({"connectors": described, "broken": [b.__dict__ for b in broken]})
            return
        for c in described:
            console.print(f"[bold]{c['name']}[/] ({c['kind']}): {escape(c['summary'])}")
            for o in c["options"]:
                need = "required" if o["required"] else f"default {o['default']!r}"
                console.print(f"  {o['name']} [dim]{o['type']}, {need}[/] {escape(o['description'])}")
        for b in broken:
            console.print(f"[red]✗ {b.name}[/] ({escape(b.target)}): {escape(b.error)}")

    run(go)


@pipeline_app.command("apply")
def pipeline_apply(file: Path, tenant: str | None = TenantOption, as_json: bool = JsonOption) -> None:
    """Create or replace a pipeline from a YAML file (a paused pipeline is resumed by a new mapping)."""
    from manara.connect.pipelines import apply_pipeline, parse_spec
    from manara.errors import BadRequest

    def go() -> None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise BadRequest(f"{file}: cannot read it: {err}") from None
        spec = parse_spec(text, file.name)
        ws = workspace()
        info, created = apply_pipeline(ws, operator(ws, tenant), spec)
        if as_json:
            print_json(info.as_dict() | {"created": created})
        else:
            console.print(f"[green]✓[/] pipeline [bold]{info.name}[/] {'created' if created else 'updated'}")

    run(go)


@pipeline_app.command("run")
def pipeline_run(name: str, tenant: str | None = TenantOption, as_json: bool = JsonOption) -> None:
    """Run a pipeline now, from where its last commit left off."""
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    from manara.connect.pipelines import run_pipeline

    def go() -> None:
        ws = workspace()
        with Progress(TextColumn("{task.description}"), TextColumn("{task.completed:,} rows"),
                      TimeElapsedColumn(), transient=True, disable=as_json) as bar:  # fmt: skip
            task = bar.add_task(f"pipeline {name}", total=None)
            result = run_pipeline(
                ws, operator(ws, tenant), name, progress=lambda n: bar.update(task, completed=n)
            )
        if as_json:
            print_json(result.as_dict())
        elif result.status == "succeeded":
            console.print(
                f"[green]✓[/] {name}: {result.rows_in:,} rows read, {result.rows_loaded:,} loaded, "
                f"{result.rows_quarantined:,} quarantined, {result.commits} commits in {result.seconds:.1f} s"
            )
        else:
            console.print(f"[red]✗[/] {name} {result.status}: {escape(result.error or '')}")
        if result.status != "succeeded":
            raise typer.Exit(1)

    run(go)


@pipeline_app.command("list")
def pipeline_list(tenant: str | None = TenantOption, as_json: bool = JsonOption) -> None:
    """The tenant's pipelines and their last run."""
    from manara.connect.pipelines import list_pipelines

    def go() -> None:
        ws = workspace()
        rows = list_pipelines(ws, operator(ws, tenant))
        if as_json:
            print_json(rows)
        else:
            flat = [r | {"last": (r["last_run"] or {}).get("status")} for r in rows]
            print_rows(flat, ["name", "source", "dataset", "schedule", "paused", "last"])

    run(go)


@pipeline_app.command("status")
def pipeline_status_cmd(name: str, tenant: str | None = TenantOption, as_json: bool = JsonOption) -> None:
    """A pipeline's declaration, pause, last run and the cursor committed in the lake."""
    from manara.connect.pipelines import pipeline_status

    def go() -> None:
        ws = workspace()
        status = pipeline_status(ws, operator(ws, tenant), name)
        if as_json:
            print_json(status)
            return
        for key, value in status.items():
            if key != "sinks":
                console.print(f"[bold]{key}[/]: {escape(str(value))}")
        for sink in status["sinks"]:
            where = (
                "not run yet"
                if sink["delivered_seq"] is None
                else (
                    f"group {sink['delivered_seq']}, {sink['behind']} behind, {sink['rows_delivered']} rows"
                )
            )
            console.print(f"[bold]sink {escape(sink['name'])}[/] ({sink['type']}): {where}")
            if sink.get("error"):
                console.print(f"  [red]{escape(sink['error'])}[/]")

    run(go)


@pipeline_app.command("approve")
def pipeline_approve_cmd(
    name: str,
    column: str | None = typer.Option(None, "--column", help="default: the column the pause names"),
    to: str | None = typer.Option(None, "--to", help="double, string, timestamp, decimal(P,S)…"),
    tenant: str | None = TenantOption,
    as_json: bool = JsonOption,
) -> None:
    """Widen the dataset column that paused the pipeline, keeping every stored row, and resume it."""
    from manara.connect.pipelines import approve_pipeline

    def go() -> None:
        ws = workspace()
        result = approve_pipeline(ws, operator(ws, tenant), name, column=column, to=to)
        if as_json:
            print_json(result)
            return
        how = "rewrote" if result["rewritten"] else "promoted in place,"
        console.print(
            f"[green]✓[/] {escape(result['column'])}: {result['from_type']} → {result['to_type']} "
            f"({how} {result['rows']:,} rows kept); pipeline {name} resumes at its next run"
        )

    run(go)


@pipeline_app.command("runs")
def pipeline_runs_cmd(
    name: str,
    limit: int = typer.Option(20, "--limit"),
    tenant: str | None = TenantOption,
    as_json: bool = JsonOption,
) -> None:
    """A pipeline's run history, newest first."""
    from manara.connect.pipelines import pipeline_runs

    def go() -> None:
        ws = workspace()
        rows = pipeline_runs(ws, operator(ws, tenant), name, limit)
        if as_json:
            print_json(rows)
        else:
            print_rows(rows, ["id", "status", "started_at", "seconds", "rows_in", "rows_loaded",
                              "rows_quarantined", "commits", "error"])  # fmt: skip

    run(go)


quarantine_app = typer.Typer(help="Records pipelines could not load: list, show, replay.")


@quarantine_app.command("list")
def quarantine_list(tenant: str | None = TenantOption, as_json: bool = JsonOption) -> None:
    """Datasets with quarantined records, per pipeline."""
    from manara.connect.quarantine import list_quarantines

    def go() -> None:
        ws = workspace()
        rows = list_quarantines(ws, operator(ws, tenant))
        if as_json:
            print_json(rows)
        else:
            print_rows(rows, ["dataset", "pipeline", "records", "latest", "latest_reason"])

    run(go)


@quarantine_app.command("show")
def quarantine_show(
    dataset: str,
    pipeline: str | None = typer.Option(None, "--pipeline"),
    limit: int = typer.Option(50, "--limit"),
    tenant: str | None = TenantOption,
    as_json: bool = JsonOption,
) -> None:
    """A dataset's quarantined records: reason, source position and raw payload."""
    from manara.connect.quarantine import show_quarantine

    def go() -> None:
        ws = workspace()
        rows = show_quarantine(ws, operator(ws, tenant), dataset, pipeline=pipeline, limit=limit)
        if as_json:
            print_json(rows)
        else:
            print_rows(rows, ["quarantined_at", "pipeline", "position", "reason", "payload"])

    run(go)


@quarantine_app.command("replay")
def quarantine_replay(
    dataset: str,
    pipeline: str = typer.Option(..., "--pipeline", help="the pipeline whose records to replay"),
    tenant: str | None = TenantOption,
    as_json: bool = JsonOption,
) -> None:
    """Run quarantined records through the pipeline's current mapping (after `pipeline apply` of a fix)."""
    from manara.connect.quarantine import replay_quarantine

    def go() -> None:
        ws = workspace()
        result = replay_quarantine(ws, operator(ws, tenant), dataset, pipeline)
        if as_json:
            print_json(result.as_dict())
        else:
            console.print(
                f"{'[green]✓[/]' if result.status == 'succeeded' else '[red]✗[/]'} replay {pipeline}: "
                f"{result.rows_in:,} records, {result.rows_loaded:,} loaded, {result.rows_quarantined:,} still "
                f"quarantined {escape(result.error or '')}"
            )
        if result.status != "succeeded":
            raise typer.Exit(1)

    run(go)
