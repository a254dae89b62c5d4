"""The evaluation-set converters (bench/datasets) on the real data in ../shared/data.

Expectations are computed from the source files directly (json, zipfile), not through the
converters' own helpers. Without ../shared/data the tests skip, except under CI=true where they fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench.datasets import arcd, piaf, seed, service_public, xquad
from bench.datasets.common import Converted

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared" / "data"

Docs = dict[str, dict[str, Any]]
Queries = list[dict[str, Any]]


@pytest.fixture(scope="module")
def shared() -> Path:
    if not SHARED.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SHARED} is missing: CI must have ../shared/data beside the repository")
        pytest.skip(f"evaluation data not found at {SHARED} (clone the project with ../shared beside it)")
    return SHARED


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("evalsets")


def load(result: Converted) -> tuple[Docs, Queries]:
    """Read back what a converter wrote, checking the format on the way."""
    corpus_lines = result.corpus_path.read_text(encoding="utf-8").splitlines()
    query_lines = result.queries_path.read_text(encoding="utf-8").splitlines()
    docs_list = [json.loads(line) for line in corpus_lines]
    queries = [json.loads(line) for line in query_lines]
    assert len(docs_list) == result.corpus and len(queries) == result.queries
    docs = {d["id"]: d for d in docs_list}
    assert len(docs) == len(docs_list), "corpus ids are not unique"
    assert len({q["id"] for q in queries}) == len(queries), "query ids are not unique"
    for d in docs_list:
        assert set(d) <= {"id", "text", "title", "lang"} and isinstance(d["id"], str)
        assert d["text"].strip(), d["id"]
    for q in queries:
        assert set(q) <= {"id", "query", "relevant", "lang"}
        assert q["query"].strip(), q["id"]
        assert q["relevant"] and all(rid in docs for rid in q["relevant"]), q["id"]
        assert len(set(q["relevant"])) == len(q["relevant"]), q["id"]
    assert result.relevant == sum(len(q["relevant"]) for q in queries)
    return docs, queries


def squad(path: Path) -> list[tuple[str, dict[str, Any], str]]:
    """(article title, question, paragraph context) for every question of a SQuAD file."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [(a["title"], qa, p["context"]) for a in data for p in a["paragraphs"] for qa in p["qas"]]


def check_squad(result: Converted, source: Path, lang: str) -> tuple[Docs, Queries]:
    """Common checks of a SQuAD-derived set: every question kept, its paragraph relevant."""
    docs, queries = load(result)
    rows = squad(source)
    by_id = {qa["id"]: (title, qa, context) for title, qa, context in rows}
    assert [q["id"] for q in queries] == [qa["id"] for _, qa, _ in rows]
    assert len(docs) == len({context.strip() for _, _, context in rows})
    paragraphs_of: dict[str, set[str]] = {}  # question text -> texts of the paragraphs it is asked of
    for _, qa, context in rows:
        paragraphs_of.setdefault(" ".join(qa["question"].split()), set()).add(context.strip())
    for q in queries:
        title, qa, context = by_id[q["id"]]
        own = docs[q["relevant"][0]]  # its own paragraph comes first
        assert own["text"] == context.strip()
        assert own["title"] == title.replace("_", " ")
        assert own["lang"] == lang and q["lang"] == lang
        assert " ".join(qa["answers"][0]["text"].split()) in " ".join(own["text"].split())
        for rid in q["relevant"][1:]:
            # Another relevant paragraph repeats this one, or the same question was asked of it.
            text = " ".join(docs[rid]["text"].split())
            asked_of = {" ".join(p.split()) for p in paragraphs_of[" ".join(qa["question"].split())]}
            assert " ".join(own["text"].split()) in text or text in asked_of, rid
    return docs, queries


def test_arcd(shared: Path, out: Path) -> None:
    result = arcd.convert(shared, out)
    assert result.name == "arcd" and result.out_dir == out / "arcd"
    assert result.queries == 693
    assert result.corpus <= 231
    docs, queries = check_squad(result, shared / arcd.SOURCE, "ar")
    # The crowd-sourcing debris ("- ...؟ ال") is gone.
    assert not any(q["query"].startswith("-") or q["query"].endswith(" ال") for q in queries)
    # A paragraph repeated inside a longer one: questions on it accept both.
    q = next(q for q in queries if q["id"] == "969331847966")  # "من هو جمال أحمد حمزة خاشقجي؟"
    short, long = (" ".join(docs[rid]["text"].split()) for rid in q["relevant"])
    assert len(q["relevant"]) == 2 and short in long
    # Written as UTF-8, not as \u escapes.
    assert "خاشقجي" in result.corpus_path.read_text(encoding="utf-8")


def test_piaf(shared: Path, out: Path) -> None:
    result = piaf.convert(shared, out)
    assert (result.queries, result.corpus) == (3835, 761)
    docs, queries = check_squad(result, shared / piaf.SOURCE, "fr")
    assert Counter(len(q["relevant"]) for q in queries)[1] > 3800


