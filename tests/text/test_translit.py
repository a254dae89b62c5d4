"""Tests for manara.text.translit and the transliteration scores in manara.text.evaluation."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from manara.text.evaluation import load_doda_pairs, normalise_for_scoring, translit_scores
from manara.text.translit import (
    arabic_to_arabizi,
    arabizi_to_arabic,
    latin_to_tifinagh,
    tifinagh_to_latin,
)

# Every IRCAM letter (and the labialisation mark) with its standard Latin transcription.
IRCAM = [
    ("ⴰ", "a"), ("ⴱ", "b"), ("ⴳ", "g"), ("ⴳⵯ", "gʷ"), ("ⴷ", "d"), ("ⴹ", "ḍ"), ("ⴻ", "e"),
    ("ⴼ", "f"), ("ⴽ", "k"), ("ⴽⵯ", "kʷ"), ("ⵀ", "h"), ("ⵃ", "ḥ"), ("ⵄ", "ɛ"), ("ⵅ", "x"),
    ("ⵇ", "q"), ("ⵉ", "i"), ("ⵊ", "j"), ("ⵍ", "l"), ("ⵎ", "m"), ("ⵏ", "n"), ("ⵓ", "u"),
    ("ⵔ", "r"), ("ⵕ", "ṛ"), ("ⵖ", "γ"), ("ⵙ", "s"), ("ⵚ", "ṣ"), ("ⵛ", "c"), ("ⵜ", "t"),
    ("ⵟ", "ṭ"), ("ⵡ", "w"), ("ⵢ", "y"), ("ⵣ", "z"), ("ⵥ", "ẓ"), ("ⵯ", "ʷ"),
]  # fmt: skip


@pytest.mark.parametrize(("tif", "lat"), IRCAM)
def test_ircam_letter_both_ways(tif: str, lat: str) -> None:
    assert tifinagh_to_latin(tif) == lat
    assert latin_to_tifinagh(lat) == tif


def test_ircam_letters_are_the_unicode_ones() -> None:
    assert unicodedata.name("ⵖ") == "TIFINAGH LETTER YAGH"
    assert unicodedata.name("ⵯ") == "TIFINAGH MODIFIER LETTER LABIALIZATION MARK"
    assert all("\u2d30" <= ch <= "\u2d7f" for tif, _ in IRCAM for ch in tif)


@pytest.mark.parametrize(
    ("latin", "tifinagh"),
    [
        ("azul", "ⴰⵣⵓⵍ"),
        ("tamaziγt", "ⵜⴰⵎⴰⵣⵉⵖⵜ"),
        ("tamaziɣt", "ⵜⴰⵎⴰⵣⵉⵖⵜ"),  # Latin gamma
        ("tamazight", "ⵜⴰⵎⴰⵣⵉⵖⵜ"),  # ASCII gh, no IRCAM letters in the text
        ("ashal", "ⴰⵛⴰⵍ"),
        ("achal", "ⴰⵛⴰⵍ"),
        ("aεrab", "ⴰⵄⵔⴰⴱ"),  # Greek epsilon
        ("Azul", "ⴰⵣⵓⵍ"),  # no case in Tifinagh
        ("d\u0323", "ⴹ"),  # combining dot below
        ("aγ ch", "ⴰⵖ ⵛⵀ"),  # with an IRCAM letter present, 'ch' is c + h
    ],
)
def test_latin_to_tifinagh_fallbacks(latin: str, tifinagh: str) -> None:
    assert latin_to_tifinagh(latin) == tifinagh


def test_tifinagh_passthrough() -> None:
    text = "ⴰⵣⵓⵍ, 2025! (ok) مرحبا"
    assert tifinagh_to_latin(text) == "azul, 2025! (ok) مرحبا"
    assert latin_to_tifinagh("2025, 14 — «!?»") == "2025, 14 — «!?»"


@pytest.mark.parametrize(
    ("arabizi", "arabic"),
    [
        ("3afak", "عافاك"),
        ("7ta", "حتا"),
        ("kifach n9der nbeddel la carte", "كيفاش نقدر نبدّل لا كارت"),
        ("wach 3ndek l2idara?", "واش عندك لإدارا?"),
        ("ana ghadi nkhalles", "أنا غادي نخالّس"),
        ("ddar kbira", "الدار كبيرا"),  # initial geminate = assimilated article
        ("lli bghiti", "اللي بغيتي"),
        ("xhal, chhal, shhal", "شهال, شهال, شهال"),
        ("inchallah", "إن شاء الله"),
        ("lah y3tik saha", "الله يعتيك ساها"),
        ("ila bghiti", "إلا بغيتي"),
        ("ou nta", "و نتا"),
        ("chi haja", "شي حاجة"),
        ("hhhh", "هههه"),
        ("Salam", "سالام"),
    ],
)
def test_arabizi_to_arabic(arabizi: str, arabic: str) -> None:
    assert arabizi_to_arabic(arabizi) == arabic


def test_arabizi_lexicon_option() -> None:
    assert arabizi_to_arabic("wahed bhal hta 3la") == "واهد بهال هتا علا"
    assert arabizi_to_arabic("wahed bhal hta 3la", lexicon=True) == "واحد بحال حتا على"


@pytest.mark.parametrize("text", ["2025", "14", "12:30", "2025-11-23", "100 dh?", "!?.,;", "", "مرحبا 3"])
def test_arabizi_numbers_and_punctuation_untouched(text: str) -> None:
    expected = {"100 dh?": "100 ده?"}.get(text, text)
    assert arabizi_to_arabic(text) == expected


@pytest.mark.parametrize(
    ("arabic", "arabizi"),
    [
        ("عافاك", "3afak"),
        ("حتا", "7ta"),
        ("واش كاين شي حل؟", "wach kayn chi 7l?"),
        ("الله يعاونك", "llah y3awnk"),
        ("خويا", "khoya"),
        ("زوين", "zwin"),
        ("ليا", "lya"),
        ("غدا", "ghda"),
        ("قهوة", "9hwa"),
        ("مكتوب 2025", "mktob 2025"),
    ],
)
def test_arabic_to_arabizi(arabic: str, arabizi: str) -> None:
    assert arabic_to_arabizi(arabic) == arabizi


def test_seed_tifinagh_round_trip(shared_data: Path) -> None:
    lines = (shared_data / "seed" / "zgh_Tfng.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5000
    failures = [x for x in lines if latin_to_tifinagh(tifinagh_to_latin(x)) != x]
    # Lines that also contain Latin letters cannot survive (Latin is read back as Tifinagh).
    pure = [x for x in failures if not any("a" <= c.lower() <= "z" for c in x)]
    assert len(failures) / len(lines) < 0.06
    assert len(pure) <= 10


def test_translit_scores_exact_values() -> None:
    identical = [("abc def", "abc def"), ("x", "x")]
    assert translit_scores(identical, lambda s: s) == {"pairs": 2, "cer": 0.0, "word_accuracy": 1.0}
    # One substitution in a 10-character reference of one word: CER 0.1, word wrong.
    assert translit_scores([("abcdefghij", "abcdefghiX")], lambda s: s) == {
        "pairs": 1,
        "cer": 0.1,
        "word_accuracy": 0.0,
    }
    # Word accuracy is positional: 'b' is missing, so 'c' at position 2 does not count.
    scores = translit_scores([("a c", "a b c"), ("d e", "d e")], lambda s: s)
    assert scores["pairs"] == 2
    assert scores["cer"] == pytest.approx(2 / 8)
    assert scores["word_accuracy"] == pytest.approx(3 / 5)
    assert translit_scores([], lambda s: s) == {"pairs": 0, "cer": 0.0, "word_accuracy": 0.0}


def test_normalise_for_scoring() -> None:
    assert normalise_for_scoring("إِدارَة  كبيرةٌ") == "اداره كبيره"
    assert normalise_for_scoring("ڭال ڤيلا پاپا على") == "كال فيلا بابا علي"
    assert normalise_for_scoring("Téléphone ٢٠٢٥") == "telephone 2025"


def test_load_doda_pairs(tmp_path: Path) -> None:
    folder = tmp_path / "ongoing"
    folder.mkdir()
    (folder / "01.csv").write_text(
        'darija,eng,darija_ar\nwach  nta,,واش نتا\n,,فارغ\nbla,,\n"x, y",e,ش\n', encoding="utf-8"
    )
    (folder / "02.csv").write_text("other,cols\na,b\n", encoding="utf-8")
    assert load_doda_pairs(tmp_path) == [("wach nta", "واش نتا"), ("x, y", "ش")]


def test_doda_pairs_load(shared_data: Path) -> None:
    pairs = load_doda_pairs(shared_data / "doda")
    assert len(pairs) > 40_000
    scores = translit_scores(pairs[:2000], arabizi_to_arabic)
    assert scores["cer"] < 0.03
