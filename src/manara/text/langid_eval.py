"""Evaluation sets and scores of the language identifier (`manara eval langid`, and its training script).

Held-out splits are fixed (ARCD/PIAF documents whose index % 5 == 4, the last 1,000 lines of each
NLLB-Seed file); DODa, XQuAD and the service-public.fr fiches are evaluation-only sets the model never
saw. Everything is read in place from `../shared/data`; nothing is copied into the package.
"""

from __future__ import annotations

import csv
import json
import random
import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from manara.text.langid import LANGS, identify_spans, langid_scores, script_baseline, words_of
from manara.text.translit import arabic_to_arabizi, tifinagh_to_latin

HOLDOUT = 1000  # last Seed lines kept for evaluation
SPAN_PAIRS = (
    ("ary-Latn", "fr"), ("ary-Latn", "en"), ("ary", "fr"), ("ar", "fr"),
    ("ary", "en"), ("fr", "en"), ("zgh", "fr"), ("zgh-Latn", "fr"),
)  # fmt: skip

Samples = list[tuple[str, str]]
_SENT = re.compile(r"(?<=[.!?؟])\s+")


def sentences(paragraph: str, min_chars: int = 20) -> list[str]:
    """Split a paragraph on sentence-final punctuation; keep sentences of ``min_chars`` or more."""
    return [s.strip() for s in _SENT.split(paragraph) if len(s.strip()) >= min_chars]


_VOWELS = set("aeiou")
_DIGRAPHS = {"ch", "kh", "gh", "sh"}


def vowelise(text: str, rng: random.Random, p: float = 0.4) -> str:
    """Arabizi as people type it writes short vowels that Arabic script leaves out ("njdd" →
    "nejded"): between two different consonants of a word (not a ch/kh/gh/sh digraph), insert "e"
    (or, one time in three, "a") with probability ``p``. Seeded: deterministic."""
    out: list[str] = []
    for i, ch in enumerate(text):
        out.append(ch)
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if (
            ch.isalnum()
            and nxt.isalnum()
            and ch not in _VOWELS
            and nxt not in _VOWELS
            and ch != nxt
            and ch + nxt not in _DIGRAPHS
            and not (ch.isdigit() and nxt.isdigit())
            and rng.random() < p
        ):
            out.append("a" if rng.random() < 1 / 3 else "e")
    return "".join(out)