def test_xquad_ar_en(shared: Path, out: Path) -> None:
    result = xquad.convert(shared, out)
    assert (result.queries, result.corpus) == (1190, 240)
    docs, queries = load(result)
    ar = {qa["id"]: qa for _, qa, _ in squad(shared / xquad.SOURCE_AR)}
    en = {qa["id"]: (qa, context) for _, qa, context in squad(shared / xquad.SOURCE_EN)}
    assert set(ar) == set(en) == {q["id"] for q in queries}
    for q in queries:
        assert q["lang"] == "ar" and q["query"] == ar[q["id"]]["question"].strip()
        en_qa, en_context = en[q["id"]]
        doc = docs[q["relevant"][0]]
        assert doc["lang"] == "en" and doc["text"] == en_context.strip()
        assert " ".join(en_qa["answers"][0]["text"].split()) in " ".join(doc["text"].split())


def test_service_public(shared: Path, out: Path) -> None:
    result = service_public.convert(shared, out)
    assert result.queries == 535
    docs, queries = load(result)
    with zipfile.ZipFile(shared / service_public.SOURCE_ZIP) as archive:
        chunks = {
            Path(info.filename).stem: archive.read(info).decode("utf-8").strip()
            for info in archive.infolist()
            if not info.is_dir()
        }
    assert len(chunks) == 3588
    questions = json.loads((shared / service_public.SOURCE_QUESTIONS).read_text(encoding="utf-8"))
    fiches = {stem.split("_", 1)[0] for stem in chunks}
    assert sum(fiche in fiches for fiche, _, _ in questions) == 65
    # Every chunk is in the corpus, text intact; plus one answer_context document per other question.
    assert all(docs[stem]["text"] == text for stem, text in chunks.items())
    assert len(docs) == len(chunks) + 535 - 65
    assert all(d["lang"] == "fr" and d["title"] for d in docs.values())
    by_id = {q["id"]: q for q in queries}
    for n, (fiche, question, context) in enumerate(questions):
        q = by_id[f"spf-{n}"]
        assert q["query"] == question.strip() and q["lang"] == "fr"
        if fiche in fiches:
            own = {stem for stem in chunks if stem.startswith(fiche + "_")}
            assert own and own <= set(q["relevant"])
            # Any other relevant chunk is a verbatim copy of one of the fiche's chunks.
            own_texts = {" ".join(chunks[stem].split()) for stem in own}
            assert all(" ".join(docs[rid]["text"].split()) in own_texts for rid in q["relevant"])
        else:
            assert q["relevant"] == [f"ctx-{n}"]
            assert docs[f"ctx-{n}"]["text"] == context.strip()


@pytest.mark.parametrize("source", ["ary", "zgh"])
def test_seed(shared: Path, out: Path, tmp_path: Path, source: str) -> None:
    result = seed.convert(shared, out, source=source)
    assert result.name == f"seed-{source}-en"
    assert result.queries == 500
    docs, queries = load(result)
    english = (shared / "seed" / "eng_Latn.txt").read_text(encoding="utf-8").split("\n")[:-1]
    other = (shared / seed.SOURCES[source]).read_text(encoding="utf-8").split("\n")[:-1]
    assert len(english) == len(other) == len(docs) == 5000
    duplicated = {line for line, count in Counter(english).items() if count > 1}
    numbers = []
    for q in queries:
        prefix, number = q["id"].split("-")
        n = int(number)
        numbers.append(n)
        assert prefix == source == q["lang"]
        assert q["relevant"] == [f"en-{n}"]
        assert q["query"] == other[n - 1]
        assert docs[f"en-{n}"]["text"] == english[n - 1] and docs[f"en-{n}"]["lang"] == "en"
        assert english[n - 1] not in duplicated
    assert numbers == sorted(numbers) and len(set(numbers)) == 500
    # Deterministic: a second run writes the same queries.
    again = seed.convert(shared, tmp_path, source=source)
    assert again.queries_path.read_bytes() == result.queries_path.read_bytes()


def test_max_queries_and_max_corpus(shared: Path, out: Path, tmp_path: Path) -> None:
    full_docs, full_queries = load(arcd.convert(shared, out))
    small = arcd.convert(shared, tmp_path, max_queries=50, max_corpus=60)
    docs, queries = load(small)
    assert len(queries) == 50
    positions = [[q["id"] for q in full_queries].index(q["id"]) for q in queries]
    assert positions == sorted(positions)  # original order kept
    needed = {rid for q in queries for rid in q["relevant"]}
    assert needed <= set(docs) and len(docs) == max(60, len(needed))
    assert [d for d in full_docs if d in docs] == list(docs)
    again = arcd.convert(shared, tmp_path / "again", max_queries=50, max_corpus=60)
    assert again.queries_path.read_bytes() == small.queries_path.read_bytes()
    assert again.corpus_path.read_bytes() == small.corpus_path.read_bytes()


def test_cli_end_to_end(shared: Path, tmp_path: Path) -> None:
    script = REPO_ROOT / "bench" / "datasets" / "convert.py"
    run = subprocess.run(
        [sys.executable, str(script), "--shared", str(shared), "--only", "arcd", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("arcd ")
    assert "queries=   693" in lines[0] and "corpus=   231" in lines[0]
    assert len((tmp_path / "arcd" / "queries.jsonl").read_text(encoding="utf-8").splitlines()) == 693

    missing = subprocess.run(
        [sys.executable, str(script), "--shared", str(tmp_path / "nowhere"), "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2
    assert missing.stdout == "" and len(missing.stderr.splitlines()) == 1
    assert "shared data folder not found" in missing.stderr
