"""Search normalisation for Moroccan text that remembers where every character came from.

`normalize("الدّولة المغربيّة")` gives the text a search engine indexes ("الدوله المغربيه") and, for
each of its characters, the span of the original it came from, so that a match found in the
normalised text is highlighted on the right characters of the original.

Rules (see MOROCCO.md): NFKC (folds Arabic presentation forms from PDFs: ﻻ → لا); drop tashkeel,
tatweel, bidi controls and zero-width characters; unify alef forms (أ إ آ ٱ → ا), ى → ي, ة → ه;
Darija letters ڭ/گ/ݣ → ك, ڤ → ف, پ → ب (writers use either); Arabic-Indic and Eastern digits → 0-9;
Arabic punctuation → ASCII; Latin case-folded and stripped of accents (é → e, œ → oe); typographic
apostrophes → '; every kind of space → ' '. Tifinagh is kept as is.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_DROP = frozenset(
    [0x0640]  # tatweel
    + [0x061C, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0xFEFF]  # bidi marks, zero-width
    + list(range(0x202A, 0x202F))  # bidi embeddings and overrides
    + list(range(0x2066, 0x206A))  # bidi isolates
)
_MAP = {
    "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ٲ": "ا", "ٳ": "ا",
    "ى": "ي", "ة": "ه",
    "ڭ": "ك", "گ": "ك", "ݣ": "ك", "ڤ": "ف", "پ": "ب",
    "،": ",", "؛": ";", "؟": "?", "٪": "%", "٫": ".", "٬": ",",
    "’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'",
    "œ": "oe", "æ": "ae",
}  # fmt: skip
_TIFINAGH_JOINER = "\u2d7f"


@lru_cache(maxsize=8192)
def normalize_char(ch: str) -> str:
    """The normalised form of one character: '' (dropped), one character or several."""
    cp = ord(ch)
    if cp in _DROP:
        return ""
    if 0x2D30 <= cp <= 0x2D7F:
        return ch
    if ch.isspace():
        return " "
    out = []
    for c in unicodedata.normalize("NFKC", ch):
        if c in _MAP:
            out.append(_MAP[c])
            continue
        if not c.isascii() and unicodedata.digit(c, None) is not None:
            out.append(str(unicodedata.digit(c)))  # ٣ and ۳ → 3
            continue
        for d in unicodedata.normalize("NFD", c.casefold()):
            if unicodedata.category(d) == "Mn" and d != _TIFINAGH_JOINER:
                continue  # tashkeel, shadda, Latin accents
            out.append(_MAP.get(d, d))
    return "".join(out)


@dataclass(frozen=True)
class Normalized:
    """Normalised text and, per character, the [start, end) span of the original it came from."""

    original: str
    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a [start, end) span of the normalised text to the original text."""
        if not 0 <= start < end <= len(self.text):
            raise ValueError(
                f"span [{start}, {end}) is outside the normalised text of length {len(self.text)}"
            )
        return self.starts[start], self.ends[end - 1]


class _Table(dict[int, str]):
    """`str.translate` table that fills itself: code point → normalised string ('' drops it)."""

    def __missing__(self, cp: int) -> str:
        self[cp] = value = normalize_char(chr(cp))
        return value


_TABLE = _Table()
# per code point: length of its normalised form (-1: not yet known); and whether it is a mark (Mn)
_LEN = np.full(0x110000, -1, dtype=np.int8)
_MARK = np.zeros(0x110000, dtype=bool)


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def normalize(text: str) -> Normalized:
    cps = _code_points(text)
    lens = _LEN[cps]
    if (lens < 0).any():
        for cp in np.unique(cps[lens < 0]).tolist():
            _LEN[cp] = len(_TABLE[cp])
            _MARK[cp] = unicodedata.category(chr(cp)) == "Mn"
        lens = _LEN[cps]
    norm = text.translate(_TABLE)
    index = np.arange(len(cps), dtype=np.int64)
    starts = np.repeat(index, lens)
    ends = starts + 1
    dropped_marks = np.flatnonzero((lens == 0) & _MARK[cps])
    if dropped_marks.size:
        # a dropped mark (shadda, accent) is highlighted with the base letter before it
        before = np.cumsum(lens, dtype=np.int64)[dropped_marks] - 1
        keep = before >= 0
        np.maximum.at(ends, before[keep], dropped_marks[keep] + 1)
    return Normalized(text, norm, tuple(starts.tolist()), tuple(ends.tolist()))


def normalize_text(text: str) -> str:
    """Just the normalised string (queries, keys)."""
    return text.translate(_TABLE)
