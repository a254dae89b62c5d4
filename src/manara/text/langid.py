"""Language identification for Manara's languages, whole texts and code-switched spans.

Languages: ``ar`` (Modern Standard Arabic), ``ary`` (Darija, Arabic script), ``ary-Latn`` (Darija in
Latin script, "Arabizi"), ``fr``, ``en``, ``zgh`` (Tamazight, Tifinagh) and ``zgh-Latn`` (Tamazight,
Latin IRCAM transcription). ``und`` means "no language": empty text, digits or punctuation only.

Model: a multinomial naive Bayes over character n-grams (orders in the model file, 1-5) of each
word padded with a space on both sides (the word-boundary marker), with Lidstone smoothing and
uniform class priors. It is trained by ``scripts/train_langid.py`` and shipped, pruned, as
``manara/text/models/langid.json.gz`` (see the README there for data, licences and checksum); it is
loaded lazily, once, from the installed package, never from the network.

Script awareness: every word is assigned its script (Arabic, Tifinagh or Latin, by majority of its
letters; digits are neutral). Only the classes of that script compete for it: Arabic → ar/ary,
Tifinagh → zgh, Latin → fr/en/ary-Latn/zgh-Latn. A whole text is classified on the words of its
dominant script (most letters).

Confidence: naive Bayes log-likelihoods of overlapping n-grams are far too peaked to read as
probabilities, so they are normalised by length before the softmax::

    p(c | text) = softmax_c( tau * LL_c / n ** beta + bias_c )

where ``LL_c`` is the summed log-likelihood of the ``n`` known n-grams under class ``c``; the
temperature ``tau``, the length exponent ``beta`` and a class bias (the ``ar`` bias against ``ary``
only; the other biases are 0) were fitted by the training script (minimum log-loss on a held-out
development split of sentences and 1-3 word fragments). ``confidence`` is
the posterior of the best class; ``scores`` holds the posteriors of the competing classes.
"""

from __future__ import annotations

import gzip
import importlib.resources
import json
import math
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

LANGS: tuple[str, ...] = ("ar", "ary", "ary-Latn", "fr", "en", "zgh", "zgh-Latn")
UND = "und"
ARAB, TFNG, LATN = "Arab", "Tfng", "Latn"
SCRIPT_LANGS: dict[str, tuple[str, ...]] = {
    ARAB: ("ar", "ary"),
    TFNG: ("zgh",),
    LATN: ("fr", "en", "ary-Latn", "zgh-Latn"),
}
LANG_SCRIPT: dict[str, str] = {lang: script for script, langs in SCRIPT_LANGS.items() for lang in langs}
MODEL_RESOURCE = "models/langid.json.gz"

