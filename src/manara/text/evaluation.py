"""Evaluation helpers for Manara's text tools.

Transliteration part: character error rate and word accuracy of a transliteration function over
(source, reference) pairs, a loader for the DODa Arabizi/Arabic-script pairs (CC BY-NC 4.0: read in
place for evaluation only, never copied into the package) and the report behind
`manara eval translit`: Manara's rules and two baselines (identity, naive digit map), raw and
normalised.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path

from rapidfuzz.distance import Levenshtein

from manara.errors import NotFound
from manara.text.normalize import normalize_text

__all__ = [
    "load_doda_pairs",
    "naive_arabizi_to_arabic",
    "naive_arabic_to_arabizi",
    "normalise_for_scoring",
    "translit_scores",
]


def translit_scores(pairs: Iterable[tuple[str, str]], fn: Callable[[str], str]) -> dict[str, float]:
    """Score a transliteration function ``fn`` on ``(source, reference)`` pairs.

    Returns ``{"pairs": n, "cer": ..., "word_accuracy": ...}`` where

    * ``cer`` (character error rate) = sum over pairs of the Levenshtein distance between ``fn(source)`` and ``reference``
      divided by the sum of ``len(reference)`` (characters, spaces included);
    * ``word_accuracy`` = number of reference words equal to the hypothesis word at the same
      position, divided by the total number of reference words.  Words come from ``str.split()``
      (any run of whitespace); word *i* of the reference counts as correct only if the hypothesis
      has a word *i* and it is identical.  A missing or extra word shifts every later position,
      so this is a strict, alignment-free measure.

    With no pairs (or only empty references) both rates are 0.0.  Texts are compared exactly
    as given: normalise them before calling (see :func:`normalise_for_scoring`).
    """
    n = 0
    edits = 0
    ref_chars = 0
    words_ok = 0
    ref_words = 0
    for source, reference in pairs:
        hyp = fn(source)
        n += 1
        edits += Levenshtein.distance(hyp, reference)
        ref_chars += len(reference)
        ref_tokens = reference.split()
        hyp_tokens = hyp.split()
        ref_words += len(ref_tokens)
        words_ok += sum(1 for r, h in zip(ref_tokens, hyp_tokens, strict=False) if r == h)
    return {
        "pairs": n,
        "cer": edits / ref_chars if ref_chars else 0.0,
        "word_accuracy": words_ok / ref_words if ref_words else 0.0,
    }


def load_doda_pairs(folder: Path) -> list[tuple[str, str]]:
    """Read DODa's ``ongoing/*.csv`` files under ``folder`` as ``(arabizi, arabic)`` pairs.

    Uses the ``darija`` (Arabizi) and ``darija_ar`` (Arabic script) columns; rows where either is
    missing or blank after stripping, and files without those columns, are skipped.  Whitespace
    inside a text is collapsed to single spaces.  DODa is CC BY-NC 4.0: evaluation only.
    """
    pairs: list[tuple[str, str]] = []
    for path in sorted(Path(folder).glob("ongoing/*.csv")):
        with path.open(encoding="utf-8", newline="", errors="replace") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"darija", "darija_ar"} <= set(reader.fieldnames):
                continue
            for row in reader:
                latin = row.get("darija")
                arabic = row.get("darija_ar")
                if not isinstance(latin, str) or not isinstance(arabic, str):
                    continue
                latin = " ".join(latin.split())
                arabic = " ".join(arabic.split())
                if latin and arabic:
                    pairs.append((latin, arabic))
    return pairs


# --- normalisation for scoring -----------------------------------------------------------------


def normalise_for_scoring(text: str) -> str:
    """Fold a text the way search sees it (`manara.text.normalize`), whitespace collapsed."""
    return " ".join(normalize_text(text).split())


# --- baselines ---------------------------------------------------------------------------------

_NAIVE_AZ = str.maketrans(
    {
        "2": "ء",
        "3": "ع",
        "5": "خ",
        "7": "ح",
        "9": "ق",
        "a": "ا",
        "b": "ب",
        "c": "ك",
        "d": "د",
        "e": "ي",
        "f": "ف",
        "g": "ج",
        "h": "ه",
        "i": "ي",
        "j": "ج",
        "k": "ك",
        "l": "ل",
        "m": "م",
        "n": "ن",
        "o": "و",
        "p": "ب",
        "q": "ق",
        "r": "ر",
        "s": "س",
        "t": "ت",
        "u": "و",
        "v": "ف",
        "w": "و",
        "x": "ش",
        "y": "ي",
        "z": "ز",
    }
)
_NAIVE_AR = str.maketrans(
    {
        "ء": "2",
        "ع": "3",
        "خ": "5",
        "ح": "7",
        "ق": "9",
        "ا": "a",
        "أ": "a",
        "إ": "i",
        "آ": "a",
        "ب": "b",
        "ت": "t",
        "ث": "t",
        "ج": "j",
        "د": "d",
        "ذ": "d",
        "ر": "r",
        "ز": "z",
        "س": "s",
        "ش": "x",
        "ص": "s",
        "ض": "d",
        "ط": "t",
        "ظ": "d",
        "غ": "g",
        "ف": "f",
        "ك": "k",
        "ڭ": "g",
        "ل": "l",
        "م": "m",
        "ن": "n",
        "ه": "h",
        "ة": "a",
        "و": "o",
        "ي": "i",
        "ى": "a",
        "پ": "p",
        "ڤ": "v",
    }
)


def naive_arabizi_to_arabic(text: str) -> str:
    """Baseline: digits 2 3 5 7 9 and one Arabic letter per Latin letter; no digraphs or vowel rules.

    Digits are mapped everywhere, pure numbers included (that is part of being naive).
    """
    return text.lower().translate(_NAIVE_AZ)


def naive_arabic_to_arabizi(text: str) -> str:
    """Baseline: one Latin letter or digit per Arabic letter (ع 3, ح 7, ق 9, خ 5, ء 2)."""
    return text.translate(_NAIVE_AR)


def _identity(text: str) -> str:
    return text


# --- command line ------------------------------------------------------------------------------


def translit_report(doda: Path) -> dict[str, object]:
    """Every system and direction scored on all DODa pairs (what `manara eval translit` prints)."""
    from manara.text.translit import arabic_to_arabizi, arabizi_to_arabic

    started = time.perf_counter()
    pairs = load_doda_pairs(doda)
    if not pairs:
        raise NotFound(f"no DODa pairs found under {doda}/ongoing/*.csv")
    reverse = [(ar, lat) for lat, ar in pairs]
    systems: Sequence[tuple[str, str, list[tuple[str, str]], Callable[[str], str]]] = [
        ("arabizi->arabic", "manara-rules", pairs, arabizi_to_arabic),
        ("arabizi->arabic", "manara+lexicon", pairs, partial(arabizi_to_arabic, lexicon=True)),
        ("arabizi->arabic", "naive-digit-map", pairs, naive_arabizi_to_arabic),
        ("arabizi->arabic", "identity", pairs, _identity),
        ("arabic->arabizi", "manara-rules", reverse, arabic_to_arabizi),
        ("arabic->arabizi", "naive-digit-map", reverse, naive_arabic_to_arabizi),
        ("arabic->arabizi", "identity", reverse, _identity),
    ]
    rows: list[dict[str, object]] = []
    for direction, system, data, fn in systems:
        raw = translit_scores(data, fn)
        normed_data = [(src, normalise_for_scoring(ref)) for src, ref in data]
        norm = translit_scores(normed_data, lambda s, fn=fn: normalise_for_scoring(fn(s)))  # type: ignore[misc]
        rows.append(
            {
                "direction": direction,
                "system": system,
                "pairs": int(raw["pairs"]),
                "cer_raw": round(raw["cer"], 4),
                "word_acc_raw": round(raw["word_accuracy"], 4),
                "cer_norm": round(norm["cer"], 4),
                "word_acc_norm": round(norm["word_accuracy"], 4),
            }
        )
    seconds = round(time.perf_counter() - started, 1)
    return {"dataset": "DODa ongoing/*.csv", "pairs": len(pairs), "results": rows, "seconds": seconds}
