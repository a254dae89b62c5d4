"""`manara collection …`, `manara ingest … --collection`, `manara search`, `manara ask`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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
from manara.govern.identity import parse_classification, parse_role

collection_app = typer.Typer(help="Document collections: create, list, show.")


@collection_app.command("create")
def collection_create(
    name: str,
    description: str = typer.Option("", "--description"),
    read_role: str = typer.Option("viewer", "--read-role", help="lowest role that may search the collection"),
    classification: str = typer.Option(
        "internal",
        "--classification",
        help="default label of its documents: public | internal | confidential | secret",
    ),
    embedding_model: str | None = typer.Option(
        None, "--embedding-model", help="embedding backend (default: the workspace's embedding_model)"
    ),
    tenant: str | None = TenantOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a document collection."""
    from manara.search.collections import create_collection

    def go() -> None:
        ws = workspace()
        info = create_collection(
            ws, operator(ws, tenant), name, description=description, read_role=parse_role(read_role),
            default_classification=parse_classification(classification), embedding_model=embedding_model,
        )  # fmt: skip
        if as_json:
            print_json(info.as_dict())
        else:
            console.print(f"[green]✓[/] collection [bold]{info.name}[/] created ({info.embedding_model})")

    run(go)


@collection_app.command("list")
def collection_list(tenant: str | None = TenantOption, as_json: bool = JsonOption) -> None:
    """The collections this operator may read."""
    from manara.search.collections import list_collections

    def go() -> None:
        ws = workspace()
        rows = [c.as_dict() for c in list_collections(ws, operator(ws, tenant))]
        if as_json:
            print_json(rows)
        else:
            print_rows(rows, ["name", "read_role", "default_classification", "embedding_model", "created_at"])

    run(go)


@collection_app.command("show")
def collection_show(name: str, tenant: str | None = TenantOption, as_json: bool = JsonOption) -> None:
    """A collection's settings and its documents."""
    from manara.search.documents import collection_summary

    def go() -> None:
        ws = workspace()
        summary = collection_summary(ws, operator(ws, tenant), name)
        if as_json:
            print_json(summary)
            return
        console.print(
            f"[bold]{summary['name']}[/]: {summary['documents']} documents, {summary['chunks']} chunks "
            f"(read role {summary['read_role']}, default {summary['default_classification']}, "
            f"{summary['embedding_model']})"
        )
        print_rows(
            summary["items"], ["source", "title", "lang", "pages", "chunks", "classification", "ingested_at"]
        )

    run(go)


def ingest_documents(
    paths: list[Path], collection: str, classification: str | None, read_role: str | None,
    tenant: str | None, as_json: bool,
) -> None:  # fmt: skip
    from manara.search.ingest import ingest_paths, iter_files

    def go() -> None:
        ws = workspace()
        total = sum(1 for _ in iter_files(paths))
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=err_console, transient=True, disable=as_json or not err_console.is_terminal,
        ) as bar:  # fmt: skip
            files = bar.add_task("files", total=total)
            chunks = bar.add_task("chunks embedded", total=None)

            def progress(stage: str, n: int) -> None:
                bar.advance(files if stage == "files" else chunks, n)

            result = ingest_paths(
                ws, operator(ws, tenant), collection, paths,
                classification=parse_classification(classification) if classification else None,
                read_role=parse_role(read_role) if read_role else None, progress=progress,
            )  # fmt: skip
        out = result.as_dict()
        if as_json:
            print_json(out)
        else:
            for f in result.files:
                if f.status == "failed":
                    detail = (f.error or {}).get("detail", "")
                    name = f.source.rsplit("/", 1)[-1]
                    for prefix in (f.source + ": ", name + ": "):  # the detail often names the file already
                        detail = detail.removeprefix(prefix)
                    line = f"{f.source}: {detail}"
                    err_console.print(f"[red]✗[/] {escape(line)}", soft_wrap=True, highlight=False)
            console.print(
                f"[green]✓[/] {result.collection}: {out['added']} added, {out['replaced']} replaced, "
                f"{out['unchanged']} unchanged, {out['failed']} failed; {out['chunks']} chunks in {result.seconds:.1f} s"
            )
        if result.count("failed"):
            raise typer.Exit(1)

    run(go)


