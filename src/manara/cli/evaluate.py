"""`manara eval …`: measure Manara's language tools on evaluation data, against baselines in the same run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from manara.cli.common import print_rows, run

eval_app = typer.Typer(help="Evaluations: quality figures against baselines measured in the same run.")


@eval_app.command("translit")
def translit(
    doda: Path = typer.Option(
        Path("../shared/data/doda"), "--doda", help="the DODa folder (CC BY-NC: evaluation only)"
    ),
    as_json: bool = typer.Option(False, "--json", help="end the output with one JSON line of the results"),
) -> None:
    """Arabizi <-> Arabic script: CER and word accuracy of Manara's rules, a naive digit map and identity."""
    from manara.text.evaluation import translit_report

    def go() -> None:
        report = translit_report(doda)
        print_rows(report["results"])  # type: ignore[arg-type]
        if as_json:
            sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")

    run(go)


@eval_app.command("langid")
def langid(
    shared: Path = typer.Option(Path("../shared/data"), "--shared", help="the shared evaluation data folder"),
    as_json: bool = typer.Option(False, "--json", help="end the output with one JSON line of the results"),
) -> None:
    """Language identification accuracy per set against a script-only baseline, and span accuracy."""
    from manara.errors import NotFound
    from manara.text.langid_eval import report

    def go() -> None:
        if not (shared / "seed").is_dir():
            raise NotFound(f"no evaluation data at {shared} (it needs seed/, arcd/, piaf/ and doda/)")
        result = report(shared)
        print_rows(result["sets"], title=f"accuracy (pooled {result['pooled_accuracy']})")
        print_rows(result["spans"], title="code-switched spans")
        if as_json:
            sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")

    run(go)


GOLD = Path(__file__).resolve().parents[1] / "search" / "gold"


@eval_app.command("search")
def search(
    corpus: Path | None = typer.Option(
        None, "--corpus", help='JSON Lines: {"id", "text", "title"?, "lang"?}'
    ),
    queries: Path | None = typer.Option(
        None, "--queries", help='JSON Lines: {"id", "query", "relevant": [corpus ids], "lang"?}'
    ),
    gold: bool = typer.Option(False, "--gold", help="use Manara's own gold set (Moroccan procedures)"),
    by_lang: bool = typer.Option(
        True, "--by-lang/--no-by-lang", help="also print a table per query language"
    ),
    as_json: bool = typer.Option(False, "--json", help="end the output with one JSON line of the results"),
) -> None:
    """Retrieval quality (recall@1/5/10, MRR@10, nDCG@10): Manara hybrid, lexical, dense, and plain BM25."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from manara.cli.common import err_console
    from manara.errors import BadRequest
    from manara.search.evaluate import SYSTEMS, evaluate_search

    def go() -> None:
        if gold:
            corpus_path, queries_path = GOLD / "corpus.jsonl", GOLD / "queries.jsonl"
        elif corpus is None or queries is None:
            raise BadRequest("give --corpus and --queries, or --gold")
        else:
            corpus_path, queries_path = corpus, queries
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            console=err_console, transient=True, disable=not err_console.is_terminal,
        ) as bar:  # fmt: skip
            tasks: dict[str, object] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done)  # type: ignore[arg-type]

            report = evaluate_search(corpus_path, queries_path, progress=progress)
        corpus_info = report.pop("_corpus")
        metrics = ["recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"]
        rows = [{"system": s, **{m: report[s][m] for m in metrics}} for s in SYSTEMS]
        print_rows(
            rows,
            title=f"{corpus_info['queries']} queries over {corpus_info['documents']} documents "
            f"({corpus_info['chunks']} chunks)",
        )
        langs = report[SYSTEMS[0]]["by_lang"]
        if by_lang and len(langs) > 1:
            lang_rows = [
                {"lang": lang, "queries": langs[lang]["queries"],
                 **{f"{s} r@5": report[s]["by_lang"][lang]["recall@5"] for s in SYSTEMS},
                 **{f"{s} mrr": report[s]["by_lang"][lang]["mrr@10"] for s in SYSTEMS}}
                for lang in langs
            ]  # fmt: skip
            print_rows(lang_rows, title="per query language")
            pairs = report[SYSTEMS[0]]["by_source_lang"]
            if len(pairs) > len(langs):
                pair_rows = [
                    {"question → sources": pair, "queries": pairs[pair]["queries"],
                     **{f"{s} r@5": report[s]["by_source_lang"][pair]["recall@5"] for s in SYSTEMS}}
                    for pair in pairs
                ]  # fmt: skip
                print_rows(pair_rows, title="per question language and language of its sources")
        if as_json:
            sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")

    run(go)
