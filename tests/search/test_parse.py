"""Document parsing: every format to headings and paragraphs, Arabic in logical order, clear errors.

Fixtures are generated into tmp_path by docgen.py (fpdf2 with uharfbuzz for text shaping,
arabic-reshaper and python-bidi for legacy visual-order PDFs, python-docx, Pillow): no binary files
in the repository. OCR tests need the tesseract command with Arabic and French data; they are skipped
without it, except under CI=true where a missing tesseract fails them.
"""

from __future__ import annotations

import os
import random
import re
import unicodedata
import zipfile
from pathlib import Path

import docgen
import pytest
from docgen import (
    AR_HEADING,
    AR_MIXED,
    AR_PARAGRAPH,
    AR_TITLE,
    BILINGUAL,
    FONT,
    FR_HEADING,
    FR_PARAGRAPH,
    FR_TITLE,
    html_page,
    make_docx,
    make_image_pdf,
    make_pdf,
    make_text_image,
    markdown_text,
    plain_text,
    visual_order,
)

from manara.errors import DocumentUnreadable, UnsupportedFormat
from manara.search import parse
from manara.search.parse import SUPPORTED_SUFFIXES, Block, ParsedDocument, ocr_available, parse_document

pytestmark = pytest.mark.skipif(
    not FONT.exists(), reason=f"{FONT} missing (apt-get install fonts-dejavu-core)"
)

OCR_HINT = "install tesseract-ocr tesseract-ocr-ara tesseract-ocr-fra (apt-get) to run OCR tests"
IN_CI = os.environ.get("CI") == "true"
needs_ocr = pytest.mark.skipif(not ocr_available() and not IN_CI, reason=OCR_HINT)


def require_ocr() -> None:
    """Under CI a missing tesseract is a failure, not a skip."""
    if not ocr_available():
        pytest.fail(f"tesseract with ara+fra data is required under CI=true: {OCR_HINT}")


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def summary(doc: ParsedDocument) -> list[tuple[str, str, int]]:
    return [(b.kind, b.text, b.level) for b in doc.blocks]


BILINGUAL_BLOCKS = [
    ("heading", FR_HEADING, 1),
    ("paragraph", FR_PARAGRAPH, 0),
    ("heading", AR_HEADING, 1),
    ("paragraph", AR_PARAGRAPH, 0),
    ("paragraph", AR_MIXED, 0),
]


# --------------------------------------------------------------------------------------------------
# PDF


def test_pdf_bilingual_with_headings_and_title(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "guide.pdf", BILINGUAL, title=FR_TITLE)
    doc = parse_document(path)
    assert summary(doc) == BILINGUAL_BLOCKS
    assert doc.title == FR_TITLE
    assert (doc.pages, doc.ocr, doc.mime, doc.notes) == (1, False, "application/pdf", [])
    assert {b.page for b in doc.blocks} == {1}


def test_pdf_heading_levels_pages_and_title_fallback(tmp_path: Path) -> None:
    items = [
        ("h1", AR_TITLE),
        ("h2", FR_HEADING),
        ("p", FR_PARAGRAPH),
        ("page", ""),
        ("h2", AR_HEADING),
        ("p", AR_PARAGRAPH),
    ]
    doc = parse_document(make_pdf(tmp_path / "deux-pages.pdf", items))
    assert [(b.kind, b.text, b.level, b.page) for b in doc.blocks] == [
        ("heading", AR_TITLE, 1, 1),
        ("heading", FR_HEADING, 2, 1),
        ("paragraph", FR_PARAGRAPH, 0, 1),
        ("heading", AR_HEADING, 2, 2),
        ("paragraph", AR_PARAGRAPH, 0, 2),
    ]
    assert doc.pages == 2
    assert doc.title == AR_TITLE  # no Title metadata: the first heading


def test_pdf_paragraph_lines_are_joined(tmp_path: Path) -> None:
    long_fr = " ".join([FR_PARAGRAPH] * 4)
    doc = parse_document(make_pdf(tmp_path / "long.pdf", [("p", long_fr), ("p", "Fin.")]))
    assert summary(doc) == [("paragraph", long_fr, 0), ("paragraph", "Fin.", 0)]


