"""Turn a document file (PDF, DOCX, HTML, Markdown, text, scanned image) into clean text blocks.

`parse_document` returns headings and paragraphs in reading order, with page numbers for PDFs and
images; the chunker splits them for search. Every failure is a `DocumentUnreadable` (or
`UnsupportedFormat` for an unknown suffix) whose detail is one line naming the file: no raw library
exception escapes.

Per format
----------
* PDF (pypdfium2): characters come from pdfium's text page with their positions and font sizes.
  Pieces on one baseline make a line; paragraphs break where the gap between lines is clearly
  larger than the page's usual line pitch (or about a blank line); lines set at least 20 % larger
  than the body text become headings, one level per distinct size. Page numbers and running
  headers/footers (the same first or last line on most pages) are dropped. The `Title` metadata is
  the title. A page without a text layer (a scan) is rendered at 300 dpi and read by `tesseract`.
* DOCX (python-docx): "Heading N" / "Title" styles are headings, other paragraphs and list items are
  paragraphs, each table row is a paragraph with its cells joined by " | ".
* HTML (selectolax): scripts, styles, navigation, headers and footers are dropped; h1-h6 are
  headings; p, li, pre, blockquote... are paragraphs; a table row is a " | "-joined paragraph.
  The charset comes from a BOM or a <meta> declaration, else it is detected.
* Markdown (markdown-it-py): headings, paragraphs, list items, code blocks and table rows.
* Text: encoding detected (BOM, UTF-16, UTF-8, else cp1256/cp1252/latin-1), paragraphs split on
  blank lines; a single-line paragraph is a heading when it is numbered ("1. Titre", "2.3 Objet")
  or in capitals ("CHAPITRE PREMIER") and does not end with punctuation.
* Images (PNG, JPEG, TIFF): OCR with tesseract; a multi-page TIFF gives one page per frame.

Right-to-left text and visual order
-----------------------------------
A PDF stores positioned glyphs, not sentences, and Arabic reaches it in three ways:

1. shaped by the generator (Word, LibreOffice, HarfBuzz): glyphs drawn in visual order, each mapped
   back to its letters;
2. legacy tools (reportlab or fpdf with arabic-reshaper + python-bidi, old report writers): each line
   shaped into presentation forms (U+FB50-U+FDFF, U+FE70-U+FEFF) and reversed for display, i.e.
   stored in *visual* order;
3. naive tools: unshaped letters drawn left to right in logical order (the page looks reversed).

pdfium maps presentation forms to base letters, so the classic tell-tale of visual order (a word
that, read in stored order, starts with a FINAL form or ends with an INITIAL form) is gone by the
time we see the text, and pdfium's own reordering is crude (it turns "CIN 2024" into "2024 CIN" and
cuts glyph-by-glyph output into one "line" per word). So for every line that holds right-to-left
letters we ignore the stored order and rebuild the line from geometry: the glyphs sorted left to
right by position *are* the visual order, whatever order the file stored them in, and spaces are put
back where two glyphs are further apart than a fraction of the font size.

The visual line is then turned into logical order by inverting the Unicode bidi algorithm. The
paragraph direction comes from sentence punctuation at one end only, else the script at both ends,
else a clear majority of letters, else the line's alignment on the page. In a right-to-left line the
sequence is reversed, except that runs of Latin words with what follows them up to the last Latin
letter or digit ("CIN 2024", "Dahir n° 1-58-250") and numbers ("2024/05/12", "3.5") keep their order;
in a left-to-right line only the Arabic runs are reversed. Brackets that no longer pair up (mirroring
differs between generators, and pdfium mirrors too) are repaired from their neighbours. Case 3 is
recognised from word edges of the left-to-right reading ("ال" and "أ" start Arabic words, "ة" and
"ى" end them) and kept as read. Lines without right-to-left letters keep pdfium's text and order.

Text outside a PDF (a .txt or .docx exported from a legacy tool) can hold the same reversed lines,
with the presentation forms still visible. There a line whose words start with a FINAL form or end
with an INITIAL form more often than the other way round is reversed with the same inversion.
Properly encoded text has no presentation forms, or has them in the logical pattern, and is left
unchanged.

Finally presentation forms are folded to base letters (NFKC on those ranges only: "ﻻ" becomes "لا"),
bidi controls, soft hyphens and stray control characters are removed, and whitespace runs inside a
block collapse to one space.
"""

from __future__ import annotations

import codecs
import ctypes
import functools
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from manara.errors import DocumentUnreadable, ManaraError, UnsupportedFormat

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Block",
    "ParsedDocument",
    "ocr_available",
    "parse_document",
]


@dataclass(frozen=True)
class Block:
    kind: Literal["heading", "paragraph"]  # list items and table rows become paragraphs
    text: str  # clean text, logical order, no trailing newline
    level: int = 0  # heading level 1..6 for headings, 0 for paragraphs
    page: int | None = None  # 1-based page number for PDFs / multi-page images, else None


@dataclass(frozen=True)
class ParsedDocument:
    title: str | None  # metadata title, else the first heading, else None
    blocks: list[Block]
    pages: int | None  # page count for PDFs and images, None otherwise
    ocr: bool  # True when any text came from OCR
    mime: str
    notes: list[str] = field(default_factory=list)  # human-readable notes about the extraction


_MIME = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".html": "text/html",
    ".htm": "text/html",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_MIME)

OCR_DPI = 300
OCR_TIMEOUT_S = 180
_OCR_MAX_SIDE_PX = 6000  # cap the rendering of very large pages (posters, plans)
_INSTALL_OCR = "install tesseract-ocr with tesseract-ocr-ara and tesseract-ocr-fra to read scanned pages"
_TEXT_SAMPLE = 1 << 16


