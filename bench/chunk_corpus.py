"""Chunk-sized texts for search benchmarks, made from the real paragraphs of ../shared/data.

`chunks(n)` draws windows of 3-8 consecutive sentences from ARCD, PIAF and service-public
paragraphs (Arabic and French, the languages a Moroccan administration's documents are in) until it
has `n` chunks of roughly 60-200 words. `questions(n)` returns real questions of the same sets.
Deterministic (seeded), so two runs measure the same work.
"""

from __future__ import annotations

import json
import random
import re
import zipfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_SENTENCE = re.compile(r"(?<=[.!?؟。])\s+")


def _squad(path: Path) -> tuple[list[str], list[str]]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paragraphs = [p["context"] for a in data for p in a["paragraphs"]]
    questions = [q["question"] for a in data for p in a["paragraphs"] for q in p["qas"]]
    return paragraphs, questions


def _service_public(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as z:
        return [z.read(n).decode("utf-8", "replace") for n in z.namelist() if n.endswith(".txt")]


def sources(shared: Path = SHARED) -> tuple[list[str], list[str]]:
    if not shared.is_dir():
        raise SystemExit(f"benchmark data not found at {shared}: it needs ../shared/data beside the repo")
    arcd_p, arcd_q = _squad(shared / "arcd" / "arcd-train.json")
    piaf_p, piaf_q = _squad(shared / "piaf" / "piaf-v1.0.json")
    sp = _service_public(shared / "service-public-fr" / "fiches_txt_v2.zip")
    return arcd_p + piaf_p + sp, arcd_q + piaf_q


def chunks(n: int, seed: int = 0, shared: Path = SHARED) -> list[str]:
    paragraphs, _ = sources(shared)
    sentences = [s for p in paragraphs for s in _SENTENCE.split(p) if len(s.split()) >= 3]
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        start = rng.randrange(len(sentences))
        out.append(" ".join(sentences[start : start + rng.randint(3, 8)]))
    return out


def questions(n: int, seed: int = 1, shared: Path = SHARED) -> list[str]:
    _, qs = sources(shared)
    return random.Random(seed).sample(qs, n)
