"""Language identification with the shipped model (no training here).

The sentences below were written for these tests (Moroccan administrative and everyday text), not
taken from any dataset.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from manara.text.langid import LangGuess, LangSpan, identify, identify_spans, langid_scores, script_baseline

AR = [
    "يجب على المواطن تقديم طلب تجديد البطاقة الوطنية للتعريف الإلكترونية قبل انتهاء صلاحيتها.",
    "تعلن وزارة الداخلية عن فتح باب الترشيح لمباراة توظيف المتصرفين من الدرجة الثانية.",
    "يمكن تحميل استمارة التصريح بالدخل من الموقع الإلكتروني للمديرية العامة للضرائب.",
    "تتولى الجماعة الترابية تسليم شهادة السكنى بعد التحقق من الوثائق المطلوبة.",
    "يحدد هذا المرسوم شروط وكيفيات معالجة المعطيات ذات الطابع الشخصي.",
    "ينبغي إرفاق الطلب بنسخة مصادق عليها من عقد الازدياد وصورتين شمسيتين حديثتين.",
]
ARY = [
    "واش خاصني نمشي للمقاطعة باش نجيب شهادة السكنى ولا نقدر ندير الطلب فالأنترنيت؟",
    "بغيت نعرف شحال كيخلصو على الباسبور ديال الدراري الصغار",
    "فين كاين البيرو اللي كيعطيو فيه الورقة ديال الخدمة؟",
    "الموظف قاليا رجع غدا حيت السيستيم طايح",
    "شنو هوما الوراق اللي خاصين باش نسجل ولدي فالمدرسة؟",
    "ماعرفتش كيفاش نخلص الضريبة ديال الطوموبيل",
]
ARY_LATN = [
    "salam, wach khassni nmchi l9iyada bach nakhod chahadat sokna?",
    "chhal kaykhlsou 3la passport dyal drari sghar?",
    "fin kayn lbureau li kay3tiw fih lwar9a dyal lkhedma",
    "lmowadaf galia rje3 ghedda 7it system tay7",
    "bghit n3ref kifach nkhelles dariba dyal tomobil",
    "3afak 3tini lmaw3id dyal lbaladiya",
]
FR = [
    "La demande de renouvellement de la carte nationale d'identité électronique se fait auprès du commissariat.",
    "Veuillez joindre une copie légalisée de l'acte de naissance et deux photos d'identité récentes.",
    "Le délai de traitement du dossier est de quinze jours ouvrables à compter de la date de dépôt.",
    "Les entreprises doivent déclarer leurs salariés à la CNSS avant la fin du mois.",
    "Le paiement de la vignette automobile peut être effectué en ligne ou dans une agence bancaire.",
]
EN = [
    "Applicants must submit the completed form together with a certified copy of their birth certificate.",
    "The office is closed on public holidays and opens again on Monday morning.",
    "You can pay the annual vehicle tax online or at any participating bank branch.",
    "Please bring your national identity card and proof of residence to the appointment.",
    "The processing time for a new passport is usually about two weeks.",
]
ZGH_LATN = [
    "tamaziɣt tga tutlayt tunṣibt i uwnkid",
    "azul fllawn, mamnk a tgam?",
    "riɣ ad ssnɣ mani ɣ tlla tinml n taddart",
    "tanmmirt ɣef tallalt nnk, a gma",
    "ass n usggas amaynu n imaziɣn iga yat tfaska tamqqrant",
    "iḥwaj umussu ad issufɣ tirawt n tlalit ɣ tɣiwant",
]
ZGH = [
    "ⵜⴰⵎⴰⵣⵉⵖⵜ ⵜⴳⴰ ⵜⵓⵜⵍⴰⵢⵜ ⵜⵓⵏⵚⵉⴱⵜ ⵉ ⵓⵡⵏⴽⵉⴷ",
    "ⴰⵣⵓⵍ ⴼⵍⵍⴰⵡⵏ, ⵎⴰⵎⵏⴽ ⴰ ⵜⴳⴰⵎ?",
    "ⵔⵉⵖ ⴰⴷ ⵙⵙⵏⵖ ⵎⴰⵏⵉ ⵖ ⵜⵍⵍⴰ ⵜⵉⵏⵎⵍ ⵏ ⵜⴰⴷⴷⴰⵔⵜ",
    "ⴰⵙⵙ ⵏ ⵓⵙⴳⴳⴰⵙ ⴰⵎⴰⵢⵏⵓ ⵏ ⵉⵎⴰⵣⵉⵖⵏ ⵉⴳⴰ ⵢⴰⵜ ⵜⴼⴰⵙⴽⴰ ⵜⴰⵎⵇⵇⵔⴰⵏⵜ",
    "ⵉⵃⵡⴰⵊ ⵓⵎⵓⵙⵙⵓ ⴰⴷ ⵉⵙⵙⵓⴼⵖ ⵜⵉⵔⴰⵡⵜ ⵏ ⵜⵍⴰⵍⵉⵜ ⵖ ⵜⵖⵉⵡⴰⵏⵜ 2024.",
]


@pytest.mark.parametrize(
    ("lang", "text"),
    [("ary", t) for t in ARY]
    + [("ary-Latn", t) for t in ARY_LATN]
    + [("fr", t) for t in FR]
    + [("en", t) for t in EN]
    + [("zgh-Latn", t) for t in ZGH_LATN]
    + [("zgh", t) for t in ZGH],
)
def test_identify_hand_written(lang: str, text: str) -> None:
    guess = identify(text)
    assert isinstance(guess, LangGuess)
    assert guess.lang == lang, (text, guess)
    assert 0.5 <= guess.confidence <= 1.0
    assert guess.confidence == max(guess.scores.values())
    assert abs(sum(guess.scores.values()) - 1.0) < 1e-6


@pytest.mark.parametrize("text", AR)
def test_msa_is_arabic_script_arabic(text: str) -> None:
    """MSA stays within the Arabic-script classes; telling it from Darija is the model's known weakness."""
    guess = identify(text)
    assert guess.lang in ("ar", "ary")
    assert set(guess.scores) == {"ar", "ary"}