def parse_document(path: Path, *, ocr_languages: str = "ara+fra") -> ParsedDocument:
    """Parse `path` into headings and paragraphs; raises DocumentUnreadable / UnsupportedFormat."""
    path = Path(path)
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        shown = f"'{suffix}'" if suffix else "without a suffix"
        raise UnsupportedFormat(
            f"{name}: unsupported document type {shown}; supported: {supported}", file=name
        )
    try:
        size = path.stat().st_size
    except OSError as e:
        raise _unreadable(name, f"cannot open the file ({e.strerror or type(e).__name__})") from None
    if size == 0:
        raise _unreadable(name, "the file is empty")
    parser = _PARSERS[suffix]
    try:
        doc = parser(path, ocr_languages)
    except ManaraError as e:
        if isinstance(e, DocumentUnreadable | UnsupportedFormat):
            raise
        raise _unreadable(name, e.detail) from e  # e.g. EncodingError from detect_encoding
    except MemoryError:
        raise
    except Exception as e:
        what = _KIND[suffix]
        reason = _describe(e).replace(str(path), name).replace(str(path.resolve()), name)
        raise _unreadable(name, f"cannot read this {what} file, it may be corrupt ({reason})") from e
    if not doc.blocks:
        raise _unreadable(name, "no text could be extracted from this document")
    return doc


def ocr_available(languages: str = "ara+fra") -> bool:
    """True when the tesseract command is installed with data for every language in `languages`."""
    installed = _tesseract_languages()
    wanted = [lang for lang in languages.split("+") if lang]
    return bool(installed) and all(lang in installed for lang in wanted)


# --------------------------------------------------------------------------------------------------
# Errors and text cleaning


_KIND = {
    ".pdf": "PDF",
    ".docx": "Word (.docx)",
    ".html": "HTML",
    ".htm": "HTML",
    ".txt": "text",
    ".md": "Markdown",
    ".markdown": "Markdown",
    ".png": "PNG image",
    ".jpg": "JPEG image",
    ".jpeg": "JPEG image",
    ".tif": "TIFF image",
    ".tiff": "TIFF image",
}


def _unreadable(name: str, reason: str) -> DocumentUnreadable:
    return DocumentUnreadable(_one_line(f"{name}: {reason}"), file=name)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _describe(e: BaseException) -> str:
    message = _one_line(str(e))[:200]
    return f"{type(e).__name__}: {message}" if message else type(e).__name__


_PRESENTATION = re.compile("[\ufb50-\ufdff\ufe70-\ufeff]+")
# Invisible characters removed from every block: bidi controls, soft hyphen, BOM/ZWNBSP, and the C0/C1
# controls other than whitespace (some PDF fonts map glyphs to them).
_INVISIBLE = re.compile("[\u00ad\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")


def _fold_presentation_forms(text: str) -> str:
    """NFKC on Arabic presentation forms only (U+FB50-U+FDFF, U+FE70-U+FEFF): 'ﻻ' -> 'لا'."""
    return _PRESENTATION.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)


def _clean(text: str) -> str:
    """Final form of a block's text: logical order, base letters, one space between words."""
    text = text.replace("\ufeff", "")
    if _PRESENTATION.search(text):
        text = "\n".join(_restore_visual_line(line) for line in text.split("\n"))
        text = _fold_presentation_forms(text)
    text = _INVISIBLE.sub("", text)
    return _SPACES.sub(" ", text).strip()


def _blocks_from(items: Iterable[tuple[str, str, int, int | None]]) -> list[Block]:
    """Build blocks from (kind, raw text, level, page), cleaning text and dropping empty blocks."""
    blocks = []
    for kind, raw, level, page in items:
        text = _clean(raw)
        if not text:
            continue
        if kind == "heading":
            blocks.append(Block("heading", text, max(1, min(6, level)), page))
        else:
            blocks.append(Block("paragraph", text, 0, page))
    return blocks


def _first_heading(blocks: Sequence[Block]) -> str | None:
    return next((b.text for b in blocks if b.kind == "heading"), None)


# --------------------------------------------------------------------------------------------------
# Right-to-left text: visual order back to logical order


def _bidi_class(ch: str) -> str:
    """'R' right-to-left letter, 'L' left-to-right letter, 'N' digit, 'M' combining mark, 'O' other."""
    bidi = unicodedata.bidirectional(ch)
    if bidi in ("R", "AL"):
        return "R"
    if bidi == "L":
        return "L"
    if bidi in ("EN", "AN"):
        return "N"
    if bidi == "NSM":
        return "M"
    return "O"


def _has_rtl(text: str) -> bool:
    return any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in text)


# A run of Latin words takes in the punctuation and digits between them ("CIN 2024", "n° 1-58-250"), as
# the bidi algorithm does, but stops at brackets and percent signs: "%3.5" read backwards is "3.5%".
_LATIN_STOPS = frozenset("()[]{}«»<>%\u066a\u2030")
# Between digits, these keep a number together ("2024/05/12", "3.5", "1,000", "٣٫٥").
_NUMBER_JOINERS = frozenset(".,:/\u066b\u066c")
_MIRRORED_PAIRS = (("(", ")"), ("[", "]"), ("{", "}"), ("«", "»"), ("<", ">"))


def _atom_class(atom: str) -> str:
    for ch in atom:
        cls = _bidi_class(ch)
        if cls != "M":
            return cls
    return "M"


def _visual_to_logical(atoms: Sequence[str], align: str | None = None) -> str:
    """Logical text of a line given in visual (left-to-right) order.

    An atom is one displayed unit: a letter with its combining marks, a ligature's letters, a space.
    Its own text is already in logical order. `align` ("left"/"right") is the line's alignment on the
    page when known; it settles the paragraph direction when the text itself does not.
    """
    classes = [_atom_class(a) for a in atoms]
    rtl = _is_rtl_paragraph(atoms, classes, align)
    units: list[list[str]] = []
    i, n = 0, len(atoms)
    while i < n:
        end = _ltr_unit_end(atoms, classes, i) if rtl else _rtl_unit_end(atoms, classes, i)
        if end > i:  # a unit that keeps its internal order (rtl) / that is reversed (ltr)
            units.append(list(atoms[i:end]) if rtl else _reverse_rtl_run(atoms[i:end], classes[i:end]))
            i = end
        else:
            units.append([atoms[i]])
            i += 1
    if rtl:
        units.reverse()
    return _fix_mirrored("".join("".join(u) for u in units))


