"""`manara eval search`: metric arithmetic, a small bilingual run end to end, bad inputs, the gold set."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from manara.cli.main import app
from manara.search.evaluate import SYSTEMS, Metrics

METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")

CORPUS: list[dict[str, Any]] = [
    {
        "id": "cin-ar",
        "lang": "ar",
        "title": "تجديد البطاقة الوطنية للتعريف",
        "text": "يتم تجديد البطاقة الوطنية للتعريف الإلكترونية في مركز التسجيل التابع لمحل السكنى.\n\n"
        "الوثائق المطلوبة: البطاقة القديمة وصورتان شمسيتان. رسوم التجديد 75 درهما.",
    },
    {
        "id": "cin-fr",
        "lang": "fr",
        "title": "Renouvellement de la carte nationale",
        "text": "Le renouvellement de la carte nationale d'identité électronique se fait au centre "
        "d'enregistrement du lieu de résidence. Il faut l'ancienne carte et deux photos; le timbre coûte 75 dirhams.",
    },
    {
        "id": "naissance-ar",
        "lang": "ar",
        "title": "عقد الازدياد",
        "text": "يسلم مكتب الحالة المدنية نسخة موجزة من رسم الولادة لكل شخص مسجل في سجلات الحالة المدنية.\n\n"
        "يكفي الإدلاء بالدفتر العائلي. الخدمة مجانية.",
    },
    {
        "id": "sakan-ar",
        "lang": "ar",
        "title": "شهادة السكنى",
        "text": "تسلم شهادة السكنى من مقر الملحقة الإدارية التابعة لمحل الإقامة بعد بحث يجريه عون السلطة.\n\n"
        "يجب الإدلاء بنسخة من البطاقة الوطنية وفاتورة الماء أو الكهرباء.",
    },
    {
        "id": "passeport-fr",
        "lang": "fr",
        "title": "Passeport biométrique",
        "text": "La demande de passeport biométrique se dépose à la préfecture ou au consulat. "
        "Le timbre fiscal coûte 500 dirhams et le passeport est délivré en deux semaines.",
    },
    {
        "id": "passeport-ar",
        "lang": "ar",
        "title": "جواز السفر البيومتري",
        "text": "يودع طلب جواز السفر البيومتري بالعمالة أو القنصلية مع تنبر بقيمة 500 درهم.",
    },
    {
        "id": "tva-fr",
        "lang": "fr",
        "title": "Déclaration de TVA",
        "text": "Toute entreprise assujettie dépose sa déclaration de la taxe sur la valeur ajoutée "
        "chaque mois ou chaque trimestre sur le portail de la Direction générale des impôts.",
    },
    {
        "id": "carte-grise-fr",
        "lang": "fr",
        "title": "Carte grise",
        "text": "La carte grise d'un véhicule acheté d'occasion est mutée au centre immatriculateur "
        "avec le contrat de vente légalisé et le certificat de visite technique.",
    },
    {
        "id": "permis-fr",
        "lang": "fr",
        "title": "Permis de conduire perdu",
        "text": "En cas de perte du permis de conduire, une déclaration de perte à la police permet "
        "de demander un duplicata au centre immatriculateur.",
    },
    {
        "id": "mariage-ar",
        "lang": "ar",
        "title": "ملف الزواج",
        "text": "يودع ملف الزواج لدى قسم قضاء الأسرة ويتضمن شهادة طبية ونسخة من عقد الازدياد وشهادة السكنى.",
    },
]

QUERIES: list[dict[str, Any]] = [
    {
        "id": "q1",
        "lang": "ary",
        "query": "كيفاش نجدد البطاقة الوطنية ديالي؟",
        "relevant": ["cin-ar", "cin-fr"],
    },
    {
        "id": "q2",
        "lang": "ary-Latn",
        "query": "kifach njded lbitaqa lwatania",
        "relevant": ["cin-ar", "cin-fr"],
    },
    {
        "id": "q3",
        "lang": "fr",
        "query": "Combien coûte le renouvellement de la carte d'identité ?",
        "relevant": ["cin-fr", "cin-ar"],
    },
    {
        "id": "q4",
        "lang": "ar",
        "query": "أين أحصل على نسخة موجزة من رسم الولادة؟",
        "relevant": ["naissance-ar"],
    },
    {"id": "q5", "lang": "ary", "query": "فين كنقدر ناخد شهادة السكنى؟", "relevant": ["sakan-ar"]},
    {"id": "q6", "lang": "ary-Latn", "query": "fin n9dr nakhod chahadat sokna", "relevant": ["sakan-ar"]},
    {
        "id": "q7",
        "lang": "fr",
        "query": "Où déposer une demande de passeport biométrique ?",
        "relevant": ["passeport-fr", "passeport-ar"],
    },
    {
        "id": "q8",
        "lang": "ary",
        "query": "شنو خاصني باش نصرح بالضريبة على القيمة المضافة؟",
        "relevant": ["tva-fr"],
    },
    {"id": "q9", "lang": "fr", "query": "déclaration TVA trimestrielle entreprise", "relevant": ["tva-fr"]},
    {
        "id": "q10",
        "lang": "fr",
        "query": "mutation de la carte grise d'une voiture d'occasion",
        "relevant": ["carte-grise-fr"],
    },
    {"id": "q11", "lang": "ary-Latn", "query": "dayaat lia lpermis chno ndir", "relevant": ["permis-fr"]},
    {"id": "q12", "lang": "ar", "query": "ما هي وثائق ملف الزواج؟", "relevant": ["mariage-ar"]},
]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["eval", "search", *args])


def one_error_line(result: Any) -> str:
    assert result.exit_code == 1, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# --------------------------------------------------------------------------------------------------
# The arithmetic, on rankings computed by hand


def test_metrics_on_hand_computed_rankings() -> None:
    m = Metrics()
    # two relevant documents at ranks 2 and 7
    m.add(["x", "a", "y", "z", "w", "v", "b", "u"], {"a", "b"})
    got = m.means()
    assert got["recall@1"] == 0.0
    assert got["recall@5"] == 0.5
    assert got["recall@10"] == 1.0
    assert got["mrr@10"] == 0.5
    ideal = 1 + 1 / math.log2(3)
    assert got["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(8)) / ideal, abs=1e-4)

    # adding a perfect query and a miss: means over three queries
    m.add(["a", "b"], {"a", "b"})
    m.add(["x", "y", "z"], {"a"})
    got = m.means()
    assert m.n == 3
    assert got["recall@1"] == round((0 + 0.5 + 0) / 3, 4)
    assert got["recall@5"] == round((0.5 + 1 + 0) / 3, 4)
    assert got["recall@10"] == round((1 + 1 + 0) / 3, 4)
    assert got["mrr@10"] == round((0.5 + 1 + 0) / 3, 4)
    assert got["ndcg@10"] == pytest.approx(
        ((1 / math.log2(3) + 1 / math.log2(8)) / ideal + 1 + 0) / 3, abs=1e-4
    )


def test_metrics_cut_at_ten_and_first_relevant_only() -> None:
    m = Metrics()
    m.add([f"n{i}" for i in range(10)] + ["a"], {"a"})  # rank 11: nothing counts
    assert m.means() == dict.fromkeys(METRICS, 0.0)
    m = Metrics()
    m.add(["n0", "n1", "a", "b"], {"a", "b", "c"})  # first relevant at rank 3; a third never found
    got = m.means()
    assert got["mrr@10"] == round(1 / 3, 4)
    assert got["recall@1"] == 0.0 and got["recall@5"] == round(2 / 3, 4)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert got["ndcg@10"] == pytest.approx((1 / math.log2(4) + 1 / math.log2(5)) / ideal, abs=1e-4)
    assert Metrics().means() == {}


# --------------------------------------------------------------------------------------------------
# A small bilingual run, through the command


def test_eval_search_json_on_a_small_bilingual_set(tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "corpus.jsonl", CORPUS)
    queries = write_jsonl(tmp_path / "queries.jsonl", QUERIES)
    result = invoke("--corpus", str(corpus), "--queries", str(queries), "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    lines = result.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert set(report) == set(SYSTEMS) == {"hybrid", "lexical", "dense", "bm25"}
    for system in SYSTEMS:
        r = report[system]
        assert r["queries"] == len(QUERIES)
        for metric in METRICS:
            assert 0.0 <= r[metric] <= 1.0, (system, metric, r[metric])
        assert r["recall@1"] <= r["recall@5"] <= r["recall@10"]
        assert set(r["by_lang"]) == {"ar", "ary", "ary-Latn", "fr"}
        assert sum(v["queries"] for v in r["by_lang"].values()) == len(QUERIES)
        # a Darija question whose only source is French has its own line
        assert r["by_source_lang"]["ary→fr"]["queries"] == 1
        assert r["by_source_lang"]["ary-Latn→fr"]["queries"] == 1
        assert sum(v["queries"] for v in r["by_source_lang"].values()) == len(QUERIES)
    # the table before the JSON line names the run
    assert f"{len(QUERIES)} queries over {len(CORPUS)} documents" in result.stdout
    # Manara reads Arabizi and crosses languages; plain whitespace BM25 does neither
    assert report["hybrid"]["mrr@10"] > report["bm25"]["mrr@10"]
    assert (
        report["hybrid"]["by_lang"]["ary-Latn"]["recall@5"]
        > report["bm25"]["by_lang"]["ary-Latn"]["recall@5"]
    )


# --------------------------------------------------------------------------------------------------
# Bad inputs: one readable line, exit 1


def test_a_corpus_line_that_is_not_json_names_file_and_line(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps(CORPUS[0], ensure_ascii=False) + "\n\n{'id': 'b', 'text': 'x'}\n", "utf-8")
    queries = write_jsonl(tmp_path / "queries.jsonl", QUERIES[:1])
    line = one_error_line(invoke("--corpus", str(corpus), "--queries", str(queries)))
    assert f"{corpus}:3:" in line and "not a JSON object" in line


def test_a_relevant_id_missing_from_the_corpus_is_named(tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "corpus.jsonl", CORPUS)
    queries = write_jsonl(
        tmp_path / "queries.jsonl",
        [*QUERIES[:2], {"id": "q3", "query": "x", "relevant": ["cin-ar", "fantome"]}],
    )
    line = one_error_line(invoke("--corpus", str(corpus), "--queries", str(queries)))
    assert f"{queries}:3:" in line and "fantome" in line and "cin-ar" not in line


@pytest.mark.parametrize("which", ["corpus", "queries"])
def test_a_missing_file(tmp_path: Path, which: str) -> None:
    files = {
        "corpus": write_jsonl(tmp_path / "corpus.jsonl", CORPUS),
        "queries": write_jsonl(tmp_path / "queries.jsonl", QUERIES),
    }
    files[which] = tmp_path / "absent.jsonl"
    line = one_error_line(invoke("--corpus", str(files["corpus"]), "--queries", str(files["queries"])))
    assert f"{which} file {tmp_path / 'absent.jsonl'} does not exist" in line


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(json.dumps(CORPUS[0], ensure_ascii=False).encode("cp1256") + b"\n")
    queries = write_jsonl(tmp_path / "queries.jsonl", QUERIES[:1])
    line = one_error_line(invoke("--corpus", str(corpus), "--queries", str(queries)))
    assert f"corpus file {corpus} is not UTF-8" in line


@pytest.mark.parametrize(
    ("corpus_text", "expected"),
    [
        ("\n\n", "is empty"),
        ('["cin-ar", "texte"]\n', ":1: expected a JSON object"),
        ('{"id": "a"}\n', ":1: a corpus line needs a string 'id' and 'text'"),
        ('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n', ":2: duplicate id 'a'"),
    ],
)
def test_malformed_corpus(tmp_path: Path, corpus_text: str, expected: str) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(corpus_text, "utf-8")
    queries = write_jsonl(tmp_path / "queries.jsonl", [{"query": "x", "relevant": ["a"]}])
    assert expected in one_error_line(invoke("--corpus", str(corpus), "--queries", str(queries)))


def test_queries_need_a_relevant_list_and_both_files_are_needed(tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "corpus.jsonl", CORPUS)
    queries = write_jsonl(tmp_path / "queries.jsonl", [{"id": "q", "query": "x", "relevant": []}])
    assert "non-empty 'relevant' list" in one_error_line(
        invoke("--corpus", str(corpus), "--queries", str(queries))
    )
    assert "give --corpus and --queries, or --gold" in one_error_line(invoke("--corpus", str(corpus)))


def test_a_folder_instead_of_a_file(tmp_path: Path) -> None:
    queries = write_jsonl(tmp_path / "queries.jsonl", QUERIES)
    one_error_line(invoke("--corpus", str(tmp_path), "--queries", str(queries)))


# --------------------------------------------------------------------------------------------------
# The gold set shipped with Manara


@pytest.mark.slow
def test_gold_set_runs() -> None:
    result = invoke("--gold", "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(report) == set(SYSTEMS)
    assert "186 queries over 39 documents" in result.stdout
    for system in SYSTEMS:
        assert report[system]["queries"] == 186
        assert set(report[system]["by_lang"]) == {"ar", "ary", "ary-Latn", "fr", "zgh"}
        assert all(0.0 <= report[system][m] <= 1.0 for m in METRICS)
    # the claim the gold set exists to check: hybrid beats plain BM25 by a wide margin
    assert report["hybrid"]["mrr@10"] > report["bm25"]["mrr@10"] + 0.1
    assert report["hybrid"]["recall@5"] > report["bm25"]["recall@5"] + 0.1
