"""Convert the public evaluation data in ``../shared/data`` to Manara's retrieval-evaluation format.

Usage, from the repository root::

    .venv/bin/python bench/datasets/convert.py --shared ../shared/data --out /tmp/evalsets
    .venv/bin/python bench/datasets/convert.py --only arcd,piaf --max-queries 200

Each set is written to ``<out>/<set>/corpus.jsonl`` and ``<out>/<set>/queries.jsonl`` (the input of
``manara eval search --corpus ... --queries ...``). One line per set is printed: its name, corpus
documents, queries and mean relevant documents per query. When the shared folder or a set's files
are missing, a one-line message goes to stderr and the exit status is 2 (the other sets still
convert).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

if __package__ in (None, ""):  # run as `python bench/datasets/convert.py`
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(_here)]
    sys.path.insert(0, str(REPO_ROOT))

from bench.datasets import arcd, piaf, seed, service_public, xquad  # noqa: E402
from bench.datasets.common import Converted, SourceMissing  # noqa: E402

DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "bench" / "out" / "evalsets"


@dataclass(frozen=True)
class EvalSet:
    """One convertible set: its converter and its default ``--max-queries``."""

    name: str
    convert: Callable[[Path, Path, int, int], Converted]
    default_max_queries: int = 0


SETS: dict[str, EvalSet] = {
    s.name: s
    for s in (
        EvalSet(arcd.NAME, arcd.convert),
        EvalSet(service_public.NAME, service_public.convert),
        EvalSet(piaf.NAME, piaf.convert),
        EvalSet(xquad.NAME, xquad.convert),
        EvalSet(seed.NAMES["ary"], seed.convert_ary, seed.DEFAULT_MAX_QUERIES),
        EvalSet(seed.NAMES["zgh"], seed.convert_zgh, seed.DEFAULT_MAX_QUERIES),
    )
}


def _names(value: str) -> list[str]:
    """Parse ``--only``: comma-separated set names, each known."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in SETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown set(s) {unknown or value!r}; choose from {', '.join(SETS)}"
        )
    return names


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        description="Convert ../shared/data evaluation sets to Manara's corpus/queries JSON Lines."
    )
    parser.add_argument(
        "--shared", type=Path, default=DEFAULT_SHARED, help=f"shared data folder (default {DEFAULT_SHARED})"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--only", type=_names, default=list(SETS), help=f"comma-separated subset of: {','.join(SETS)}"
    )
    parser.add_argument(
        "--max-queries",
        type=_non_negative,
        default=None,
        help="keep a deterministic sample of N queries per set; 0 = all "
        f"(default: all, except {seed.DEFAULT_MAX_QUERIES} for the seed-* sets)",
    )
    parser.add_argument(
        "--max-corpus",
        type=_non_negative,
        default=0,
        help="keep at most N corpus documents per set, always keeping the relevant ones; 0 = all (default)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the converters; return 0, or 2 when the shared folder or some set's files are missing."""
    args = build_parser().parse_args(argv)
    shared: Path = args.shared
    if not shared.is_dir():
        print(
            f"convert: shared data folder not found: {shared} (clone the project with ../shared beside it)",
            file=sys.stderr,
        )
        return 2
    status = 0
    for name in args.only:
        spec = SETS[name]
        max_queries = spec.default_max_queries if args.max_queries is None else args.max_queries
        try:
            result = spec.convert(shared, args.out, max_queries, args.max_corpus)
        except SourceMissing as exc:
            print(f"convert: {name}: skipped, {exc}", file=sys.stderr)
            status = 2
            continue
        print(result.summary(), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