_TERMINAL = frozenset(".:;!?،؛؟…")


def _is_rtl_paragraph(atoms: Sequence[str], classes: Sequence[str], align: str | None) -> bool:
    """Direction of the paragraph a visual line belongs to.

    In order: sentence punctuation at one end only (it ends the sentence: on the left in a
    right-to-left paragraph); the same script at both ends; a clear majority (2:1) of letters; the
    alignment on the page; a simple majority, right-to-left on a tie.
    """
    visible = [a for a in atoms if not a.isspace()]
    if visible:
        left_stop, right_stop = visible[0] in _TERMINAL, visible[-1] in _TERMINAL
        if left_stop != right_stop:
            return left_stop
    strong = [c for c in classes if c in ("L", "R")]
    if not strong:
        return True
    if strong[0] == strong[-1]:
        return strong[0] == "R"
    n_rtl = sum(len(a) for a, c in zip(atoms, classes, strict=True) if c == "R")
    n_ltr = sum(len(a) for a, c in zip(atoms, classes, strict=True) if c == "L")
    if n_rtl >= 2 * n_ltr or n_ltr >= 2 * n_rtl or align is None:
        return n_rtl >= n_ltr
    return align == "right"


def _ltr_unit_end(atoms: Sequence[str], classes: Sequence[str], i: int) -> int:
    """End of the left-to-right unit starting at atom i in a right-to-left line (i if none).

    A Latin word opens a run that takes in further Latin words and digits and what lies between them
    (the bidi algorithm makes "CIN 2024" one run); digits alone make a number.
    """
    if classes[i] == "L":
        end = j = i + 1
        while j < len(atoms):
            if classes[j] in ("L", "N", "M"):
                end = j = j + 1
            elif classes[j] == "O" and not (set(atoms[j]) & _LATIN_STOPS):
                j += 1
            else:
                break
        return end
    if classes[i] == "N":
        return _number_end(atoms, classes, i)
    return i


def _number_end(atoms: Sequence[str], classes: Sequence[str], i: int) -> int:
    end = j = i + 1
    while j < len(atoms):
        if classes[j] == "N":
            end = j = j + 1
        elif atoms[j] in _NUMBER_JOINERS and j + 1 < len(atoms) and classes[j + 1] == "N":
            j += 1
        else:
            break
    return end


def _rtl_unit_end(atoms: Sequence[str], classes: Sequence[str], i: int) -> int:
    """End of the right-to-left run starting at atom i in a left-to-right line (i if none).

    The run starts with an Arabic letter, or with a number right before one (a number that ends an
    Arabic phrase is shown on its left: "(7000 ددع"), unless a Latin word precedes the number, which
    then belongs to it ("Le 12 ...").
    """
    j = i
    if classes[i] == "N":
        before = next((classes[k] for k in range(i - 1, -1, -1) if not atoms[k].isspace()), "O")
        if before in ("L", "N"):
            return i
        j = _number_end(atoms, classes, i)
        while j < len(atoms) and atoms[j].isspace():
            j += 1
    if j >= len(atoms) or classes[j] != "R":
        return i
    end = j = j + 1
    while j < len(atoms):
        if classes[j] in ("R", "M"):
            end = j = j + 1
        elif classes[j] in ("O", "N"):
            j += 1
        else:
            break
    return end


def _reverse_rtl_run(atoms: Sequence[str], classes: Sequence[str]) -> list[str]:
    """Reverse an Arabic run inside a left-to-right line, numbers keeping their own order."""
    units: list[list[str]] = []
    i = 0
    while i < len(atoms):
        end = _number_end(atoms, classes, i) if classes[i] == "N" else i + 1
        units.append(list(atoms[i:end]))
        i = end
    return [a for unit in reversed(units) for a in unit]


_OPENS_AFTER = frozenset("«\"'“‘")
_CLOSES_BEFORE = frozenset(".,;:!?،؛؟…»\"'”’")


def _fix_mirrored(text: str) -> str:
    """Repair brackets of a right-to-left line that do not pair up.

    Generators disagree on mirroring, and pdfium mirrors what it takes for right-to-left runs, so a
    bracket may come out as its twin: "(نص)" as ")نص(", "(CIN)" as ")CIN)", "أ)" as "أ(". Pairs that
    all close before they open are swapped; otherwise each bracket takes the side its neighbours
    show: after a space and before a word it opens, after a word and before a space it closes; when
    no neighbour tells ("« texte «"), they alternate.
    """
    for left, right in _MIRRORED_PAIRS:
        if (left not in text and right not in text) or _balanced(text, left, right):
            continue
        if _balanced(text, right, left):
            text = text.translate({ord(left): right, ord(right): left})
            continue
        chars = list(text)
        undecided = []
        for i, ch in enumerate(text):
            if ch not in (left, right):
                continue
            before = text[i - 1] if i > 0 else " "
            after = text[i + 1] if i + 1 < len(text) else " "
            opens = (before.isspace() or before in _OPENS_AFTER) and not after.isspace()
            closes = not before.isspace() and (after.isspace() or after in _CLOSES_BEFORE)
            if opens != closes:
                chars[i] = left if opens else right
            else:
                undecided.append(i)
        if len(undecided) == text.count(left) + text.count(right) and len(undecided) % 2 == 0:
            for k, i in enumerate(undecided):  # "« texte «": nothing to go by but order
                chars[i] = left if k % 2 == 0 else right
        text = "".join(chars)
    return text


