"""`manara text normalize|translit|langid`: the Moroccan language toolkit on the command line.

These commands read only their argument (or standard input with '-'): no workspace is needed.
"""

from __future__ import annotations

import sys

import typer

from manara.cli.common import JsonOption, console, print_json, print_rows, run
from manara.errors import BadRequest

text_app = typer.Typer(
    help="Moroccan language toolkit: normalisation, transliteration, language identification."
)

TextArg = typer.Argument(..., help="the text, or '-' to read standard input")
DIRECTIONS = ("arabic", "arabizi", "latin", "tifinagh")


def _read(text: str) -> str:
    return sys.stdin.read() if text == "-" else text


@text_app.command("normalize")
def normalize_cmd(
    text: str = TextArg,
    tokens: bool = typer.Option(False, "--tokens", help="also list the search tokens with their offsets"),
    as_json: bool = JsonOption,
) -> None:
    """The text as search sees it (tashkeel, alef forms, digits, accents, bidi marks…)."""
    from manara.text.normalize import normalize
    from manara.text.tokenize import tokenize

    def go() -> None:
        original = _read(text)
        norm = normalize(original)
        toks = [{"token": t.text, "start": t.start, "end": t.end, "original": original[t.start : t.end]}
                for t in tokenize(original)] if tokens else None  # fmt: skip
        if as_json:
            print_json({"normalized": norm.text, **({"tokens": toks} if toks is not None else {})})
            return
        console.print(norm.text, highlight=False, soft_wrap=True)
        if toks is not None:
            print_rows(toks, ["token", "start", "end", "original"])

    run(go)


@text_app.command("translit")
def translit_cmd(
    text: str = TextArg,
    to: str = typer.Option(
        ...,
        "--to",
        help="arabic (from Arabizi) | arabizi (from Arabic script) | "
        "latin (from Tifinagh) | tifinagh (from Latin IRCAM)",
    ),  # fmt: skip
) -> None:
    """Transliterate Darija between Arabizi and Arabic script, or Tamazight between Tifinagh and Latin."""
    import manara.text.translit as translit

    def go() -> None:
        functions = {
            "arabic": translit.arabizi_to_arabic,
            "arabizi": translit.arabic_to_arabizi,
            "latin": translit.tifinagh_to_latin,
            "tifinagh": translit.latin_to_tifinagh,
        }
        if to not in functions:
            raise BadRequest(f"--to must be one of {', '.join(DIRECTIONS)}, not '{to}'")
        console.print(functions[to](_read(text)), highlight=False, soft_wrap=True)

    run(go)


@text_app.command("langid")
def langid_cmd(
    text: str = TextArg,
    spans: bool = typer.Option(False, "--spans", help="languages of the parts of a code-switched text"),
    as_json: bool = JsonOption,
) -> None:
    """Identify the language: ar, ary, ary-Latn (Arabizi), fr, en, zgh (Tifinagh), zgh-Latn."""
    from manara.text.langid import identify, identify_spans

    def go() -> None:
        original = _read(text)
        guess = identify(original)
        parts = [
            {"lang": s.lang, "confidence": round(s.confidence, 3), "start": s.start, "end": s.end,
             "text": original[s.start : s.end]}
            for s in identify_spans(original)
        ] if spans else None  # fmt: skip
        if as_json:
            body = {"lang": guess.lang, "confidence": round(guess.confidence, 4)}
            print_json({**body, **({"spans": parts} if parts is not None else {})})
            return
        console.print(f"{guess.lang} ({guess.confidence:.2f})", highlight=False)
        if parts is not None:
            print_rows(parts, ["lang", "confidence", "start", "end", "text"])

    run(go)
