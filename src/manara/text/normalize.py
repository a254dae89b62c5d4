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


def normalize(text: str) -> Normalized:
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for i, ch in enumerate(text):
        norm = normalize_char(ch)
        if not norm:
            if ends and unicodedata.category(ch) == "Mn":
                ends[-1] = i + 1  # a dropped mark (shadda, accent) is highlighted with its base letter
            continue
        out.append(norm)
        starts.extend([i] * len(norm))
        ends.extend([i + 1] * len(norm))
    return Normalized(text, "".join(out), tuple(starts), tuple(ends))


def normalize_text(text: str) -> str:
    """Just the normalised string (queries, keys)."""
    return "".join(normalize_char(ch) for ch in text)