def _balanced(text: str, left: str, right: str) -> bool:
    depth = 0
    for ch in text:
        if ch == left:
            depth += 1
        elif ch == right:
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _form(ch: str) -> str:
    """'initial', 'medial', 'final', 'isolated' for a presentation form, else ''."""
    decomposition = unicodedata.decomposition(ch)
    if decomposition.startswith("<"):
        tag = decomposition[1 : decomposition.find(">")]
        if tag in ("initial", "medial", "final", "isolated"):
            return tag
    return ""


_ARABIC_WORD = re.compile("[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufefc]+")


def _looks_visual(line: str) -> bool:
    """True when the presentation forms of a line show it is stored in visual order."""
    visual = logical = 0
    for word in _ARABIC_WORD.findall(line):
        letters = [ch for ch in word if _bidi_class(ch) != "M"]
        if len(letters) < 2:
            continue
        first, last = _form(letters[0]), _form(letters[-1])
        logical += (first == "initial") + (last == "final")
        visual += (first == "final") + (last == "initial")
    return visual > logical


def _restore_visual_line(line: str) -> str:
    """Logical order of one line of text if its presentation forms reveal visual order."""
    if not _looks_visual(line):
        return line
    # In visual order a letter's combining marks come before it: attach them to the next letter.
    atoms: list[str] = []
    marks = ""
    for ch in line:
        if _bidi_class(ch) == "M":
            marks += ch
        else:
            atoms.append(ch + marks)
            marks = ""
    if marks:
        atoms.append(marks)
    return _visual_to_logical(atoms)


# --------------------------------------------------------------------------------------------------
# PDF


@dataclass
class _Char:
    text: str  # usually one character; a ligature or a letter with its marks after grouping
    left: float
    right: float
    y: float  # baseline
    size: float
    generated: bool


@dataclass
class _Line:
    chars: list[_Char]
    y: float
    size: float
    text: str = ""


_ALEFS = frozenset("\u0622\u0623\u0625\u0627\u0671")
_LAM = "\u0644"


def _parse_pdf(path: Path, ocr_languages: str) -> ParsedDocument:
    import pypdfium2 as pdfium

    name = path.name
    with path.open("rb") as f:
        head = f.read(1024)
        f.seek(max(0, path.stat().st_size - 4096))
        tail = f.read()
    if b"%PDF-" not in head:
        raise _unreadable(name, "is not a PDF file (it does not start with %PDF-)")
    if b"%%EOF" not in tail:
        raise _unreadable(name, "the PDF is truncated or corrupt (its end-of-file marker is missing)")
    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as e:
        if "password" in str(e).lower():
            raise _unreadable(
                name, "the PDF is encrypted (password-protected); remove the password and try again"
            ) from None
        raise _unreadable(name, f"the PDF is corrupt and cannot be opened ({_one_line(str(e))})") from None
    try:
        meta = pdf.get_metadata_dict(skip_empty=True)
        n_pages = len(pdf)
        if n_pages == 0:
            raise _unreadable(name, "the PDF has no pages")
        items: list[tuple[str, str, int, int | None]] = []
        notes: list[str] = []
        used_ocr = False
        missing_ocr: list[int] = []
        pages_lines: list[tuple[int, list[_Line]]] = []
        for number in range(1, n_pages + 1):
            page = pdf[number - 1]
            try:
                lines, why = _pdf_page_lines(page)
                if lines:
                    pages_lines.append((number, lines))
                    continue
                if not _page_has_content(page):
                    continue
                if not ocr_available(ocr_languages):
                    missing_ocr.append(number)
                    continue
                used_ocr = True
                try:
                    text = _ocr_pdf_page(page, ocr_languages, name)
                except DocumentUnreadable as e:
                    notes.append(f"page {number}: {why}; {e.detail.removeprefix(name + ': ')}")
                    continue
                if text.strip():
                    notes.append(f"page {number}: {why}, read with OCR ({ocr_languages})")
                    items.extend(("paragraph", p, 0, number) for p in _ocr_paragraphs(text))
                else:
                    notes.append(f"page {number}: {why} and OCR found no text")
            finally:
                page.close()
        items = _pdf_blocks(pages_lines) + items
        items.sort(key=lambda item: item[3] or 0)  # stable: OCR pages slot in by page number
        blocks = _blocks_from(items)
        if missing_ocr:
            if not blocks:
                raise _unreadable(name, f"the PDF has no text layer (a scan?); {_INSTALL_OCR}")
            notes.extend(f"page {n}: no text layer, skipped; {_INSTALL_OCR}" for n in missing_ocr)
        title = _clean(meta.get("Title", "")) or _first_heading(blocks)
        return ParsedDocument(title or None, blocks, n_pages, used_ocr, _MIME[".pdf"], notes)
    finally:
        pdf.close()


def _page_has_content(page: Any) -> bool:
    return any(True for _ in page.get_objects(max_depth=2))


