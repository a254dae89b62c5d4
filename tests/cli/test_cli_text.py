"""`manara text …` through the real CLI (no workspace needed)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from manara.cli.main import app

runner = CliRunner()


def test_normalize_with_tokens_as_json() -> None:
    text = "L’État: بطاقة التعريف ٢٠٢٥"
    result = runner.invoke(app, ["text", "normalize", text, "--tokens", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["normalized"] == "l'etat: بطاقه التعريف 2025"
    assert [t["token"] for t in body["tokens"]] == ["etat", "بطاقه", "التعريف", "2025"]
    assert [text[t["start"] : t["end"]] for t in body["tokens"]] == ["État", "بطاقة", "التعريف", "٢٠٢٥"]


def test_normalize_reads_standard_input() -> None:
    result = runner.invoke(app, ["text", "normalize", "-"], input="الدّولة\n")
    assert result.exit_code == 0 and result.stdout.strip() == "الدوله"


def test_translit_both_scripts() -> None:
    to_arabic = runner.invoke(app, ["text", "translit", "3afak", "--to", "arabic"])
    assert to_arabic.exit_code == 0 and to_arabic.stdout.strip() == "عافاك"
    to_latin = runner.invoke(app, ["text", "translit", "ⴰⵣⵓⵍ", "--to", "latin"])
    assert to_latin.exit_code == 0 and to_latin.stdout.strip() == "azul"
    back = runner.invoke(app, ["text", "translit", "azul", "--to", "tifinagh"])
    assert back.stdout.strip() == "ⴰⵣⵓⵍ"


def test_translit_unknown_direction_is_one_error_line() -> None:
    result = runner.invoke(app, ["text", "translit", "x", "--to", "klingon"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: --to must be one of arabic, arabizi, latin, tifinagh, not 'klingon'"
    ]


def test_langid_with_spans() -> None:
    text = "بغيت نجدد la carte d'identité ديالي"
    result = runner.invoke(app, ["text", "langid", text, "--spans", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert [s["lang"] for s in body["spans"]] == ["ary", "fr", "ary"]
    assert [s["text"] for s in body["spans"]] == ["بغيت نجدد", "la carte d'identité", "ديالي"]
    assert all(text[s["start"] : s["end"]] == s["text"] for s in body["spans"])
    tifinagh = json.loads(runner.invoke(app, ["text", "langid", "ⴰⵣⵓⵍ ⴼⵍⵍⴰⵡⵏ", "--json"]).stdout)
    assert tifinagh["lang"] == "zgh" and tifinagh["confidence"] > 0.9


def test_eval_translit_on_a_doda_shaped_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "doda" / "ongoing"
    folder.mkdir(parents=True)
    (folder / "01.csv").write_text("darija,eng,darija_ar\n3afak,,عافاك\nchokran bzaf,,شكران بزاف\n", "utf-8")
    result = runner.invoke(app, ["eval", "translit", "--doda", str(tmp_path / "doda"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["pairs"] == 2
    systems = {(r["direction"], r["system"]): r for r in report["results"]}
    identity = systems[("arabizi->arabic", "identity")]
    rules = systems[("arabizi->arabic", "manara-rules")]
    assert rules["cer_raw"] < identity["cer_raw"], "the rules must beat copying the input"
    missing = runner.invoke(app, ["eval", "translit", "--doda", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "no DODa pairs" in missing.stderr


def test_eval_langid_sets_are_held_out_and_labelled(shared_data) -> None:  # type: ignore[no-untyped-def]
    """The sets `manara eval langid` scores: held-out splits and evaluation-only data, nothing trained on."""
    from manara.text.langid_eval import evaluation_sets, load_splits

    splits = load_splits(shared_data)
    train_texts = {text for text, _ in splits["train"]}
    sets = evaluation_sets(shared_data, splits)
    assert len(sets["DODa darija, Arabizi (ary-Latn)"]) > 40_000
    for name, samples in sets.items():
        assert samples, name
        if not name.startswith("short"):
            assert not train_texts & {text for text, _ in samples}, f"{name} overlaps the training data"
    assert {lang for _, lang in sets["DODa darija_ar, Arabic script (ary)"]} == {"ary"}


def test_eval_langid_without_data_is_one_error_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["eval", "langid", "--shared", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no evaluation data at")
