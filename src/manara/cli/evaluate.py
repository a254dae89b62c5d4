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