@pytest.mark.xfail(
    strict=True,
    reason="known weakness: administrative MSA is read as Darija (ar is trained on ~120k chars of Wikipedia)",
)
def test_msa_administrative_text_is_ar() -> None:
    assert sum(identify(t).lang == "ar" for t in AR) >= 5


def test_und_for_text_without_letters() -> None:
    for text in ("", "   ", "2024", "06 12 34 56 78", "?!...", "١٢٣ - ٤٥٦", "+212 (0)5-37"):
        guess = identify(text)
        assert guess.lang == "und" and guess.confidence == 0.0 and guess.scores == {}
        assert identify_spans(text) == []


def test_tifinagh_short_circuit() -> None:
    for text in ("ⴰⵣⵓⵍ", "ⵜⴰⵎⴰⵣⵉⵖⵜ!", "ⴰⵣⵓⵍ 2024 ⴼⵍⵍⴰⵡⵏ ..."):
        assert identify(text) == LangGuess("zgh", 1.0, {"zgh": 1.0})
        assert [s.lang for s in identify_spans(text)] == ["zgh"]


def _check_offsets(text: str, spans: list[LangSpan]) -> None:
    for a, b in zip(spans, spans[1:], strict=False):
        assert a.end <= b.start and a.lang != b.lang
    for s in spans:
        piece = text[s.start : s.end]
        assert piece == piece.strip() and piece
        assert piece[0].isalnum() and piece[-1].isalnum()
        assert 0.0 < s.confidence <= 1.0


def test_spans_arabizi_with_french() -> None:
    text = "kifach n9der nbeddel la carte nationale?"
    spans = identify_spans(text)
    _check_offsets(text, spans)
    assert spans[0].lang == "ary-Latn" and spans[0].start == 0
    assert text[spans[0].start : spans[0].end].startswith("kifach n9der nbeddel")
    letters: dict[str, int] = {}
    for s in spans:
        letters[s.lang] = letters.get(s.lang, 0) + sum(c.isalnum() for c in text[s.start : s.end])
    assert max(letters, key=lambda k: letters[k]) == "ary-Latn"
    assert set(letters) <= {"ary-Latn", "fr"}


def test_spans_darija_french_darija() -> None:
    text = "بغيت نجدد la carte d'identité ديالي"
    spans = identify_spans(text)
    _check_offsets(text, spans)
    assert [(s.lang, text[s.start : s.end]) for s in spans] == [
        ("ary", "بغيت نجدد"),
        ("fr", "la carte d'identité"),
        ("ary", "ديالي"),
    ]


