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
