"""Generate test documents (PDF, DOCX, HTML, Markdown, text, images) at test time: no binary fixtures.

PDFs are written with fpdf2 and the DejaVuSans font (it has Arabic glyphs) in three ways that
exist in the wild:

* `shaped`: fpdf2's own text shaping (HarfBuzz via uharfbuzz), as modern generators do;
* `visual`: the legacy way, the string shaped into presentation forms with arabic-reshaper and
  reordered for display with python-bidi, then written as is (no shaping);
* `raw`: Arabic letters written unshaped, left to right, in logical order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

Mode = Literal["shaped", "visual", "raw"]
Item = tuple[str, str]  # (kind, text) with kind "h1".."h3" or "p"

AR_TITLE = "دليل الخدمات الإدارية"
AR_HEADING = "الوثائق المطلوبة"
AR_PARAGRAPH = "يجب على المواطن تقديم نسخة من البطاقة الوطنية للتعريف الإلكترونية."
AR_MIXED = "رقم البطاقة الوطنية CIN 2024 صالح لمدة عشر سنوات."
FR_TITLE = "Guide des services administratifs"
FR_HEADING = "Pièces à fournir"
FR_PARAGRAPH = "Le citoyen doit présenter une copie de la carte nationale d'identité électronique."

BILINGUAL: list[Item] = [
    ("h1", FR_HEADING),
    ("p", FR_PARAGRAPH),
    ("h1", AR_HEADING),
    ("p", AR_PARAGRAPH),
    ("p", AR_MIXED),
]

_SIZES = {"h1": 20, "h2": 16, "h3": 14, "p": 11}


def is_arabic(text: str) -> bool:
    return any("\u0600" <= ch <= "\u06ff" for ch in text)


def visual_order(text: str) -> str:
    """What legacy tools put in the PDF: presentation forms, reordered left to right for display."""
    import arabic_reshaper
    from bidi import get_display

    return str(get_display(arabic_reshaper.reshape(text)))


def make_pdf(
    path: Path,
    items: Sequence[Item],
    *,
    title: str | None = None,
    mode: Mode = "shaped",
    user_password: str | None = None,
    running: str | None = None,
) -> Path:
    """Each item is a block; in "visual" mode a "\n" in an Arabic text starts a new line (legacy
    tools lay out and reorder line by line). `running` adds a running header and "Page n / N" footer.
    """
    from fpdf import FPDF

    class Page(FPDF):
        def header(self) -> None:
            if running:
                self.set_font("dejavu", size=8)
                self.cell(0, 5, running, align="C", new_x="LMARGIN", new_y="NEXT")
                self.ln(5)

        def footer(self) -> None:
            if running:
                self.set_y(-15)
                self.set_font("dejavu", size=8)
                self.cell(0, 5, f"Page {self.page_no()} / {{nb}}", align="C")

    pdf = Page(format="A4")
    pdf.add_font("dejavu", fname=str(FONT))
    if mode == "shaped":
        pdf.set_text_shaping(True)
    if title:
        pdf.set_title(title)
    if user_password:
        pdf.set_encryption(owner_password="owner-secret", user_password=user_password)
    pdf.add_page()
    for kind, text in items:
        if kind == "page":
            pdf.add_page()
            continue
        size = _SIZES[kind]
        pdf.set_font("dejavu", size=size)
        line_h = size * 0.55  # mm: ~1.55 times the font size
        rtl = is_arabic(text)
        if mode == "visual" and rtl:
            for line in text.split("\n"):
                pdf.cell(0, line_h, visual_order(line), align="R", new_x="LMARGIN", new_y="NEXT")
        else:
            align = "R" if rtl else "L"
            pdf.multi_cell(0, line_h, text.replace("\n", " "), align=align, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(line_h)  # a blank line between blocks
    pdf.output(str(path))
    return path


def make_image_pdf(path: Path, image: Path, *, pages: int = 1) -> Path:
    """A 'scanned' PDF: each page holds only the picture, no text layer."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    for _ in range(pages):
        pdf.add_page()
        pdf.image(str(image), x=10, y=10, w=190)
    pdf.output(str(path))
    return path


def make_text_image(path: Path, lines: Sequence[str], *, font_size: int = 56) -> Path:
    """Black text on white, large and clean, the way a good scanner would see a printed page."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(FONT), font_size, layout_engine=ImageFont.Layout.RAQM)
    width, line_h, margin = 1900, int(font_size * 1.8), 60
    image = Image.new("L", (width, margin * 2 + line_h * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        y = margin + i * line_h
        if is_arabic(line):
            draw.text((width - margin, y), line, font=font, fill=0, anchor="ra", direction="rtl")
        else:
            draw.text((margin, y), line, font=font, fill=0)
    image.save(path, dpi=(300, 300))
    return path


def make_docx(path: Path, items: Sequence[Item], *, title: str | None = None, table: bool = False) -> Path:
    import docx

    document = docx.Document()
    if title:
        document.core_properties.title = title
    for kind, text in items:
        if kind.startswith("h"):
            document.add_heading(text, level=int(kind[1]))
        else:
            document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=2, cols=2)
        for r, row in enumerate((("Pièce", "الوثيقة"), ("CIN", "البطاقة الوطنية"))):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    document.save(str(path))
    return path


def html_page(items: Sequence[Item], *, title: str | None = None, charset: str = "utf-8") -> str:
    body = "\n".join(f"<{k}>{t}</{k}>" for k, t in items)
    head = f'<meta charset="{charset}">' + (f"<title>{title}</title>" if title else "")
    return (
        f"<!DOCTYPE html><html><head>{head}<style>p {{ color: red }}</style>"
        f"<script>var x = 'ne pas indexer';</script></head><body>"
        f"<nav><a href='/'>Accueil</a> <a href='/aide'>Aide</a></nav>"
        f"<header>Bandeau du site</header>\n{body}\n"
        f"<ul><li>Premier <b>élément</b></li><li>عنصر ثان</li></ul>"
        f"<table><tr><th>Pièce</th><th>الوثيقة</th></tr><tr><td>CIN</td><td>البطاقة الوطنية</td></tr></table>"
        f"<footer>Pied de page</footer></body></html>"
    )


def markdown_text(items: Sequence[Item]) -> str:
    parts = []
    for kind, text in items:
        parts.append(("#" * int(kind[1]) + " " + text) if kind.startswith("h") else text)
    parts.append("- Premier **élément**\n- عنصر `ثان`")
    parts.append("```\ncode   block\n```")
    parts.append("| Pièce | الوثيقة |\n|---|---|\n| CIN | البطاقة الوطنية |")
    return "\n\n".join(parts) + "\n"


def plain_text(items: Sequence[Item]) -> str:
    """Headings as numbered or capital lines, each block followed by a blank line."""
    parts = []
    number = 0
    for kind, text in items:
        if kind.startswith("h"):
            number += 1
            parts.append(f"{number}. {text}")
        else:
            parts.append(text)
    return "\n\n".join(parts) + "\n"