# A word: letters, digits and combining marks (Arabic tashkeel, Tifinagh labialisation mark),
# with apostrophes inside ("d'identité", "aujourd'hui").
_WORD_CHAR = r"[^\W_]|[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640\u2d7f]"
_WORD = re.compile(rf"(?:{_WORD_CHAR})+(?:['’ʼ](?:{_WORD_CHAR})+)*")
_ARABIC_MARKS = re.compile(r"[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_FOLD = str.maketrans({"’": "'", "ʼ": "'", "γ": "ɣ", "ϵ": "ɛ", "ε": "ɛ"})


def char_script(ch: str) -> str | None:
    """The script of one letter (Arab, Tfng or Latn), or None for digits, marks and symbols."""
    cp = ord(ch)
    if 0x2D30 <= cp <= 0x2D7F:
        return TFNG
    if (
        0x0600 <= cp <= 0x06FF
        or 0x0750 <= cp <= 0x077F
        or 0x08A0 <= cp <= 0x08FF
        or 0xFB50 <= cp <= 0xFDFF
        or 0xFE70 <= cp <= 0xFEFF
    ):
        return ARAB if ch.isalpha() else None
    if ch.isalpha() and cp < 0x0530:  # Latin, IPA and Greek letters (IRCAM uses ɛ, ɣ/γ)
        return LATN
    if 0x1E00 <= cp <= 0x1EFF:  # Latin Extended Additional: ḥ ṛ ṣ ṭ ẓ
        return LATN
    return None


def script_counts(text: str) -> Counter[str]:
    """How many letters of each script the text holds."""
    counts: Counter[str] = Counter()
    for ch in text:
        s = char_script(ch)
        if s is not None:
            counts[s] += 1
    return counts


def word_script(word: str) -> str | None:
    """The majority script of a word's letters (ties: Arabic, then Tifinagh, then Latin)."""
    counts = script_counts(word)
    if not counts:
        return None
    order = (ARAB, TFNG, LATN)
    return max(order, key=lambda s: (counts[s], -order.index(s)))


def normalise_word(word: str) -> str:
    """The form n-grams are taken from: NFKC, case-folded, without tashkeel/tatweel, one apostrophe."""
    word = unicodedata.normalize("NFKC", word).casefold().translate(_FOLD)
    return _ARABIC_MARKS.sub("", word)


def ngrams_of(word: str, orders: Sequence[int]) -> list[str]:
    """Character n-grams of a normalised word padded with the boundary marker (a space)."""
    padded = f" {word} "
    out: list[str] = []
    for n in orders:
        for i in range(len(padded) - n + 1):
            g = padded[i : i + n]
            if g.strip():
                out.append(g)
    return out


@dataclass(frozen=True)
class Word:
    """A word of the original text: offsets, script and normalised form."""

    start: int
    end: int
    text: str
    script: str
    norm: str


def words_of(text: str) -> list[Word]:
    """Words with letters (digit-only tokens are left out), with offsets into ``text``."""
    out: list[Word] = []
    for m in _WORD.finditer(text):
        script = word_script(m.group())
        if script is None:
            continue
        out.append(Word(m.start(), m.end(), m.group(), script, normalise_word(m.group())))
    return out


def count_ngrams(samples: Iterable[tuple[str, str]], orders: Sequence[int]) -> dict[str, Counter[str]]:
    """Training counts: for each language, n-gram counts over the words of that language's script."""
    counts: dict[str, Counter[str]] = {lang: Counter() for lang in LANGS}
    for text, lang in samples:
        script = LANG_SCRIPT[lang]
        c = counts[lang]
        for w in words_of(text):
            if w.script == script:
                c.update(ngrams_of(w.norm, orders))
    return counts


@dataclass
class LangIdModel:
    """Naive Bayes parameters: per known n-gram, one log-probability per class."""

    classes: tuple[str, ...]
    orders: tuple[int, ...]
    logprob: dict[str, tuple[float, ...]]
    tau: float = 1.0
    beta: float = 1.0
    bias: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_counts(
        cls,
        counts: dict[str, Counter[str]],
        orders: Sequence[int],
        *,
        alpha: float = 0.1,
        per_class: int = 20000,
        min_count: int = 2,
    ) -> tuple[LangIdModel, dict[str, Any]]:
        """Prune (union of each class's ``per_class`` most frequent n-grams seen ``min_count`` times)
        and smooth. Returns the model and the JSON payload to ship (counts, not floats)."""
        classes = tuple(LANGS)
        keep: set[str] = set()
        for lang in classes:
            ranked = sorted(
                ((g, k) for g, k in counts[lang].items() if k >= min_count), key=lambda x: (-x[1], x[0])
            )
            keep.update(g for g, _ in ranked[:per_class])
        vocab = sorted(keep)
        table = {g: [counts[lang].get(g, 0) for lang in classes] for g in vocab}
        totals = [sum(counts[lang].values()) for lang in classes]
        payload: dict[str, Any] = {
            "format": "manara-langid-nb/1",
            "classes": list(classes),
            "orders": list(orders),
            "alpha": alpha,
            "totals": totals,
            "tau": 1.0,
            "beta": 1.0,
            "bias": {},
            "ngrams": table,
        }
        return cls.from_payload(payload), payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> LangIdModel:
        """Rebuild log-probabilities from the shipped counts."""
        classes = tuple(payload["classes"])
        alpha = float(payload["alpha"])
        table: dict[str, list[int]] = payload["ngrams"]
        v = len(table)
        denom = [math.log(t + alpha * v) for t in payload["totals"]]
        logprob = {
            g: tuple(math.log(k + alpha) - d for k, d in zip(ks, denom, strict=True))
            for g, ks in table.items()
        }
        meta = {k: payload[k] for k in payload if k != "ngrams"}
        bias = {k: float(v) for k, v in payload.get("bias", {}).items()}
        return cls(
            classes,
            tuple(payload["orders"]),
            logprob,
            float(payload["tau"]),
            float(payload["beta"]),
            bias,
            meta,
        )

    def loglik(self, norm_words: Iterable[str]) -> tuple[list[float], int]:
        """Summed log-likelihood per class of the known n-grams of the words, and their number."""
        acc = [0.0] * len(self.classes)
        n = 0
        lp = self.logprob
        for w in norm_words:
            for g in ngrams_of(w, self.orders):
                vec = lp.get(g)
                if vec is not None:
                    acc = [a + b for a, b in zip(acc, vec, strict=True)]
                    n += 1
        return acc, n

    def posterior(self, ll: Sequence[float], n: float, langs: Sequence[str]) -> dict[str, float]:
        """Calibrated posteriors over ``langs``: softmax(tau * LL / n ** beta + bias)."""
        if n <= 0:
            return {lang: 1.0 / len(langs) for lang in langs}
        scale = self.tau / (n**self.beta)
        idx = [self.classes.index(lang) for lang in langs]
        z = [ll[i] * scale + self.bias.get(lang, 0.0) for i, lang in zip(idx, langs, strict=True)]
        m = max(z)
        e = [math.exp(x - m) for x in z]
        s = sum(e)
        return {lang: x / s for lang, x in zip(langs, e, strict=True)}


@dataclass(frozen=True)
class LangGuess:
    """The language of a whole text: best class, its posterior, and every competing class's posterior."""

    lang: str
    confidence: float
    scores: dict[str, float]


@dataclass(frozen=True)
class LangSpan:
    """A maximal run of words of one language; ``text[start:end]`` is the span in the original."""

    start: int
    end: int
    lang: str
    confidence: float


_model: LangIdModel | None = None
_lock = threading.Lock()


def load_model() -> LangIdModel:
    """The shipped model, read once from the package's data (never from the network)."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                ref = importlib.resources.files("manara.text").joinpath(MODEL_RESOURCE)
                payload = json.loads(gzip.decompress(ref.read_bytes()).decode("utf-8"))
                _model = LangIdModel.from_payload(payload)
    return _model


def set_model(model: LangIdModel | None) -> None:
    """Use another model (training and evaluation scripts); None goes back to the shipped one."""
    global _model
    _model = model


def _guess(posts: dict[str, float]) -> LangGuess:
    best = max(posts, key=lambda k: (posts[k], -LANGS.index(k)))
    return LangGuess(best, posts[best], dict(posts))


def identify(text: str) -> LangGuess:
    """The language of a whole text.

    Text whose letters are mostly Tifinagh is ``zgh`` without the model (confidence: their share); text
    without letters (empty, digits, punctuation) is ``und`` with confidence 0.0 and no scores.
    Otherwise the words of the dominant script are scored by the classes of that script, and the
    scores are scaled by that script's share of the letters: a text that mixes scripts (Darija in
    Arabic script with French) gets a confidence that says so, and `identify_spans` tells the parts.
    """
    counts = script_counts(text)
    if not counts:
        return LangGuess(UND, 0.0, {})
    script = max((ARAB, TFNG, LATN), key=lambda s: (counts[s], -(ARAB, TFNG, LATN).index(s)))
    share = counts[script] / sum(counts.values())
    if script == TFNG:
        return LangGuess("zgh", share, {"zgh": share})
    model = load_model()
    ll, n = model.loglik(w.norm for w in words_of(text) if w.script == script)
    return _guess({k: v * share for k, v in model.posterior(ll, n, SCRIPT_LANGS[script]).items()})


_WINDOW_WEIGHTS = (1.0, 0.3, 0.1)  # the word itself, its neighbours, the next ones
_CLIP = 0.01  # word posteriors are clipped so that no single word overwhelms its neighbours
_MAX_GAP = 6  # context words at most this many words away (counting other-script words)
# weight of the whole-text (same script) log-posterior in each word's score: strong for ar/ary, two
# varieties on a continuum that share most words (word-level evidence is weak), light for Latin,
# where switching between Darija, French and English is the norm and words are distinctive
_GROUP_WEIGHT = {ARAB: 1.5, LATN: 0.5}
_WEAK = 0.7  # a lone word below this confidence joins the language around it
_SHORT = 3  # a lone word of at most this many characters between two runs of one language...
_STRONG = 0.9  # ...takes their language, unless its own confidence is at least this


def identify_spans(text: str) -> list[LangSpan]:
    """Language spans of code-switched text.

    Words are scored only among the languages of their script (Tifinagh words are ``zgh``). A
    word's score is a sum of clipped (to [0.01, 0.99]) calibrated log-posteriors:

    - its own (weight 1) and those of up to two words of the same script on each side (weights 0.3,
      0.1 by distance, at most six words away; words of other scripts are skipped, so in "بغيت نجدد
      la carte ديالي" the context of بغيت is نجدد and ديالي);
    - the posterior of all the words of its script in the text (what ``identify`` would say of
      them), weight 1.5 for Arabic script (ar and ary share most words: word-level evidence is
      weak) and 0.5 for Latin script (Darija/French/English switching is common and words are
      distinctive).

    The best language of the renormalised score labels the word. Then a lone word (between two
    runs of one language, or at either end next to a run) takes its neighbours' language when its
    confidence is below 0.7, or below 0.9 for a word of three characters or fewer. Adjacent words of
    one language are merged into maximal spans from the first word's start to the last word's end
    (spaces, punctuation and numbers between them included); span confidence is the mean of its
    words' confidences weighted by their length.
    """
    words = words_of(text)
    if not words:
        return []
    model = load_model()
    # each word alone: calibrated posteriors over its script's languages, clipped to [0.01, 0.99]
    word_lp: list[dict[str, float]] = []
    for w in words:
        if w.script == TFNG:
            word_lp.append({"zgh": 0.0})
            continue
        ll, n = model.loglik([w.norm])
        post = model.posterior(ll, n, SCRIPT_LANGS[w.script])
        word_lp.append({k: math.log(min(max(v, _CLIP), 1 - _CLIP)) for k, v in post.items()})
    # each word's context: the nearest words of its own script (other-script insertions skipped)
    by_script: dict[str, list[int]] = {}
    for i, w in enumerate(words):
        by_script.setdefault(w.script, []).append(i)
    rank = {i: r for seq in by_script.values() for r, i in enumerate(seq)}
    # the prior each word gets from all the words of its script in the text (as identify() sees them)
    group_lp: dict[str, dict[str, float]] = {}
    for script, seq in by_script.items():
        if script != TFNG:
            ll, n = model.loglik(words[i].norm for i in seq)
            post = model.posterior(ll, n, SCRIPT_LANGS[script])
            group_lp[script] = {k: math.log(min(max(v, _CLIP), 1 - _CLIP)) for k, v in post.items()}
    labels: list[str] = []
    confs: list[float] = []
    for i, w in enumerate(words):
        if w.script == TFNG:
            labels.append("zgh")
            confs.append(1.0)
            continue
        seq, r = by_script[w.script], rank[i]
        langs = SCRIPT_LANGS[w.script]
        score = {k: _GROUP_WEIGHT[w.script] * group_lp[w.script][k] for k in langs}
        for d, weight in enumerate(_WINDOW_WEIGHTS):
            for q in {r - d, r + d}:
                if 0 <= q < len(seq) and abs(seq[q] - i) <= _MAX_GAP:
                    for k in langs:
                        score[k] += weight * word_lp[seq[q]][k]
        m = max(score.values())
        e = {k: math.exp(v - m) for k, v in score.items()}
        z = sum(e.values())
        g = _guess({k: v / z for k, v in e.items()})
        labels.append(g.lang)
        confs.append(g.confidence)
    # a lone word between two runs of one language (or at an end, next to one) joins them when it
    # is not confident (short words: unless strongly confident)
    for i in range(len(words)):
        left = labels[i - 1] if i > 0 else None
        right = labels[i + 1] if i + 1 < len(words) else None
        side = left if left is not None else right
        if (
            side is not None
            and side != labels[i]
            and (left is None or right is None or left == right)
            and LANG_SCRIPT[side] == words[i].script
            and confs[i] < (_STRONG if len(words[i].norm) <= _SHORT else _WEAK)
        ):
            labels[i] = side
    spans: list[LangSpan] = []
    i = 0
    while i < len(words):
        j = i
        while j + 1 < len(words) and labels[j + 1] == labels[i]:
            j += 1
        weights = [len(words[k].text) for k in range(i, j + 1)]
        conf = sum(c * wt for c, wt in zip(confs[i : j + 1], weights, strict=True)) / sum(weights)
        spans.append(LangSpan(words[i].start, words[j].end, labels[i], conf))
        i = j + 1
    return spans


def script_baseline(text: str) -> str:
    """Reference baseline: dominant script only (Tifinagh → zgh, Arabic → ar, Latin → fr)."""
    counts = script_counts(text)
    if not counts:
        return UND
    script = max((ARAB, TFNG, LATN), key=lambda s: (counts[s], -(ARAB, TFNG, LATN).index(s)))
    return {ARAB: "ar", TFNG: "zgh", LATN: "fr"}[script]


def langid_scores(
    samples: Sequence[tuple[str, str]], *, predict: Callable[[str], str] | None = None
) -> dict[str, Any]:
    """Evaluate on ``(text, expected_lang)`` pairs with ``identify`` (or ``predict``).

    Returns ``n``, ``accuracy``, ``per_class`` (precision, recall, f1, support for every gold or
    predicted label) and ``confusion`` (``confusion[gold][predicted] = count``).
    """
    guess = predict or (lambda t: identify(t).lang)
    confusion: dict[str, Counter[str]] = {}
    correct = 0
    for text, gold in samples:
        pred = guess(text)
        confusion.setdefault(gold, Counter())[pred] += 1
        correct += pred == gold
    labels = sorted(set(confusion) | {p for c in confusion.values() for p in c})
    per_class: dict[str, dict[str, float]] = {}
    for lab in labels:
        tp = confusion.get(lab, Counter())[lab]
        support = sum(confusion.get(lab, Counter()).values())
        predicted = sum(c[lab] for c in confusion.values())
        p = tp / predicted if predicted else 0.0
        r = tp / support if support else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        per_class[lab] = {"precision": p, "recall": r, "f1": f1, "support": support}
    n = len(samples)
    return {
        "n": n,
        "accuracy": correct / n if n else 0.0,
        "per_class": per_class,
        "confusion": {g: dict(c) for g, c in confusion.items()},
    }
