"""Phonetic keys: French words borrowed into Darija, and names in Tifinagh, meet their Latin spelling."""

from __future__ import annotations

import pytest

from manara.search.analyze import terms
from manara.text.phonetic import arabic_keys, keys, latin_keys, tifinagh_keys


def _keys_of(text: str) -> set[str]:
    """Keys of every search term of `text` (normalised, clitics stripped: the path search takes)."""
    return {k for t in terms(text) for k in keys(t)}


@pytest.mark.parametrize(
    ("darija", "french"),
    [
        ("لاكارط", "carte"),
        ("ڭريز", "grise"),
        ("البيرمي", "permis"),
        ("السيرتيفيكا", "certificat"),
        ("نيڭاتيف", "négatif"),
        ("الرجيستر", "registre"),
        ("كومرس", "commerce"),
        ("أونطروبرونور", "entrepreneur"),
        ("الطاكس", "taxe"),
    ],
)
def test_a_french_word_written_in_arabic_letters_shares_a_key(darija: str, french: str) -> None:
    assert _keys_of(darija) & _keys_of(french)


@pytest.mark.parametrize(("tifinagh", "latin"), [("ⴳⵔⵉⴼⵉⵜ", "Griffith"), ("ⴷⴰⴼⵉⵙ", "Davis")])
def test_a_name_in_tifinagh_shares_a_key_with_its_latin_spelling(tifinagh: str, latin: str) -> None:
    assert _keys_of(tifinagh) & _keys_of(latin)


def test_unrelated_words_do_not_meet() -> None:
    assert not _keys_of("كيفاش نحول") & _keys_of("carte grise permis")
    assert not _keys_of("البيرمي") & _keys_of("passeport")


def test_french_spelling_is_read_the_french_way() -> None:
    assert latin_keys("certificat") == ("srtfk", "krtfkt")  # soft c, silent final t; then as spelled
    assert latin_keys("agence")[0] == "jns"  # soft g
    assert latin_keys("taxe") == ("tks",)  # x sounds ks
    assert latin_keys("permis")[0] == "brm"  # silent final s, p and b one letter


def test_short_or_foreign_words_give_no_key() -> None:
    assert latin_keys("tva") == ()  # two consonants say too little
    assert latin_keys("le") == ()
    assert latin_keys("2024") == ()
    assert arabic_keys("carte") == () and tifinagh_keys("carte") == ()
    assert latin_keys("كارط") == ()


def test_the_article_is_also_removed_as_a_variant() -> None:
    assert arabic_keys("لاكارط") == ("lkrt", "krt")
