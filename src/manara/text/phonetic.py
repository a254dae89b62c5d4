"""Phonetic keys: one consonant skeleton for a word however Moroccans write it.

Darija borrows French administrative words and writes them in Arabic letters: لاكارط ڭريز (carte
grise), البيرمي (permis), السيرتيفيكا (certificat), الرجيستر دو كومرس (registre de commerce). A
Tamazight text in Tifinagh writes names the same way (ⴳⵔⵉⴼⵉⵜ, Griffith). No spelling rule maps
such a word onto its French or English original, but both sides keep their consonants. A key
keeps the consonants, folded into one small alphabet both scripts can express:

    b (b p) · t (t ط ث th) · d (d ض ذ) · k (k c q g ك ق ڭ خ) · j (j, soft g, ج) · f (f v ph ف)
    s (s z soft c ص ز) · x (ch sh ش ⵛ) · r (r غ ⵖ) · l · m · n

vowels, h, ayn and hamza are dropped and doubled letters merged: "carte" → krt, كارط → krt.
French spelling is read the French way first (c and g soft before e/i/y, silent final s/t/x/d,
"-er"/"-ier" endings read as in "dossier"), and a Latin word gets a second key with its final
consonant when that one may be heard. A leading Darija article (ال, and the borrowed French
articles لا/لو/لي) is removed as a variant.

Keys shorter than three letters say too little and are not produced. Search uses them only to let
an Arabic-script or Tifinagh question reach a chunk written in Latin letters.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

MIN_KEY = 3

_LATIN_WORD = re.compile(r"^[a-z]+$")
_DIGRAPHS = [
    (re.compile(r"sch|ch|sh"), "x"),
    (re.compile(r"ph"), "f"),
    (re.compile(r"th"), "t"),
    (re.compile(r"ck"), "k"),
    (re.compile(r"qu"), "k"),
]
_FRENCH_RULES = [
    (re.compile(r"x"), "ks"),  # before the digraphs make an x of "ch"
    *_DIGRAPHS,
    (re.compile(r"gu(?=[eiy])"), "k"),
    (re.compile(r"gn"), "n"),
    (re.compile(r"c(?=[eiy])"), "s"),
    (re.compile(r"g(?=[eiy])"), "j"),
]
_LATIN_LETTERS = str.maketrans(
    {"c": "k", "q": "k", "g": "k", "p": "b", "v": "f", "z": "s", "w": None, "h": None, "y": None}
    | {v: None for v in "aeiou"}
)
_SILENT_FINAL = re.compile(r"(?<=[aeiouy])(?:[stxdp]|er|ez)$|(?<=[aeiouy][rnlm])[stxd]$")

_ARABIC_LETTERS = str.maketrans(
    {"ب": "b", "پ": "b", "ت": "t", "ط": "t", "ث": "t", "ج": "j", "د": "d", "ض": "d", "ذ": "d", "ظ": "d",
     "ر": "r", "غ": "r", "ز": "s", "س": "s", "ص": "s", "ش": "x", "ف": "f", "ڤ": "f", "ق": "k", "ك": "k",
     "ڭ": "k", "گ": "k", "خ": "k", "ل": "l", "م": "m", "ن": "n"}
    | {c: None for c in "اأإآىيوهةءئؤعح"}
)  # fmt: skip
_ARABIC_WORD = re.compile(r"^[\u0621-\u064a\u06a4\u06a9\u06ad\u06af\u067e]+$")
_ARABIC_ARTICLES = ("ال", "لا", "لو", "لي")

_TIFINAGH_WORD = re.compile(r"^[\u2d30-\u2d7f]+$")
_TIFINAGH_LETTERS = str.maketrans(
    {"ⴱ": "b", "ⵒ": "b", "ⵜ": "t", "ⵟ": "t", "ⴷ": "d", "ⴹ": "d", "ⴳ": "k", "ⴽ": "k", "ⵇ": "k",
     "ⵅ": "k", "ⴶ": "j", "ⵊ": "j", "ⴼ": "f", "ⵠ": "f", "ⵙ": "s", "ⵚ": "s", "ⵣ": "s", "ⵥ": "s",
     "ⵛ": "x", "ⵔ": "r", "ⵕ": "r", "ⵖ": "r", "ⵍ": "l", "ⵎ": "m", "ⵏ": "n"}
    | {c: None for c in "ⴰⴻⵉⵓⵀⵃⵄⵡⵢⵯ\u2d7f"}
)  # fmt: skip


def _squeeze(consonants: str) -> str:
    out = "".join(c for i, c in enumerate(consonants) if i == 0 or c != consonants[i - 1])
    return out if len(out) >= MIN_KEY else ""


def _keys(*candidates: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(k for k in map(_squeeze, candidates) if k))


@lru_cache(maxsize=200_000)
def latin_keys(word: str) -> tuple[str, ...]:
    """Keys of a normalised (lower-case, accent-free) Latin word: as French says it, and letter by letter."""
    if not _LATIN_WORD.match(word):
        return ()
    spelled = word  # letter by letter (names, English)
    for rule, sound in _DIGRAPHS:
        spelled = rule.sub(sound, spelled)
    spoken = _SILENT_FINAL.sub("", word)
    for rule, sound in _FRENCH_RULES:
        spoken = rule.sub(sound, spoken)
    return _keys(spoken.translate(_LATIN_LETTERS), spelled.translate(_LATIN_LETTERS))


@lru_cache(maxsize=200_000)
def arabic_keys(word: str) -> tuple[str, ...]:
    """Keys of a normalised Arabic-script word, with and without a leading article."""
    if not _ARABIC_WORD.match(word):
        return ()
    forms = [word] + [
        word[len(a) :] for a in _ARABIC_ARTICLES if word.startswith(a) and len(word) > len(a) + 2
    ]
    return _keys(*(f.translate(_ARABIC_LETTERS) for f in forms))


@lru_cache(maxsize=200_000)
def tifinagh_keys(word: str) -> tuple[str, ...]:
    """Key of a Tifinagh word (a name or a borrowed word is matched on its consonants)."""
    if not _TIFINAGH_WORD.match(word):
        return ()
    return _keys(unicodedata.normalize("NFC", word).translate(_TIFINAGH_LETTERS))


def keys(word: str) -> tuple[str, ...]:
    """The phonetic keys of one normalised word, whatever its script."""
    return latin_keys(word) or arabic_keys(word) or tifinagh_keys(word)