LEGACY_SENTENCES = [
    AR_PARAGRAPH,
    AR_MIXED,
    "صدر بتاريخ 2024/05/12 تحت رقم 08.09 (نسخة أصلية).",
    "لا يجوز تسليم الوثيقة إلا للمعني بالأمر.",
    "المرجع Dahir n° 1-58-250 المتعلق بالحريات العامة",
    "وفي 23 يوليو، أصدرت النمسا-المجر إنذارا نهائيا إلى صربيا.",
]


@pytest.mark.parametrize("sentence", LEGACY_SENTENCES, ids=range(len(LEGACY_SENTENCES)))
def test_pdf_legacy_visual_order_is_restored(tmp_path: Path, sentence: str) -> None:
    stored = visual_order(sentence)
    # The fixture really is what legacy tools write: presentation forms, reversed for display.
    assert any("\ufe70" <= ch <= "\ufeff" for ch in stored)
    assert nfkc(stored) != nfkc(sentence)
    doc = parse_document(
        make_pdf(tmp_path / "legacy.pdf", [("h1", AR_HEADING), ("p", sentence)], mode="visual")
    )
    assert summary(doc) == [("heading", AR_HEADING, 1), ("paragraph", nfkc(sentence), 0)]
    assert not any("\ufb50" <= ch <= "\ufeff" for b in doc.blocks for ch in b.text)  # base letters


def test_pdf_latin_word_and_number_keep_their_order(tmp_path: Path) -> None:
    doc = parse_document(make_pdf(tmp_path / "cin.pdf", [("p", AR_MIXED)], mode="visual"))
    (block,) = doc.blocks
    assert "CIN 2024" in block.text
    assert block.text.startswith("رقم البطاقة")


@pytest.mark.parametrize("sentence", LEGACY_SENTENCES, ids=range(len(LEGACY_SENTENCES)))
def test_pdf_shaped_arabic_stays_logical(tmp_path: Path, sentence: str) -> None:
    doc = parse_document(make_pdf(tmp_path / "shaped.pdf", [("p", sentence)], mode="shaped"))
    assert summary(doc) == [("paragraph", sentence, 0)]


def test_pdf_hyphen_at_line_end_is_kept(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_font("dejavu", fname=str(FONT))
    pdf.add_page()
    pdf.set_font("dejavu", size=11)
    for line in ("La demande porte sur le porte-", "monnaie et la carte d'identité."):
        pdf.cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(tmp_path / "cesure.pdf"))
    doc = parse_document(tmp_path / "cesure.pdf")
    assert summary(doc) == [("paragraph", "La demande porte sur le porte-monnaie et la carte d'identité.", 0)]


LONG_AR = "\n".join([AR_PARAGRAPH, AR_MIXED, "وتسلم الوثيقة في أجل لا يتعدى 15 يوما من تاريخ إيداع الطلب."])


@pytest.mark.parametrize("mode", ["shaped", "visual", "raw"])
def test_pdf_multiline_arabic_paragraph(tmp_path: Path, mode: docgen.Mode) -> None:
    items = [("h2", AR_HEADING), ("p", LONG_AR), ("p", AR_MIXED)]
    doc = parse_document(make_pdf(tmp_path / f"{mode}.pdf", items, mode=mode))
    expected = [
        ("heading", AR_HEADING, 1),
        ("paragraph", LONG_AR.replace("\n", " "), 0),
        ("paragraph", AR_MIXED, 0),
    ]
    assert [(k, nfkc(t), lv) for k, t, lv in summary(doc)] == expected  # fpdf2 wraps it on 2-3 lines