def _pdf_page_lines(page: Any) -> tuple[list[_Line], str]:
    """Lines of a page's text layer in pdfium's reading order, or [] and why there are none."""
    import pypdfium2.raw as raw

    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        rect = raw.FS_RECTF()
        x, y = ctypes.c_double(), ctypes.c_double()
        fragments: list[list[_Char]] = [[]]
        visible = unmapped = 0
        for index in range(count):
            code = raw.FPDFText_GetUnicode(textpage, index)
            ch = chr(code) if 0 < code < 0x110000 else "\ufffd"
            if code == 2 and raw.FPDFText_IsHyphen(textpage, index):
                ch = "-"  # pdfium marks a hyphen that ends a line (or a right-to-left piece) as U+0002
            generated = bool(raw.FPDFText_IsGenerated(textpage, index))
            if ch in "\r\n":
                if fragments[-1]:
                    fragments.append([])
                continue
            raw.FPDFText_GetLooseCharBox(textpage, index, rect)
            raw.FPDFText_GetCharOrigin(textpage, index, x, y)
            size = raw.FPDFText_GetFontSize(textpage, index) if not generated else 0.0
            fragments[-1].append(_Char(ch, rect.left, rect.right, y.value, size, generated))
            if not ch.isspace():
                visible += 1
                if ch == "\ufffd" or 0xE000 <= ord(ch) <= 0xF8FF or unicodedata.category(ch) == "Cc":
                    unmapped += 1
        if visible == 0:
            return [], "no text layer"
        if unmapped > visible / 2:  # fonts without a Unicode mapping: the text layer is gibberish
            return [], "text layer without Unicode mapping"
        lines = _merge_fragments([f for f in fragments if any(not c.text.isspace() for c in f)])
        # Alignment is judged against the text area: the lines' extent, at least the middle 76 %.
        extents = [_extent(line) for line in lines]
        width = float(page.get_width())
        page_left = min([left for left, _ in extents] + [0.12 * width])
        page_right = max([right for _, right in extents] + [0.88 * width])
        slack = 0.1 * (page_right - page_left)
        for line, (left, right) in zip(lines, extents, strict=True):
            flush_left, flush_right = left - page_left < slack / 3, page_right - right < slack / 3
            align = None
            if flush_left != flush_right:
                align = "left" if flush_left else "right"
            line.text = _line_text(line, align)
        return [line for line in lines if line.text.strip()], "no text layer"
    finally:
        textpage.close()


def _merge_fragments(fragments: list[list[_Char]]) -> list[_Line]:
    """Join consecutive pieces on the same baseline (pdfium splits right-to-left glyph runs)."""
    lines: list[_Line] = []
    for chars in fragments:
        real = [c for c in chars if not c.generated and not c.text.isspace()] or chars
        y = statistics.median(c.y for c in real)
        size = statistics.median(c.size for c in real) or 1.0
        horizontal = max(c.y for c in real) - min(c.y for c in real) <= 0.5 * size
        if lines and horizontal and abs(lines[-1].y - y) <= 0.3 * max(size, lines[-1].size):
            previous = lines[-1]
            previous.chars.append(_Char(" ", 0.0, 0.0, y, 0.0, True))
            previous.chars.extend(chars)
            previous.size = max(previous.size, size)
        else:
            lines.append(_Line(list(chars), y, size))
    return lines


def _extent(line: _Line) -> tuple[float, float]:
    chars = [c for c in line.chars if not c.generated and not c.text.isspace()] or line.chars
    return min(c.left for c in chars), max(c.right for c in chars)


def _line_text(line: _Line, align: str | None) -> str:
    if not any(_has_rtl(c.text) for c in line.chars):
        return "".join(c.text for c in line.chars)
    atoms = _visual_atoms(line)
    if _reads_forward(atoms):
        return _fix_mirrored("".join(atoms))  # unshaped Arabic drawn left to right, logical order
    return _visual_to_logical(atoms, align)


_ARABIC_LETTERS = re.compile("[\u0621-\u064a\u0671-\u06d3]+")
_ARABIC_MARKS = re.compile("[\u064b-\u065f\u0670]")


def _reads_forward(atoms: Sequence[str]) -> bool:
    """True when a right-to-left line's glyphs, read left to right, are already in logical order.

    That is the case of generators that draw unshaped Arabic letters left to right (the page shows
    them reversed, but the text is right). Word edges tell: logically "ال" and a hamza-seated alef
    (أ إ آ) start words, "ة" and "ى" end them; read backwards, it is the other way round.
    """
    forward = backward = 0
    for word in _ARABIC_LETTERS.findall(_ARABIC_MARKS.sub("", "".join(atoms))):
        if len(word) < 3:
            continue
        forward += word.startswith("\u0627\u0644") + (word[0] in "\u0623\u0625\u0622")
        forward += word[-1] in "\u0629\u0649"
        backward += word.endswith("\u0644\u0627") + (word[-1] in "\u0623\u0625\u0622")
        backward += word[0] in "\u0629\u0649"
    return forward > backward


def _visual_atoms(line: _Line) -> list[str]:
    """The glyphs of a line sorted left to right, with spaces where the glyphs are far apart."""
    groups: list[_Char] = []
    for c in line.chars:
        if c.generated:
            continue  # pdfium's guessed spaces and breaks: spacing is re-derived from positions
        g = groups[-1] if groups else None
        same_glyph = g is not None and abs(g.left - c.left) < 0.01 and abs(g.right - c.right) < 0.01
        if g is not None and (same_glyph or (_bidi_class(c.text) == "M" and not g.text.isspace())):
            # A ligature's letters, or a letter and its marks: one displayed unit.
            g.text += c.text
            g.left, g.right = min(g.left, c.left), max(g.right, c.right)
        else:
            groups.append(_Char(c.text, c.left, c.right, c.y, c.size, False))
    for g in groups:
        # A lam-alef ligature mapped to two letters comes out of pdfium's reversal as alef + lam.
        if len(g.text) == 2 and g.text[0] in _ALEFS and g.text[1] == _LAM:
            g.text = g.text[::-1]
    groups.sort(key=lambda g: (g.left + g.right) / 2)
    size = line.size or 10.0
    atoms: list[str] = []
    previous: _Char | None = None
    for g in groups:
        if g.text.isspace():
            if atoms and atoms[-1] != " ":
                atoms.append(" ")
            previous = None
            continue
        if previous is not None and g.left - previous.right > 0.15 * size and atoms[-1] != " ":
            atoms.append(" ")
        atoms.append(g.text)
        previous = g
    while atoms and atoms[-1] == " ":
        atoms.pop()
    return atoms


