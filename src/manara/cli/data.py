"""`manara ingest | datasets | dataset … | sql`: the lake from the command line."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from manara.cli.common import (
    JsonOption,
    TenantOption,
    console,
    err_console,
    operator,
    print_json,
    print_rows,
    run,
    workspace,
)
from manara.lake import datasets as catalog_views
from manara.lake.ingest import ingest_file, parse_type_specs
from manara.lake.sql import run_query

dataset_app = typer.Typer(help="One dataset: its description, schema and history.")


def ingest(
    paths: list[Path] = typer.Argument(
        ...,
        exists=True,
        readable=True,
        help="with --dataset: one CSV, JSON/NDJSON, Parquet or XLSX file; with --collection: documents "
        "(PDF, DOCX, HTML, TXT, Markdown, images) and folders",
    ),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="dataset name (created if absent)"),
    collection: str | None = typer.Option(None, "--collection", "-c", help="document collection to add to"),
    classification: str | None = typer.Option(
        None,
        "--classification",
        help="documents: public | internal | confidential | secret (default: the collection's)",
    ),
    read_role: str | None = typer.Option(
        None, "--read-role", help="documents: lowest role that may read them (default: the collection's)"
    ),
    mode: str = typer.Option("append", "--mode", help="append | overwrite | upsert"),
    key: str | None = typer.Option(None, "--key", help="column identifying a row (upsert)"),
    format: str | None = typer.Option(
        None, "--format", help="csv | json | parquet | xlsx (default: detected)"
    ),
    encoding: str | None = typer.Option(None, "--encoding", help="text encoding (default: detected)"),
    delimiter: str | None = typer.Option(None, "--delimiter", help="CSV delimiter (default: detected)"),
    types: list[str] = typer.Option(
        [],
        "--type",
        help="fix a CSV column's type, e.g. --type ice=string (string, int, long, double, boolean, "
        "date, timestamp, timestamptz); repeatable",
    ),
    description: str | None = typer.Option(None, "--description", help="set the dataset's description"),
    tenant: str | None = TenantOption,
    as_json: bool = JsonOption,
) -> None:
    """Load a file into a dataset (one Iceberg commit: all rows land, or none), or documents into a collection."""
    if (dataset is None) == (collection is None):
        err_console.print(
            "[bold red]error:[/] give either --dataset (a data file) or --collection (documents)"
        )
        raise typer.Exit(2)
    if collection is not None:
        from manara.cli.search import ingest_documents

        ingest_documents(paths, collection, classification, read_role, tenant, as_json)
        return
    if len(paths) != 1 or paths[0].is_dir():
        err_console.print("[bold red]error:[/] --dataset takes exactly one file")
        raise typer.Exit(2)
    path = paths[0]
    assert dataset is not None

    def go() -> None:
        ws = workspace()
        principal = operator(ws, tenant)
        with Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            TextColumn("{task.completed:,.0f} rows"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=as_json or not err_console.is_terminal,
        ) as bar:
            task = bar.add_task(f"ingesting {path.name}", total=None)
            result = ingest_file(
                ws, principal, path, dataset,
                mode=mode, key=key, format=format, encoding=encoding, delimiter=delimiter,
                types=parse_type_specs(types),
                description=description, progress=lambda rows: bar.update(task, completed=rows),
            )  # fmt: skip
        if as_json:
            print_json(result.as_dict())
            return
        what = "created" if result.created else result.mode
        console.print(
            f"[green]✓[/] {result.rows:,} rows → [bold]{result.dataset}[/] ({what}, snapshot {result.snapshot_id}, "
            f"{result.format}{', ' + result.encoding if result.encoding else ''}, {result.seconds:.2f} s)"
        )
        if result.columns_added:
            console.print(f"  new columns: {', '.join(result.columns_added)}")
        if result.columns_promoted:
            console.print(f"  widened columns: {', '.join(result.columns_promoted)}")
        for note in result.notes:
            console.print(f"  {note}")

    run(go)


def datasets(tenant: str | None = TenantOption, as_json: bool = JsonOption) -> None:
    """List the tenant's datasets."""

    def go() -> None:
        ws = workspace()
        rows = catalog_views.list_datasets(ws, operator(ws, tenant))
        if as_json:
            print_json(rows)
        else:
            print_rows(rows, ["name", "rows", "size_bytes", "updated_at", "owner", "description"])

    run(go)


@dataset_app.command("show")
def dataset_show(name: str, tenant: str | None = TenantOption, as_json: bool = JsonOption) -> None:
    """Schema, rows, size, snapshots, source, description and owner of a dataset."""

    def go() -> None:
        ws = workspace()
        info = catalog_views.show_dataset(ws, operator(ws, tenant), name)
        if as_json:
            print_json(info)
            return
        for k in ("name", "description", "owner", "source", "rows", "size_bytes", "files", "snapshots",
                  "snapshot_id", "created_at", "updated_at", "location"):  # fmt: skip
            console.print(
                f"[bold]{k:>12}[/]  {info.get(k) if info.get(k) is not None else ''}", highlight=False
            )
        print_rows(info["columns"], ["id", "name", "type", "required"], title="columns")

    run(go)


@dataset_app.command("history")
def dataset_history(
    name: str,
    show_all: bool = typer.Option(
        False, "--all", help="also the inner steps of multi-step commits (upserts)"
    ),
    tenant: str | None = TenantOption,
    as_json: bool = JsonOption,
) -> None:
    """Snapshots of a dataset, newest first (use their ids with --as-of)."""

    def go() -> None:
        ws = workspace()
        rows = catalog_views.dataset_history(ws, operator(ws, tenant), name)
        if not show_all:
            rows = [r for r in rows if not r["intermediate"]]
        if as_json:
            print_json(rows)
        else:
            print_rows(rows, ["snapshot_id", "committed_at", "operation", "added_rows", "total_rows", "source", "actor",
                              "current"])  # fmt: skip

    run(go)


@dataset_app.command("describe")
def dataset_describe(
    name: str,
    description: str | None = typer.Option(None, "--description"),
    owner: str | None = typer.Option(None, "--owner"),
    tenant: str | None = TenantOption,
) -> None:
    """Set a dataset's description and owner."""

    def go() -> None:
        ws = workspace()
        catalog_views.describe_dataset(ws, operator(ws, tenant), name, description=description, owner=owner)
        console.print(f"dataset [bold]{name}[/] described")

    run(go)


def sql(
    query: str = typer.Argument(..., help="one SELECT (or WITH … SELECT) over the tenant's datasets"),
    as_of: str | None = typer.Option(None, "--as-of", help="snapshot id or ISO timestamp (time travel)"),
    limit: int | None = typer.Option(None, "--limit", help="most rows to return"),
    output: str = typer.Option("table", "--output", "-o", help="table | csv | json"),
    tenant: str | None = TenantOption,
) -> None:
    """Run a read-only SQL query."""

    def go() -> None:
        ws = workspace()
        result = run_query(ws, operator(ws, tenant), query, as_of=as_of, limit=limit)
        rows = result.table.to_pylist()
        if output == "json":
            print_json(rows)
        elif output == "csv":
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=result.table.column_names)
            writer.writeheader()
            writer.writerows(rows)
            sys.stdout.write(buf.getvalue())
        else:
            print_rows(rows, result.table.column_names)
            err_console.print(f"[dim]{len(rows):,} rows in {result.seconds:.3f} s[/]")
        if result.truncated:
            err_console.print(
                f"[yellow]result cut at {result.row_limit:,} rows[/] (--limit, or sql_row_limit)"
            )

    run(go)
