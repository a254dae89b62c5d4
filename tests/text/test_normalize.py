"""Search normalisation and tokens: table-driven, with offsets checked against the original text."""

from __future__ import annotations

import pytest

from manara.text.normalize import normalize, normalize_text
from manara.text.tokenize import strip_arabic_clitics, tokenize


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("الدّولةُ المغربيّة", "الدوله المغربيه"),  # tashkeel dropped, ة → ه
        ("أحمد إبراهيم آمال ٱلله", "احمد ابراهيم امال الله"),  # alef forms
        ("مستشفى", "مستشفي"),  # ى → ي
        ("الســــلام", "السلام"),  # tatweel
        ("ﻻ ﺍﻟﻤﻐﺮﺏ", "لا المغرب"),  # presentation forms from PDFs (NFKC)
        ("رقم ٠٦٦١٢٣٤٥٦٧ و ۱۲۳", "رقم 0661234567 و 123"),  # Arabic-Indic and Eastern digits
        ("\u202bمرحبا\u202c\u200f", "مرحبا"),  # bidi controls
        ("ڭلسة ڤيلا پاسبور", "كلسه فيلا باسبور"),  # Darija letters
        ("واش كاين؟ نعم، كاين", "واش كاين? نعم, كاين"),  # Arabic punctuation
        ("L’ÉTAT Français, Œuvre", "l'etat francais, oeuvre"),  # case, accents, ligature, apostrophe
        ("e\u0301te\u0301", "ete"),  # decomposed accents
        ("n9der\u00a0nbeddel", "n9der nbeddel"),  # Arabizi digits kept, NBSP → space
        ("ⵜⴰⵎⴰⵣⵉⵖⵜ", "ⵜⴰⵎⴰⵣⵉⵖⵜ"),  # Tifinagh untouched
        ("", ""),
    ],
)
def test_normalize(original: str, expected: str) -> None:
    norm = normalize(original)
    assert norm.text == expected
    assert normalize_text(original) == expected
    assert len(norm.starts) == len(norm.ends) == len(norm.text)


def test_offsets_highlight_the_original_characters() -> None:
    original = "طلب شهادة السّكنى في الدّار البيضاء"
    norm = normalize(original)
    start = norm.text.index("السكني")
    s, e = norm.to_original(start, start + len("السكني"))
    assert original[s:e] == "السّكنى"  # the shadda inside is part of the highlight
    start = norm.text.index("الدار")
    s, e = norm.to_original(start, start + len("الدار"))
    assert original[s:e] == "الدّار"


def test_offsets_through_a_ligature_and_a_dropped_mark() -> None:
    original = "ﻻ تنسَ"
    norm = normalize(original)
    assert norm.text == "لا تنس"
    assert norm.to_original(0, 1) == (0, 1) and norm.to_original(1, 2) == (0, 1)  # both letters from ﻻ
    s, e = norm.to_original(3, 6)
    assert original[s:e] == "تنسَ"
    with pytest.raises(ValueError, match="outside"):
        norm.to_original(5, 9)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("L’État et l'administration d’aujourd’hui", ["etat", "et", "administration", "aujourd'hui"]),
        ("qu'il s'inscrive jusqu'à lundi", ["il", "inscrive", "a", "lundi"]),
        ("kifach n9der nbeddel la carte?", ["kifach", "n9der", "nbeddel", "la", "carte"]),
        ("بغيت نجدّد البطاقة الوطنية ديالي", ["بغيت", "نجدد", "البطاقه", "الوطنيه", "ديالي"]),
        ("CIN: AB123456 — tél. 06 61 23 45 67", ["cin", "ab123456", "tel", "06", "61", "23", "45", "67"]),
        ("ⴰⵣⵓⵍ ⴼⵍⵍⴰⵡⵏ!", ["ⴰⵣⵓⵍ", "ⴼⵍⵍⴰⵡⵏ"]),
    ],
)
def test_tokenize(text: str, tokens: list[str]) -> None:
    got = tokenize(text)
    assert [t.text for t in got] == tokens
    for t in got:  # every token maps back onto the original characters it came from
        assert normalize_text(text[t.start : t.end]).endswith(t.text)


@pytest.mark.parametrize(
    ("word", "stem"),
    [
        ("والمواطنين", "مواطن"),
        ("بالمغرب", "مغرب"),
        ("وكتابها", "كتاب"),
        ("الله", "الله"),  # too short to strip: the stem keeps three letters
        ("carte", "carte"),  # not Arabic
    ],
)
def test_light_arabic_clitics(word: str, stem: str) -> None:
    assert strip_arabic_clitics(word) == stem


def test_clitic_stripping_is_opt_in() -> None:
    assert [t.text for t in tokenize("بالمغرب")] == ["بالمغرب"]
    assert [t.text for t in tokenize("بالمغرب", arabic_clitics=True)] == ["مغرب"]