def _parse_filters(values: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            from manara.errors import BadRequest

            raise BadRequest(f"'{item}' is not FIELD=VALUE (e.g. lang=fr)")
        out.setdefault(name.strip(), []).extend(v.strip() for v in value.split(","))
    return out


def search(
    query: str,
    collection: str = typer.Option(..., "--collection", "-c"),
    k: int = typer.Option(5, "-k", help="number of results"),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid | lexical | dense"),
    filters: list[str] = typer.Option(
        [], "--filter", "-f", help="FIELD=VALUE[,VALUE] on lang, doc_id, source, classification"
    ),
    tenant: str | None = TenantOption,
    as_json: bool = JsonOption,
) -> None:
    """Search a collection in any language (Darija, Arabizi, MSA, French, Tamazight, English)."""
    from manara.search.retrieve import search as run_search

    def go() -> None:
        ws = workspace()
        result = run_search(ws, operator(ws, tenant), collection, query, k=k, mode=mode,
                            filters=_parse_filters(filters))  # fmt: skip
        if as_json:
            print_json(result.as_dict())
            return
        console.print(
            f"[dim]{len(result.hits)} results, query language {result.lang}"
            f"{' (Arabizi: also searched in Arabic script)' if result.arabizi else ''}, {result.took_ms:.0f} ms[/]"
        )
        for i, h in enumerate(result.hits, 1):
            where = f"p. {h.page}" if h.page else f"chars {h.char_start}-{h.char_end}"
            console.print(
                f"[bold]{i}. {escape(h.title or h.source or h.doc_id)}[/] [dim]({escape(h.source or '')}, {where}, {h.lang})[/]"
            )
            console.print("   " + _marked(h.snippet, h.highlights), soft_wrap=True)

    run(go)


def _marked(text: str, spans: list[tuple[int, int]]) -> str:
    out, pos = [], 0
    for s, e in sorted(spans):
        if s < pos:
            continue
        out.append(escape(text[pos:s]))
        out.append(f"[bold yellow]{escape(text[s:e])}[/]")
        pos = e
    out.append(escape(text[pos:]))
    return "".join(out).replace("\n", " ")


def ask(
    question: str,
    collection: str = typer.Option(..., "--collection", "-c"),
    filters: list[str] = typer.Option(
        [], "--filter", "-f", help="FIELD=VALUE[,VALUE] on lang, doc_id, source"
    ),
    threshold: float | None = typer.Option(None, "--threshold", help="override answer_threshold"),
    generate: bool | None = typer.Option(
        None, "--generate/--no-generate", help="use the configured chat server (default: when one is set)"
    ),
    tenant: str | None = TenantOption,
    as_json: bool = JsonOption,
) -> None:
    """Answer from the documents, quoting the supporting sentences with their sources; or say none was found."""
    from manara.search.answer import answer_question

    def go() -> None:
        ws = workspace()
        a = answer_question(ws, operator(ws, tenant), collection, question, threshold=threshold,
                            filters=_parse_filters(filters), generate=generate)  # fmt: skip
        if as_json:
            print_json(a.as_dict())
            return
        if not a.found:
            console.print(
                f"[yellow]{escape(a.message or 'no answer found')}[/] [dim](score {a.score:.3f} < {a.threshold:.3f})[/]"
            )
            return
        console.print(escape(a.answer or ""), soft_wrap=True)
        for c in a.citations:
            where = f"p. {c.page}, " if c.page else ""
            console.print(
                f"  [dim][{c.n}] {escape(c.title or c.source or c.doc_id)} ({escape(c.source or '')}, {where}chars {c.char_start}-{c.char_end})[/]"
            )
        if a.message:
            console.print(f"[dim]{escape(a.message)}[/]")

    run(go)
