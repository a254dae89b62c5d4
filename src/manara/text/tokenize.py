"""Word tokens for search, with offsets into the original text.

Tokens are runs of letters and digits of the normalised text (digits stay inside Arabizi words:
"n9der"). French elisions are split and the elided particle dropped ("l'état" → "etat",
"qu'il" → "il"), as search engines do for French. Light Arabic clitic stripping (و ب ل ال ف ك and
a few suffixes) is available with `arabic_clitics=True`; it is off by default here, and search turns
it on (`manara.search.analyze.ARABIC_CLITICS`) because bench/arabic_clitics.py measured a gain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from manara.text.normalize import Normalized, normalize

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[\u2d30-\u2d7f]+")
_ELISIONS = frozenset({"l", "d", "j", "m", "n", "s", "t", "c", "qu", "jusqu", "lorsqu", "puisqu", "quoiqu"})
_AR_PREFIXES = ("وال", "بال", "كال", "فال", "لل", "ال", "و")
_AR_SUFFIXES = ("هما", "كما", "ها", "ات", "ون", "ين", "ان", "يه", "ه", "ي")
_ARABIC = re.compile(r"^[\u0600-\u06ff]+$")


@dataclass(frozen=True)
class Token:
    text: str  # normalised form, what is indexed
    start: int  # span in the ORIGINAL text
    end: int


@lru_cache(maxsize=65536)
def strip_arabic_clitics(word: str) -> str:
    """Light stemming: one prefix and one suffix, keeping a stem of at least three letters."""
    if not _ARABIC.match(word):
        return word
    for p in _AR_PREFIXES:
        if word.startswith(p) and len(word) - len(p) >= 3:
            word = word[len(p) :]
            break
    for s in _AR_SUFFIXES:
        # one-letter suffixes only on longer words: الله stays, كتابه → كتاب
        if word.endswith(s) and len(word) - len(s) >= 3 and (len(s) > 1 or len(word) >= 5):
            word = word[: -len(s)]
            break
    return word


def tokens_of(norm: Normalized, *, arabic_clitics: bool = False) -> list[Token]:
    out: list[Token] = []
    starts, ends = norm.starts, norm.ends
    for m in _WORD.finditer(norm.text):
        word, start = m.group(), m.start()
        head, apostrophe, rest = word.partition("'")
        if apostrophe and head in _ELISIONS and rest:  # l'etat → etat; aujourd'hui stays whole
            start += len(head) + 1
            word = rest
        text = strip_arabic_clitics(word) if arabic_clitics else word
        out.append(Token(text, starts[start], ends[start + len(word) - 1]))
    return out


def tokenize(text: str, *, arabic_clitics: bool = False) -> list[Token]:
    return tokens_of(normalize(text), arabic_clitics=arabic_clitics)