def squad_docs(path: Path, *, questions: bool = False) -> list[list[str]]:
    """The paragraphs (contexts) of each document of a SQuAD-format file, in file order; with
    ``questions``, each document's questions follow its paragraphs."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    out: list[list[str]] = []
    for doc in data:
        texts = [p["context"] for p in doc["paragraphs"]]
        if questions:
            texts += [qa["question"] for p in doc["paragraphs"] for qa in p["qas"]]
        out.append(texts)
    return out


def seed_lines(shared: Path, name: str) -> list[str]:
    return (shared / "seed" / f"{name}.txt").read_text(encoding="utf-8").splitlines()


def load_splits(shared: Path) -> dict[str, Any]:
    """Train / dev / eval splits (see the module docstring)."""
    arcd = squad_docs(shared / "arcd" / "arcd-train.json", questions=True)
    piaf = squad_docs(shared / "piaf" / "piaf-v1.0.json")
    seed = {name: seed_lines(shared, name) for name in ("eng_Latn", "ary_Arab", "zgh_Tfng")}
    splits: dict[str, Any] = {"train": [], "fit": [], "dev": [], "eval": {}, "sizes": {}}

    def add_docs(docs: list[list[str]], lang: str) -> list[str]:
        held: list[str] = []
        for i, paragraphs in enumerate(docs):
            if i % 5 == 4:
                held.extend(paragraphs)
                continue
            for p in paragraphs:
                splits["train"].append((p, lang))
                if i % 5 == 3:
                    splits["dev"].extend((s, lang) for s in sentences(p))
                else:
                    splits["fit"].append((p, lang))
        return held

    arcd_held = add_docs(arcd, "ar")
    piaf_held = add_docs(piaf, "fr")
    splits["eval"]["ARCD held-out docs, sentences and questions (ar)"] = [
        (s, "ar") for p in arcd_held for s in sentences(p, min_chars=10)
    ]
    splits["eval"]["PIAF held-out docs, sentences (fr)"] = [
        (s, "fr") for p in piaf_held for s in sentences(p)
    ]

    synth: dict[str, tuple[str, Callable[[str], str] | None, str]] = {
        "en": ("eng_Latn", None, "Seed eng held-out (en)"),
        "ary": ("ary_Arab", None, "Seed ary held-out (ary)"),
        "zgh": ("zgh_Tfng", None, "Seed zgh held-out (zgh)"),
        "ary-Latn": ("ary_Arab", arabic_to_arabizi, "Seed ary held-out → Arabizi (ary-Latn, synthetic)"),
        "zgh-Latn": ("zgh_Tfng", tifinagh_to_latin, "Seed zgh held-out → IRCAM Latin (zgh-Latn, synthetic)"),
    }
    for lang, (name, conv, label) in synth.items():
        lines = seed[name]
        train_lines = lines[:-HOLDOUT]
        seen = set(train_lines)  # Seed repeats a few sentences: a held-out line must be unseen
        held = [x for x in lines[-HOLDOUT:] if x not in seen]
        if conv is not None:
            train_lines = [conv(x) for x in train_lines]
            held = [conv(x) for x in held]
        n_fit = len(train_lines) - 400
        extra: list[str] = []
        if lang == "ary-Latn":  # a second, vowelled copy of the synthetic Arabizi (see vowelise)
            rng = random.Random(20260)
            extra = [vowelise(x, rng) for x in train_lines]
        splits["train"].extend((x, lang) for x in train_lines + extra)
        splits["fit"].extend((x, lang) for x in train_lines[:n_fit] + extra[:n_fit])
        splits["dev"].extend((x, lang) for x in train_lines[n_fit:])
        splits["eval"][label] = [(x, lang) for x in held]

    for lang in LANGS:
        texts = [t for t, g in splits["train"] if g == lang]
        splits["sizes"][lang] = {"texts": len(texts), "chars": sum(len(t) for t in texts)}
    return splits


def extra_eval(shared: Path) -> dict[str, Samples]:
    """Evaluation-only sets: DODa (CC BY-NC, never trained on) and XQuAD (not in training)."""
    out: dict[str, Samples] = {}
    latn: Samples = []
    arab: Samples = []
    for path in sorted((shared / "doda" / "ongoing").glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                if (row.get("darija") or "").strip():
                    latn.append((row["darija"], "ary-Latn"))
                if (row.get("darija_ar") or "").strip():
                    arab.append((row["darija_ar"], "ary"))
    out["DODa darija, Arabizi (ary-Latn)"] = latn
    out["DODa darija_ar, Arabic script (ary)"] = arab
    for code, lang in (("ar", "ar"), ("en", "en")):
        path = shared / "xquad" / f"xquad.{code}.json"
        if path.is_file():
            docs = squad_docs(path)
            out[f"XQuAD {code} sentences ({lang}, not trained on)"] = [
                (s, lang) for d in docs for p in d for s in sentences(p)
            ]
    spf = shared / "service-public-fr" / "fiches_txt_v2.zip"
    if spf.is_file():
        fr: Samples = []
        with zipfile.ZipFile(spf) as z:
            for name in sorted(z.namelist())[:300]:
                if name.endswith(".txt"):
                    text = z.read(name).decode("utf-8", errors="replace")
                    fr.extend((s, "fr") for s in sentences(text.replace("\n", " "))[:5])
        out["service-public.fr fiches, sentences (fr, not trained on)"] = fr
    return out


def fragments(samples: Samples, sizes: Sequence[int] = (1, 2, 3)) -> Samples:
    """Short texts: the first k words of each sample (k in ``sizes``)."""
    out: Samples = []
    for text, lang in samples:
        ws = words_of(text)
        for k in sizes:
            if len(ws) >= k:
                out.append((text[ws[0].start : ws[k - 1].end], lang))
    return out


def span_eval(
    sets: dict[str, Samples], pairs: Sequence[tuple[str, str]], n: int = 200
) -> list[tuple[str, int, float]]:
    """Word-level accuracy of ``identify_spans`` on synthetic code-switched texts: the first 5 words
    of a held-out text of language A, 3 words of one of B, 4 more words of A (A B A)."""
    by_lang: dict[str, list[str]] = {}
    for samples in sets.values():
        for text, lang in samples:
            if len(words_of(text)) >= 9:
                by_lang.setdefault(lang, []).append(text)
    out: list[tuple[str, int, float]] = []
    for a, b in pairs:
        correct = total = 0
        for i in range(n):
            ta, tb = by_lang[a][i], by_lang[b][i]
            wa, wb = words_of(ta), words_of(tb)
            parts = [
                (ta[wa[0].start : wa[4].end], a),
                (tb[wb[0].start : wb[2].end], b),
                (ta[wa[5].start : wa[8].end], a),
            ]
            text, gold = "", []
            for piece, lang in parts:
                text += (" " if text else "") + piece
                gold += [lang] * len(words_of(piece))
            spans = identify_spans(text)
            for w, g in zip(words_of(text), gold, strict=True):
                pred = next((s.lang for s in spans if s.start <= w.start < s.end), "und")
                correct += pred == g
                total += 1
        out.append((f"{a} + {b} + {a}", n, correct / total))
    return out


def evaluate(sets: dict[str, Samples]) -> tuple[list[tuple[str, int, float, float]], dict[str, Any]]:
    rows = []
    pooled: Samples = []
    for name, samples in sets.items():
        model_acc = langid_scores(samples)["accuracy"]
        base_acc = langid_scores(samples, predict=script_baseline)["accuracy"]
        rows.append((name, len(samples), model_acc, base_acc))
        pooled.extend(samples)
    return rows, langid_scores(pooled)


def evaluation_sets(shared: Path, splits: dict[str, Any] | None = None) -> dict[str, Samples]:
    """Every evaluation set: the held-out splits, the evaluation-only sets, and two-word fragments."""
    splits = splits or load_splits(shared)
    held: dict[str, Samples] = splits["eval"]
    sets: dict[str, Samples] = dict(held)
    sets.update(extra_eval(shared))
    # Tifinagh is identified by its script alone: short fragments of it would only flatter the score
    sets["short: first 2 words of the held-out sets above"] = fragments(
        [sample for name, samples in held.items() if name != "Seed zgh held-out (zgh)" for sample in samples],
        sizes=(2,),
    )
    return sets


def report(shared: Path) -> dict[str, Any]:
    """Accuracy per set against the script-only baseline, pooled scores and span accuracy."""
    splits = load_splits(shared)
    rows, pooled = evaluate(evaluation_sets(shared, splits))
    spans = span_eval(splits["eval"], SPAN_PAIRS, n=100)
    return {
        "sets": [
            {"set": n, "n": k, "manara": round(m, 4), "script_baseline": round(b, 4)} for n, k, m, b in rows
        ],
        "pooled_accuracy": round(pooled["accuracy"], 4),
        "spans": [{"mix": name, "texts": k, "word_accuracy": round(acc, 4)} for name, k, acc in spans],
    }