def _pdf_blocks(pages: list[tuple[int, list[_Line]]]) -> list[tuple[str, str, int, int | None]]:
    """Paragraphs and headings from the lines of every page (headings: larger font than the body)."""
    weights: dict[float, int] = {}
    for _, lines in pages:
        for line in lines:
            key = round(line.size * 2) / 2
            weights[key] = weights.get(key, 0) + len(line.text)
    if not weights:
        return []
    body = max(weights, key=lambda k: weights[k])
    heading_sizes = sorted((s for s in weights if s >= 1.2 * body), reverse=True)
    level_of = {s: min(6, rank + 1) for rank, s in enumerate(heading_sizes)}

    items: list[tuple[str, str, int, int | None]] = []
    for number, lines in _drop_page_furniture(pages):
        pitches = [a.y - b.y for a, b in zip(lines, lines[1:], strict=False) if a.y - b.y > 0]
        usual = statistics.median(pitches) if pitches else 1.5 * body
        current: list[str] = []
        current_level = 0
        previous: _Line | None = None
        for line in lines:
            level = level_of.get(round(line.size * 2) / 2, 0) if len(line.text) <= 200 else 0
            if previous is not None:
                pitch = previous.y - line.y
                new_block = (
                    level != current_level
                    or pitch <= 0
                    or pitch > 1.4 * usual + 0.01  # clearly more than the page's line pitch
                    or pitch > 2.0 * max(line.size, previous.size)  # about a blank line
                    or abs(line.size - previous.size) > 0.15 * max(line.size, previous.size)
                )
                if new_block and current:
                    items.append(_pdf_item(current, current_level, number))
                    current = []
            current.append(line.text)
            current_level = level
            previous = line
        if current:
            items.append(_pdf_item(current, current_level, number))
    return items


_PAGE_NUMBER = re.compile(
    r"^(?:page|p\.|صفحة|الصفحة)?\s*[-–—(]?\s*(?:\d+|[ivxlcdm]+)\s*(?:(?:/|sur|of|من)\s*\d+)?\s*[-–—)]?$",
    re.IGNORECASE,
)