@pytest.mark.parametrize("mode", ["shaped", "visual"])
def test_pdf_french_line_with_arabic_words(tmp_path: Path, mode: docgen.Mode) -> None:
    sentence = "La « البطاقة الوطنية » (CIN) est délivrée en 15 jours."
    path = tmp_path / "fr.pdf"
    if mode == "visual":
        # A legacy tool reorders the whole line; the Arabic words come out reversed in the file.
        stored = visual_order(sentence)
        assert stored != sentence
        from fpdf import FPDF

        pdf = FPDF()
        pdf.add_font("dejavu", fname=str(FONT))
        pdf.add_page()
        pdf.set_font("dejavu", size=11)
        pdf.cell(0, 6, stored)
        pdf.output(str(path))
    else:
        make_pdf(path, [("p", sentence)], mode="shaped")
    doc = parse_document(path)
    assert [nfkc(b.text) for b in doc.blocks] == [sentence]


def test_pdf_page_numbers_and_running_headers_are_dropped(tmp_path: Path) -> None:
    items = [
        ("h1", FR_HEADING),
        ("p", FR_PARAGRAPH),
        ("page", ""),
        ("p", AR_PARAGRAPH),
        ("page", ""),
        ("p", AR_MIXED),
    ]
    path = make_pdf(tmp_path / "rapport.pdf", items, running="Royaume du Maroc - Guide des services")
    doc = parse_document(path)
    assert [(b.text, b.page) for b in doc.blocks] == [
        (FR_HEADING, 1),
        (FR_PARAGRAPH, 1),
        (AR_PARAGRAPH, 2),
        (AR_MIXED, 3),
    ]
    assert doc.pages == 3


def test_pdf_unshaped_logical_arabic_stays_logical(tmp_path: Path) -> None:
    # Letters drawn left to right in logical order (a viewer shows them reversed): keep the text layer.
    doc = parse_document(make_pdf(tmp_path / "raw.pdf", [("p", AR_PARAGRAPH), ("p", AR_MIXED)], mode="raw"))
    assert summary(doc) == [("paragraph", AR_PARAGRAPH, 0), ("paragraph", AR_MIXED, 0)]


# --------------------------------------------------------------------------------------------------
# DOCX, HTML, Markdown, text


def test_docx_bilingual_headings_table_and_title(tmp_path: Path) -> None:
    items = [("h1", FR_HEADING), ("p", FR_PARAGRAPH), ("h2", AR_HEADING), ("p", AR_PARAGRAPH)]
    doc = parse_document(make_docx(tmp_path / "guide.docx", items, title=AR_TITLE, table=True))
    assert summary(doc) == [
        ("heading", FR_HEADING, 1),
        ("paragraph", FR_PARAGRAPH, 0),
        ("heading", AR_HEADING, 2),
        ("paragraph", AR_PARAGRAPH, 0),
        ("paragraph", "Pièce | الوثيقة", 0),
        ("paragraph", "CIN | البطاقة الوطنية", 0),
    ]
    assert doc.title == AR_TITLE
    assert (doc.pages, doc.ocr, doc.notes) == (None, False, [])
    assert doc.mime == "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def test_docx_title_style_and_fallback_title(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading(FR_TITLE, level=0)  # the "Title" style
    document.add_paragraph(AR_MIXED)
    path = tmp_path / "sans-titre.docx"
    document.save(str(path))
    doc = parse_document(path)
    assert summary(doc) == [("heading", FR_TITLE, 1), ("paragraph", AR_MIXED, 0)]
    assert doc.title == FR_TITLE


