"""Text analysis for search: what is indexed for a chunk, what is searched for a query, what is highlighted.

Lexical search runs over Manara's own normalisation and tokens (`manara.text`), never the engine's:
alef/ya/ta-marbuta folding, tashkeel, Arabic-Indic digits, French elisions. Darija typed in Latin
letters (Arabizi) is indexed and queried twice, as typed and in Arabic script (`arabizi_to_arabic`),
so "kifach njded la carte" meets "كيفاش نجدد" in a document and the other way round.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from manara.text.langid import identify, identify_spans
from manara.text.phonetic import arabic_keys, latin_keys, tifinagh_keys
from manara.text.tokenize import tokenize
from manara.text.translit import arabizi_to_arabic

# Light Arabic clitic stripping (و ب ل ال ف ك…, a few suffixes): on for search, measured by
# bench/arabic_clitics.py: ARCD BM25 recall@5 0.903 → 0.950, MRR@10 0.780 → 0.832; gold set neutral.
ARABIC_CLITICS = True
ARABIZI_SCORE = 0.05  # posterior of ary-Latn above which a Latin text is also read as Arabizi
_LATIN = re.compile(r"[A-Za-z]")
_ARABIC = re.compile(r"[\u0600-\u06ff]")


_ARTICLES = ("وال", "بال", "فال", "كال", "لل", "ال")
_SKELETON = str.maketrans({"ط": "ت", "ث": "ت", "ض": "د", "ذ": "د", "ظ": "د", "ص": "س", "ز": "س",
                           "ا": None, "و": None, "ي": None, "ى": None, "ه": None, "ء": None, "ئ": None,
                           "ؤ": None, "ع": None})  # fmt: skip
_ARABIC_WORD = re.compile(r"^[\u0621-\u064a]+$")


@lru_cache(maxsize=200_000)
def skeleton(word: str) -> str:
    """The consonant skeleton of an Arabic-script word, for matching Arabizi read into Arabic script.

    Arabizi writes vowels the Arabic spelling leaves out ("bitaqa" → بيتاقا, البطاقة), drops the
    emphatic distinctions (t for ت and ط, s for س and ص) and writes the article as "l". Both sides
    lose the article, long vowels, ayn/hamza and emphasis, and doubled letters: البطاقة → بتق,
    lbitaqa → بتق. Two letters at least, else ''.
    """
    if not _ARABIC_WORD.match(word):
        return ""
    for article in _ARTICLES:
        if word.startswith(article) and len(word) - len(article) >= 2:
            word = word[len(article) :]
            break
    else:
        if word.startswith("ل") and len(word) >= 4:
            word = word[1:]
    bare = word.translate(_SKELETON)
    out = "".join(c for i, c in enumerate(bare) if i == 0 or c != bare[i - 1])
    return out if len(out) >= 2 else ""


def skeletons(terms_text: str) -> str:
    """Space-joined skeletons of the Arabic-script terms of an index `terms` string."""
    return " ".join(filter(None, (skeleton(t) for t in terms_text.split())))


def phonetic_terms(terms_text: str) -> str:
    """Space-joined phonetic keys of the Latin terms of an index `terms` string (see manara.text.phonetic)."""
    return " ".join(k for t in terms_text.split() for k in latin_keys(t))


def looks_arabizi(text: str) -> bool:
    """A Latin-script text that may be Darija: whole-text posterior or any Arabizi span."""
    if not _LATIN.search(text) or _ARABIC.search(text):
        return False
    if identify(text).scores.get("ary-Latn", 0.0) >= ARABIZI_SCORE:
        return True
    return any(s.lang == "ary-Latn" for s in identify_spans(text))


def terms(text: str) -> list[str]:
    return [t.text for t in tokenize(text, arabic_clitics=ARABIC_CLITICS)]


def index_terms(text: str, *, arabizi: bool | None = None) -> str:
    """The space-joined terms the lexical index stores for a chunk (Arabizi doubled in Arabic script)."""
    words = terms(text)
    if arabizi if arabizi is not None else looks_arabizi(text):
        words += terms(arabizi_to_arabic(text, lexicon=True))
    return " ".join(words)


@dataclass(frozen=True)
class QueryAnalysis:
    text: str
    lang: str
    terms: list[str]  # distinct, in order; includes the Arabic-script form of Arabizi
    skeletons: list[str]  # for Arabizi: consonant skeletons of its Arabic-script form
    # for Arabic-script and Tifinagh words: phonetic keys, matched against Latin chunks' keys
    # (البيرمي reaches "permis", ⴳⵔⵉⴼⵉⵜ reaches "Griffith")
    phonetic: list[str]
    dense_texts: list[str]  # what the embedding model reads (the query, and its Arabic-script form)
    arabizi: bool


def analyze_query(text: str) -> QueryAnalysis:
    lang = identify(text).lang if text.strip() else "und"
    arabizi = looks_arabizi(text)
    words = terms(text)
    dense = [text]
    skels: list[str] = []
    if arabizi:
        arabic = arabizi_to_arabic(text, lexicon=True)
        arabic_terms = terms(arabic)
        words += arabic_terms
        skels = list(dict.fromkeys(filter(None, (skeleton(t) for t in arabic_terms))))
        dense.append(arabic)
    phonetic = [] if arabizi else [k for w in words for k in arabic_keys(w) or tifinagh_keys(w)]
    return QueryAnalysis(
        text, lang, list(dict.fromkeys(words)), skels, list(dict.fromkeys(phonetic)), dense, arabizi
    )


def highlight_spans(text: str, wanted: set[str]) -> list[tuple[int, int]]:
    """[start, end) spans of `text` whose normalised token is one of `wanted` (also via Arabizi)."""
    tokens = tokenize(text, arabic_clitics=ARABIC_CLITICS)
    spans = [(t.start, t.end) for t in tokens if t.text in wanted]
    if not spans and _LATIN.search(text):
        # an Arabizi chunk matched through its Arabic-script terms: map each word separately
        spans = [(t.start, t.end) for t in tokens if _arabizi_terms(t.text) & wanted]
    return spans


@lru_cache(maxsize=65536)
def _arabizi_terms(word: str) -> frozenset[str]:
    return frozenset(terms(arabizi_to_arabic(word, lexicon=True)))


def snippet(text: str, spans: list[tuple[int, int]], width: int = 240) -> tuple[int, int]:
    """The [start, end) window of about `width` characters holding the most highlighted spans."""
    if len(text) <= width:
        return 0, len(text)
    best, best_count = 0, -1
    for s, _ in spans or [(0, 0)]:
        start = max(0, s - width // 4)
        count = sum(1 for a, b in spans if a >= start and b <= start + width)
        if count > best_count:
            best, best_count = start, count
    start = best
    if start > 0:  # begin on a word boundary
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < start + 30 else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start + width // 2 else end
    return start, end