def _drop_page_furniture(pages: list[tuple[int, list[_Line]]]) -> list[tuple[int, list[_Line]]]:
    """Drop page numbers and running headers/footers (the same first or last line on most pages)."""

    def key(line: _Line) -> tuple[float, str]:
        return round(line.size), re.sub(r"\d+", "#", _one_line(line.text))

    counts: dict[tuple[float, str], int] = {}
    for _, lines in pages:
        for edge in {key(lines[0]), key(lines[-1])}:
            counts[edge] = counts.get(edge, 0) + 1
    threshold = max(3, (len(pages) + 1) // 2)
    repeated = {k for k, c in counts.items() if c >= threshold}

    def furniture(line: _Line) -> bool:
        return bool(_PAGE_NUMBER.match(_one_line(line.text))) or key(line) in repeated

    result = []
    for number, lines in pages:
        start, end = 0, len(lines)
        while start < min(2, end) and furniture(lines[start]):
            start += 1
        while end > max(start, len(lines) - 2) and furniture(lines[end - 1]):
            end -= 1
        if start < end:
            result.append((number, lines[start:end]))
    return result


def _pdf_item(lines: list[str], level: int, page: int) -> tuple[str, str, int, int | None]:
    text = ""
    for raw in lines:
        piece = raw.strip()
        if text.endswith("-") and len(text) > 1 and text[-2].isalpha() and piece[:1].islower():
            text += piece  # a word hyphenated across lines: keep it whole ("exem-ple")
        else:
            text = f"{text} {piece}" if text else piece
    return ("heading" if level else "paragraph", text, level, page)


# --------------------------------------------------------------------------------------------------
# OCR (tesseract command line)


@functools.lru_cache(maxsize=1)
def _tesseract_languages() -> frozenset[str]:
    exe = shutil.which("tesseract")
    if exe is None:
        return frozenset()
    try:
        done = subprocess.run([exe, "--list-langs"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    lines = (done.stdout + "\n" + done.stderr).splitlines()
    return frozenset(
        line.strip() for line in lines if line.strip() and " " not in line.strip() and ":" not in line
    )


def _run_tesseract(image: Path, languages: str, name: str, *, dpi: int | None = None) -> str:
    exe = shutil.which("tesseract")
    if exe is None:
        raise _unreadable(name, _INSTALL_OCR)
    command = [exe, str(image), "stdout", "-l", languages]
    if dpi:
        command += ["--dpi", str(dpi)]
    env = dict(os.environ)
    env.setdefault("OMP_THREAD_LIMIT", "1")  # tesseract's OpenMP threads are slower, not faster
    try:
        done = subprocess.run(command, capture_output=True, timeout=OCR_TIMEOUT_S, check=False, env=env)
    except subprocess.TimeoutExpired:
        raise _unreadable(name, f"OCR took longer than {OCR_TIMEOUT_S} s and was stopped") from None
    except OSError as e:
        raise _unreadable(name, f"cannot run tesseract ({e.strerror or type(e).__name__})") from None
    if done.returncode != 0:
        error = done.stderr.decode("utf-8", "replace")
        reason = next((ln for ln in error.splitlines() if "rror" in ln), error.strip()[:200])
        raise _unreadable(name, f"OCR failed: tesseract could not read the image ({_one_line(reason)})")
    return done.stdout.decode("utf-8", "replace")


def _ocr_pdf_page(page: Any, languages: str, name: str) -> str:
    import numpy as np

    width, height = page.get_size()
    scale = min(OCR_DPI / 72, _OCR_MAX_SIDE_PX / max(width, height, 1))
    bitmap = page.render(scale=scale, grayscale=True)
    try:
        pixels = np.ascontiguousarray(bitmap.to_numpy())
    finally:
        bitmap.close()
    if pixels.ndim == 3:  # BGR(A) when pdfium ignored the grayscale request
        pixels = np.ascontiguousarray(pixels[:, :, :3].mean(axis=2).astype(np.uint8))
    with tempfile.TemporaryDirectory(prefix="manara-ocr-") as tmp:
        image = Path(tmp) / "page.pgm"
        header = f"P5\n{pixels.shape[1]} {pixels.shape[0]}\n255\n".encode("ascii")
        image.write_bytes(header + pixels.tobytes())
        return _run_tesseract(image, languages, name, dpi=round(72 * scale))


def _ocr_paragraphs(text: str) -> list[str]:
    """Paragraphs of tesseract's output (blank-line separated), without lines of pure noise."""
    paragraphs = []
    for chunk in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in chunk.splitlines() if any(ch.isalnum() for ch in ln)]
        if lines:
            paragraphs.append(" ".join(lines))
    return paragraphs


_IMAGE_MAGIC = {
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".tif": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    ".tiff": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
}


def _parse_image(path: Path, ocr_languages: str) -> ParsedDocument:
    name = path.name
    suffix = path.suffix.lower()
    with path.open("rb") as f:
        head = f.read(16)
    if not head.startswith(_IMAGE_MAGIC[suffix]):
        raise _unreadable(name, f"is not a valid {_KIND[suffix]} (unexpected file signature)")
    if not ocr_available(ocr_languages):
        raise _unreadable(name, f"an image can only be read with OCR; {_INSTALL_OCR}")
    text = _run_tesseract(path, ocr_languages, name)
    pages = text.split("\f")
    if len(pages) > 1 and not pages[-1].strip():
        pages.pop()  # tesseract ends every page with a form feed
    items = [
        ("paragraph", p, 0, number)
        for number, page_text in enumerate(pages, start=1)
        for p in _ocr_paragraphs(page_text)
    ]
    blocks = _blocks_from(items)
    if not blocks:
        raise _unreadable(name, "OCR found no text in this image")
    notes = [f"read with OCR ({ocr_languages})"]
    return ParsedDocument(None, blocks, len(pages), True, _MIME[suffix], notes)


# --------------------------------------------------------------------------------------------------
# DOCX


_HEADING_STYLE = re.compile(r"(?i)^heading\s*([1-9])$")


def _parse_docx(path: Path, ocr_languages: str) -> ParsedDocument:
    import docx
    from docx.table import Table

    name = path.name
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise _unreadable(
            name, "is a password-protected Word file or an old .doc, not a .docx; save it as .docx"
        )
    if not zipfile.is_zipfile(path):
        raise _unreadable(name, "is not a valid Word (.docx) file: not a ZIP package (truncated or corrupt?)")
    try:
        with zipfile.ZipFile(path) as z:
            if z.testzip() is not None:
                raise _unreadable(name, "the Word file is corrupt (a compressed part fails its check)")
    except zipfile.BadZipFile:
        raise _unreadable(name, "the Word file is corrupt (damaged ZIP package)") from None
    document = docx.Document(str(path))
    items: list[tuple[str, str, int, int | None]] = []
    for element in document.iter_inner_content():
        if isinstance(element, Table):
            items.extend(("paragraph", row, 0, None) for row in _docx_table_rows(element))
            continue
        style = element.style.name if element.style is not None else ""
        match = _HEADING_STYLE.match(style or "")
        if match:
            items.append(("heading", element.text, int(match.group(1)), None))
        elif style == "Title":
            items.append(("heading", element.text, 1, None))
        else:
            items.append(("paragraph", element.text, 0, None))
    blocks = _blocks_from(items)
    title = _clean(document.core_properties.title or "") or _first_heading(blocks)
    return ParsedDocument(title or None, blocks, None, False, _MIME[".docx"], [])


def _docx_table_rows(table: Any) -> Iterator[str]:
    for row in table.rows:
        seen: set[int] = set()
        cells = []
        for cell in row.cells:
            if id(cell._tc) in seen:  # a merged cell is returned once per grid column it spans
                continue
            seen.add(id(cell._tc))
            text = _one_line(cell.text)
            if text:
                cells.append(text)
        if cells:
            yield " | ".join(cells)


# --------------------------------------------------------------------------------------------------
# HTML


_DROP_TAGS = ("script", "style", "nav", "header", "footer", "noscript", "template", "svg", "iframe")
_HEADING_TAGS = {f"h{n}": n for n in range(1, 7)}
_BLOCK_TAGS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "caption",
        "center",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "form",
        "hr",
        "html",
        "legend",
        "li",
        "main",
        "menu",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "ul",
    ]
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)


def _html_encoding(data: bytes, name: str) -> str:
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    match = _META_CHARSET.search(data[:4096])
    if match:
        try:
            encoding = codecs.lookup(match.group(1).decode("ascii")).name
        except LookupError:
            encoding = ""
        if encoding in ("latin-1", "iso8859-1", "ascii"):
            return "cp1252"  # as browsers do (WHATWG encoding labels)
        if encoding:
            return encoding
    return _detect_encoding(data[:_TEXT_SAMPLE], name)


def _parse_html(path: Path, ocr_languages: str) -> ParsedDocument:
    from selectolax.lexbor import LexborHTMLParser

    data = path.read_bytes()
    encoding = _html_encoding(data, path.name)
    try:
        html = data.decode(encoding)
    except UnicodeDecodeError:
        html = data.decode(_detect_encoding(data[:_TEXT_SAMPLE], path.name), errors="replace")
    _check_is_text(html, path.name)
    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = _clean(title_node.text(deep=True)) if title_node is not None else ""
    for node in tree.css(", ".join(_DROP_TAGS)):
        node.decompose()
    items: list[tuple[str, str, int, int | None]] = []
    root = tree.body or tree.root
    if root is not None:
        _HtmlWalker(items).walk(root)
    blocks = _blocks_from(items)
    return ParsedDocument(title or _first_heading(blocks), blocks, None, False, _MIME[".html"], [])