def test_spans_arabizi_french_arabizi() -> None:
    text = "salam, bghit nakhod rendez-vous ghedda f sba7 3afak"
    spans = identify_spans(text)
    _check_offsets(text, spans)
    assert [s.lang for s in spans] == ["ary-Latn", "fr", "ary-Latn"]
    assert text[spans[1].start : spans[1].end] == "rendez-vous"
    assert text[spans[0].start : spans[0].end] == "salam, bghit nakhod"


def test_spans_cover_every_word_with_exact_offsets() -> None:
    text = "  Bonjour, ana ma fhemtch chno khassni ndir f le formulaire 2-B ⴰⵣⵓⵍ « The form » واش فهمتي؟ "
    spans = identify_spans(text)
    _check_offsets(text, spans)
    covered = "".join(text[s.start : s.end] for s in spans)
    for word in ("Bonjour", "fhemtch", "formulaire", "ⴰⵣⵓⵍ", "form", "فهمتي"):
        assert word in covered
    langs = [s.lang for s in spans]
    assert "ary-Latn" in langs and "zgh" in langs and "en" in langs and "ary" in langs
    zgh = next(s for s in spans if s.lang == "zgh")
    assert text[zgh.start : zgh.end] == "ⴰⵣⵓⵍ"


def test_single_language_text_is_one_span() -> None:
    for text in FR + EN + ARY_LATN + ARY + ZGH_LATN:
        spans = identify_spans(text)
        assert [s.lang for s in spans] == [identify(text).lang], (text, spans)
        assert text[spans[0].start : spans[0].end] == text.rstrip(".?!؟")


def test_langid_scores_and_baseline() -> None:
    samples = [(t, "fr") for t in FR] + [(t, "en") for t in EN] + [(t, "zgh") for t in ZGH]
    res = langid_scores(samples)
    assert res["n"] == 15 and res["accuracy"] == 1.0
    assert res["per_class"]["en"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 5}
    base = langid_scores(samples, predict=script_baseline)
    assert base["accuracy"] == pytest.approx(10 / 15)
    assert base["confusion"]["en"] == {"fr": 5}
    assert base["per_class"]["fr"]["precision"] == pytest.approx(0.5)


def _seed_heldout(shared: Path, name: str, step: int = 4) -> list[str]:
    lines = (shared / "seed" / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    return lines[-1000:][::step]


def test_heldout_seed_accuracy(shared_data: Path) -> None:
    """Measured on all 1,000 held-out lines: en 1.000, ary 0.975, zgh 1.000, synthetic ary-Latn and
    zgh-Latn 1.000 (see src/manara/text/models/README.md); thresholds leave a margin."""
    from manara.text.translit import arabic_to_arabizi, tifinagh_to_latin

    eng = _seed_heldout(shared_data, "eng_Latn")
    ary = _seed_heldout(shared_data, "ary_Arab")
    zgh = _seed_heldout(shared_data, "zgh_Tfng")
    sets = {
        "en": (eng, 0.97),
        "ary": (ary, 0.93),
        "zgh": (zgh, 0.99),
        "ary-Latn": ([arabic_to_arabizi(t) for t in ary], 0.95),
        "zgh-Latn": ([tifinagh_to_latin(t) for t in zgh], 0.95),
    }
    for lang, (texts, threshold) in sets.items():
        acc = langid_scores([(t, lang) for t in texts])["accuracy"]
        assert acc >= threshold, (lang, acc)


def test_doda_arabizi_accuracy(shared_data: Path) -> None:
    """DODa (CC BY-NC, never trained on): real Arabizi. Measured 0.941 on all 41,112 rows."""
    samples: list[tuple[str, str]] = []
    for path in sorted((shared_data / "doda" / "ongoing").glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            rows = [r["darija"] for r in csv.DictReader(f) if (r.get("darija") or "").strip()]
        samples.extend((t, "ary-Latn") for t in rows[::25])
    assert len(samples) > 1000
    assert langid_scores(samples)["accuracy"] >= 0.90


def test_whole_text_confidence_reflects_mixed_scripts() -> None:
    from manara.text.langid import identify

    mixed = identify("بغيت نجدد la carte d'identité ديالي")
    assert mixed.confidence < 0.7, "a text in two scripts is not one language with certainty"
    assert identify("Je voudrais renouveler ma carte nationale d'identité").confidence > 0.9