def test_html_blocks_title_and_dropped_chrome(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(html_page(BILINGUAL, title=FR_TITLE), encoding="utf-8")
    doc = parse_document(path)
    assert summary(doc) == [
        *BILINGUAL_BLOCKS,
        ("paragraph", "Premier élément", 0),
        ("paragraph", "عنصر ثان", 0),
        ("paragraph", "Pièce | الوثيقة", 0),
        ("paragraph", "CIN | البطاقة الوطنية", 0),
    ]
    assert doc.title == FR_TITLE
    assert doc.mime == "text/html"
    text = " ".join(b.text for b in doc.blocks)
    for chrome in ("Accueil", "Bandeau", "Pied de page", "ne pas indexer", "color"):
        assert chrome not in text


def test_html_declared_windows_1256_charset(tmp_path: Path) -> None:
    path = tmp_path / "ancien.htm"
    path.write_bytes(
        html_page([("h2", AR_HEADING), ("p", AR_PARAGRAPH)], charset="windows-1256").encode("cp1256")
    )
    doc = parse_document(path)
    assert summary(doc)[:2] == [("heading", AR_HEADING, 2), ("paragraph", AR_PARAGRAPH, 0)]
    assert doc.title == AR_HEADING  # no <title>: the first heading


def test_markdown_blocks_and_title(tmp_path: Path) -> None:
    items = [("h2", AR_TITLE), ("h1", FR_TITLE), ("p", FR_PARAGRAPH), ("h2", AR_HEADING), ("p", AR_MIXED)]
    path = tmp_path / "guide.md"
    path.write_text(markdown_text(items), encoding="utf-8")
    doc = parse_document(path)
    assert summary(doc) == [
        ("heading", AR_TITLE, 2),
        ("heading", FR_TITLE, 1),
        ("paragraph", FR_PARAGRAPH, 0),
        ("heading", AR_HEADING, 2),
        ("paragraph", AR_MIXED, 0),
        ("paragraph", "Premier élément", 0),
        ("paragraph", "عنصر ثان", 0),
        ("paragraph", "code block", 0),
        ("paragraph", "Pièce | الوثيقة", 0),
        ("paragraph", "CIN | البطاقة الوطنية", 0),
    ]
    assert doc.title == FR_TITLE  # the first H1, not the first heading
    assert doc.mime == "text/markdown"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1256"])
def test_txt_paragraphs_headings_and_encodings(tmp_path: Path, encoding: str) -> None:
    items = [
        ("h1", FR_HEADING),
        ("p", FR_PARAGRAPH),
        ("h1", AR_HEADING),
        ("p", AR_PARAGRAPH + "\n" + AR_MIXED),
    ]
    text = "CHAPITRE PREMIER\n\n" + plain_text(items)
    path = tmp_path / "note.txt"
    path.write_bytes(text.encode(encoding))
    doc = parse_document(path)
    assert summary(doc) == [
        ("heading", "CHAPITRE PREMIER", 1),
        ("heading", f"1. {FR_HEADING}", 1),
        ("paragraph", FR_PARAGRAPH, 0),
        ("heading", f"2. {AR_HEADING}", 1),
        ("paragraph", f"{AR_PARAGRAPH} {AR_MIXED}", 0),
    ]
    assert doc.title == "CHAPITRE PREMIER"
    assert (doc.pages, doc.ocr, doc.mime) == (None, False, "text/plain")


def test_txt_heading_rules_are_predictable(tmp_path: Path) -> None:
    path = tmp_path / "regles.txt"
    path.write_text(
        "2.3 Objet de la demande\n\nUne phrase courte.\n\nARTICLE 5 : DISPOSITIONS\n\n"
        "Titre sans marque\n\nLIGNE UN\nLIGNE DEUX\n",
        encoding="utf-8",
    )
    doc = parse_document(path)
    assert summary(doc) == [
        ("heading", "2.3 Objet de la demande", 2),
        ("paragraph", "Une phrase courte.", 0),
        ("heading", "ARTICLE 5 : DISPOSITIONS", 1),
        ("paragraph", "Titre sans marque", 0),
        ("paragraph", "LIGNE UN LIGNE DEUX", 0),
    ]


def test_visual_order_text_outside_pdf_is_restored(tmp_path: Path) -> None:
    import arabic_reshaper

    path = tmp_path / "export.txt"
    logical_forms = arabic_reshaper.reshape(AR_PARAGRAPH)  # presentation forms, logical order
    path.write_text(f"{visual_order(AR_MIXED)}\n\n{logical_forms}\n", encoding="utf-8")
    doc = parse_document(path)
    assert summary(doc) == [("paragraph", nfkc(AR_MIXED), 0), ("paragraph", nfkc(AR_PARAGRAPH), 0)]


def test_whitespace_and_invisible_characters_are_cleaned(tmp_path: Path) -> None:
    path = tmp_path / "espaces.md"
    path.write_text(
        "#   Titre\u200f   principal  \n\nun   texte\u00a0\u00a0avec\tdes\u00adespaces  \n", encoding="utf-8"
    )
    doc = parse_document(path)
    assert summary(doc) == [("heading", "Titre principal", 1), ("paragraph", "un texte avec desespaces", 0)]


# --------------------------------------------------------------------------------------------------
# OCR


FR_OCR = ["Demande de carte nationale", "Pièces à fournir au guichet"]
AR_OCR = ["طلب البطاقة الوطنية", "الوثائق المطلوبة للإدارة"]


def word_recall(expected: list[str], text: str) -> float:
    words = [w for line in expected for w in line.split()]
    found = set(re.findall(r"\w+", nfkc(text)))
    return sum(1 for w in words if nfkc(w) in found) / len(words)


@needs_ocr
def test_ocr_image(tmp_path: Path) -> None:
    require_ocr()
    image = make_text_image(tmp_path / "scan.png", FR_OCR + AR_OCR)
    doc = parse_document(image)
    text = " ".join(b.text for b in doc.blocks)
    assert word_recall(FR_OCR, text) >= 0.75, text
    assert word_recall(AR_OCR, text) >= 0.6, text
    assert (doc.ocr, doc.pages, doc.mime, doc.title) == (True, 1, "image/png", None)
    assert {b.page for b in doc.blocks} == {1}


@needs_ocr
def test_ocr_scanned_pdf(tmp_path: Path) -> None:
    require_ocr()
    image = make_text_image(tmp_path / "page.png", AR_OCR + FR_OCR)
    doc = parse_document(make_image_pdf(tmp_path / "scan.pdf", image))
    text = " ".join(b.text for b in doc.blocks)
    assert word_recall(FR_OCR, text) >= 0.75, text
    assert word_recall(AR_OCR, text) >= 0.6, text
    assert doc.ocr is True and doc.pages == 1
    assert doc.notes == ["page 1: no text layer, read with OCR (ara+fra)"]


@needs_ocr
def test_ocr_multipage_tiff(tmp_path: Path) -> None:
    require_ocr()
    from PIL import Image

    first = make_text_image(tmp_path / "p1.png", [FR_OCR[0]])
    second = make_text_image(tmp_path / "p2.png", [AR_OCR[0]])
    path = tmp_path / "dossier.tiff"
    Image.open(first).save(path, save_all=True, append_images=[Image.open(second)])
    doc = parse_document(path)
    assert doc.pages == 2 and doc.mime == "image/tiff"
    by_page = {p: " ".join(b.text for b in doc.blocks if b.page == p) for p in (1, 2)}
    assert word_recall(FR_OCR[:1], by_page[1]) >= 0.75, by_page
    assert word_recall(AR_OCR[:1], by_page[2]) >= 0.6, by_page


def test_scanned_pdf_without_tesseract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = make_text_image(tmp_path / "page.png", FR_OCR, font_size=40)
    path = make_image_pdf(tmp_path / "scan.pdf", image)
    monkeypatch.setenv("PATH", str(tmp_path))  # no tesseract on the PATH
    parse._tesseract_languages.cache_clear()
    try:
        assert not ocr_available()
        with pytest.raises(DocumentUnreadable) as e:
            parse_document(path)
        assert e.value.detail.startswith("scan.pdf: ")
        assert "install tesseract-ocr with tesseract-ocr-ara and tesseract-ocr-fra" in e.value.detail
        with pytest.raises(DocumentUnreadable, match="install tesseract-ocr"):
            parse_document(image)
    finally:
        monkeypatch.undo()
        parse._tesseract_languages.cache_clear()


# --------------------------------------------------------------------------------------------------
# Bad input


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated_pdf(tmp: Path) -> Path:
    data = make_pdf(tmp / "source.pdf", BILINGUAL).read_bytes()
    return _write(tmp / "tronque.pdf", data[: len(data) // 2])


def _random_pdf(tmp: Path) -> Path:
    return _write(tmp / "aleatoire.pdf", random.Random(1).randbytes(4096))


def _corrupt_pdf(tmp: Path) -> Path:
    # Right header and trailer marker, garbage between: pdfium cannot open it.
    return _write(tmp / "abime.pdf", b"%PDF-1.7\n" + random.Random(2).randbytes(2048) + b"\n%%EOF\n")


def _encrypted_pdf(tmp: Path) -> Path:
    return make_pdf(tmp / "protege.pdf", BILINGUAL, user_password="secret")


def _blank_pdf(tmp: Path) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.output(str(tmp / "vide.pdf"))
    return tmp / "vide.pdf"


def _truncated_docx(tmp: Path) -> Path:
    data = make_docx(tmp / "source.docx", BILINGUAL).read_bytes()
    return _write(tmp / "tronque.docx", data[: len(data) // 2])


def _docx_not_zip(tmp: Path) -> Path:
    return _write(tmp / "faux.docx", b"ceci n'est pas un document Word")


def _zip_not_docx(tmp: Path) -> Path:
    with zipfile.ZipFile(tmp / "archive.docx", "w") as z:
        z.writestr("bonjour.txt", "bonjour")
    return tmp / "archive.docx"


def _binary_txt(tmp: Path) -> Path:
    return _write(tmp / "binaire.txt", random.Random(3).randbytes(4096))


def _blank_txt(tmp: Path) -> Path:
    return _write(tmp / "blanc.txt", b" \n\n\t\n")


def _empty(suffix: str):  # type: ignore[no-untyped-def]
    return lambda tmp: _write(tmp / f"vide{suffix}", b"")


def _not_png(tmp: Path) -> Path:
    return _write(tmp / "photo.png", b"GIF89a" + random.Random(4).randbytes(512))


BAD_INPUTS = {
    "truncated-pdf": (_truncated_pdf, "truncated"),
    "random-bytes-pdf": (_random_pdf, "not a PDF"),
    "corrupt-pdf": (_corrupt_pdf, "corrupt"),
    "encrypted-pdf": (_encrypted_pdf, "encrypted"),
    "blank-pdf": (_blank_pdf, "no text"),
    "empty-pdf": (_empty(".pdf"), "empty"),
    "empty-docx": (_empty(".docx"), "empty"),
    "empty-txt": (_empty(".txt"), "empty"),
    "truncated-docx": (_truncated_docx, "Word"),
    "docx-not-zip": (_docx_not_zip, "Word"),
    "zip-not-docx": (_zip_not_docx, "Word"),
    "binary-txt": (_binary_txt, "does not look like text"),
    "blank-txt": (_blank_txt, "no text"),
    "not-a-png": (_not_png, "not a valid PNG"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_unreadable(tmp_path: Path, case: str) -> None:
    make, expected = BAD_INPUTS[case]
    path = make(tmp_path)
    with pytest.raises(DocumentUnreadable) as e:
        parse_document(path)
    assert type(e.value) is DocumentUnreadable
    detail = e.value.detail
    assert detail.startswith(f"{path.name}: "), detail
    assert expected in detail, detail
    assert "\n" not in detail and len(detail) < 300
    assert e.value.extra == {"file": path.name}
    assert e.value.problem()["type"].endswith("/document-unreadable")


@pytest.mark.parametrize("name", ["rapport.xyz", "ancien.doc", "sans-extension"])
def test_unknown_suffix_is_unsupported(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path / name, b"du texte")
    with pytest.raises(UnsupportedFormat) as e:
        parse_document(path)
    assert e.value.detail.startswith(f"{name}: unsupported document type")
    assert ".pdf" in e.value.detail


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(DocumentUnreadable, match="absent.pdf: cannot open the file"):
        parse_document(tmp_path / "absent.pdf")


def test_supported_suffixes_and_case(tmp_path: Path) -> None:
    assert {".pdf", ".docx", ".html", ".htm", ".txt", ".md", ".markdown"} <= SUPPORTED_SUFFIXES
    assert {".png", ".jpg", ".jpeg", ".tif", ".tiff"} <= SUPPORTED_SUFFIXES
    path = _write(tmp_path / "LISEZMOI.MARKDOWN", b"# Titre\n\nTexte.\n")
    doc = parse_document(path)
    assert doc.blocks == [Block("heading", "Titre", 1), Block("paragraph", "Texte.")]