class _HtmlWalker:
    """Flattens the DOM into blocks: block elements close the current paragraph, inline ones add to it."""

    def __init__(self, items: list[tuple[str, str, int, int | None]]) -> None:
        self.items = items
        self.buffer: list[str] = []

    def flush(self) -> None:
        text = "".join(self.buffer)
        self.buffer = []
        if text.strip():
            self.items.append(("paragraph", text, 0, None))

    def walk(self, node: Any) -> None:
        for child in node.iter(include_text=True):
            tag = child.tag
            if tag == "-text":
                self.buffer.append(child.text_content or "")
            elif tag in _HEADING_TAGS:
                self.flush()
                self.items.append(("heading", child.text(deep=True, separator=" "), _HEADING_TAGS[tag], None))
            elif tag == "tr":
                self.flush()
                cells = [_one_line(c.text(deep=True, separator=" ")) for c in child.css("td, th")]
                self.items.append(("paragraph", " | ".join(c for c in cells if c), 0, None))
            elif tag == "br":
                self.buffer.append(" ")
            elif tag in _BLOCK_TAGS:
                self.flush()
                self.walk(child)
                self.flush()
            elif isinstance(tag, str) and not tag.startswith(("-", "_", "!")):
                self.walk(child)  # inline element: its text joins the current paragraph


# --------------------------------------------------------------------------------------------------
# Markdown


def _parse_markdown(path: Path, ocr_languages: str) -> ParsedDocument:
    from markdown_it import MarkdownIt

    text = _read_text(path)
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    items: list[tuple[str, str, int, int | None]] = []
    row: list[str] | None = None
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.type == "heading_open":
            items.append(("heading", _md_inline(tokens[i + 1]), int(token.tag[1]), None))
            i += 3
            continue
        if token.type == "tr_open":
            row = []
        elif token.type == "tr_close" and row is not None:
            items.append(("paragraph", " | ".join(c for c in row if c), 0, None))
            row = None
        elif token.type == "inline" and row is not None:
            row.append(_one_line(_md_inline(token)))
        elif token.type == "inline":
            items.append(("paragraph", _md_inline(token), 0, None))
        elif token.type in ("fence", "code_block"):
            items.append(("paragraph", token.content, 0, None))
        elif token.type == "html_block":
            items.append(("paragraph", _strip_html(token.content), 0, None))
        i += 1
    blocks = _blocks_from(items)
    title = next((b.text for b in blocks if b.kind == "heading" and b.level == 1), None)
    return ParsedDocument(title or _first_heading(blocks), blocks, None, False, _MIME[".md"], [])


def _md_inline(token: Any) -> str:
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(_md_inline(child))  # its alt text
        elif child.type == "html_inline":
            parts.append(_strip_html(child.content))
    return "".join(parts)


def _strip_html(fragment: str) -> str:
    from selectolax.lexbor import LexborHTMLParser

    root = LexborHTMLParser(fragment).body
    return root.text(deep=True, separator=" ") if root is not None else ""


# --------------------------------------------------------------------------------------------------
# Plain text


_NUMBERED_HEADING = re.compile(r"^(\d+(?:\.\d+)*)[.)]?\s+\S")
_ENDS_WITH_PUNCTUATION = re.compile(r"[.,;:!?،؛؟…]$")


def _detect_encoding(sample: bytes, name: str) -> str:
    from manara.errors import EncodingError
    from manara.lake.readers import detect_encoding

    try:
        return detect_encoding(sample)
    except EncodingError:
        raise _unreadable(
            name, "does not look like text: its encoding cannot be recognised (binary data?)"
        ) from None


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    encoding = _detect_encoding(data[:_TEXT_SAMPLE], path.name)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        encoding = _detect_encoding(data, path.name)
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as e:
            raise _unreadable(
                path.name, f"cannot decode the text ({encoding}): invalid byte at offset {e.start}"
            ) from None
    _check_is_text(text, path.name)
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _check_is_text(text: str, name: str) -> None:
    sample = text[:_TEXT_SAMPLE]
    controls = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f\v")
    if "\x00" in sample or controls > max(2, len(sample) // 100):
        raise _unreadable(name, "does not look like text (binary data or a wrong file extension?)")


def _txt_heading_level(paragraph: str) -> int:
    """Heading level of a one-line paragraph (cleaned), 0 if it is not a heading."""
    if len(paragraph) > 80 or _ENDS_WITH_PUNCTUATION.search(paragraph):
        return 0
    match = _NUMBERED_HEADING.match(paragraph)
    if match:
        return min(6, match.group(1).count(".") + 1)
    letters = [ch for ch in paragraph if ch.isalpha()]
    cased = [ch for ch in letters if ch.lower() != ch.upper()]
    if len(cased) >= 3 and len(cased) * 2 >= len(letters) and all(ch.isupper() for ch in cased):
        return 1
    return 0


def _parse_txt(path: Path, ocr_languages: str) -> ParsedDocument:
    text = _read_text(path)
    items: list[tuple[str, str, int, int | None]] = []
    for raw in re.split(r"\n[ \t\f\v]*\n", text):
        paragraph = _clean(raw)
        if not paragraph:
            continue
        level = 0 if "\n" in raw.strip() else _txt_heading_level(paragraph)
        items.append(("heading" if level else "paragraph", paragraph, level, None))
    blocks = _blocks_from(items)
    return ParsedDocument(_first_heading(blocks), blocks, None, False, _MIME[".txt"], [])


_PARSERS: dict[str, Callable[[Path, str], ParsedDocument]] = {
    ".pdf": _parse_pdf,
    ".docx": _parse_docx,
    ".html": _parse_html,
    ".htm": _parse_html,
    ".txt": _parse_txt,
    ".md": _parse_markdown,
    ".markdown": _parse_markdown,
    ".png": _parse_image,
    ".jpg": _parse_image,
    ".jpeg": _parse_image,
    ".tif": _parse_image,
    ".tiff": _parse_image,
}
