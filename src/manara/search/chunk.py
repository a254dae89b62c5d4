"""Structure-aware chunking with overlap, with exact character offsets for citations.

A document's text is its blocks joined by blank lines (`document_text`). Chunks never cross a
heading: each heading opens a section, and the heading's own line starts the section's first chunk.
Inside a section, sentences are packed until about `target_words`; the next chunk starts with the
last sentences of the previous one (up to `overlap_words`), so a fact that straddles the boundary is
whole in at least one chunk. A sentence longer than the target is cut on word boundaries.

Every chunk is a [start, end) span of the document text, so a citation is (document, page,
start, end) and a highlight lands on the right characters. `heading` is the section's heading path
("Pièces à fournir" under "Carte nationale") that search shows and indexes with the chunk.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

_SENTENCE_END = re.compile(r"(?<=[.!?؟۔…])\s+|\n+")
_WORD = re.compile(r"\S+")

TARGET_WORDS = 160  # ~400 e5 tokens of Arabic, ~250 of French: under the model's 512
OVERLAP_WORDS = 30


class BlockLike(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def level(self) -> int: ...
    @property
    def page(self) -> int | None: ...


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    start: int  # [start, end) in document_text
    end: int
    text: str
    heading: str  # heading path, " > "-joined
    page: int | None
    page_end: int | None


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    words: int
    page: int | None
    section: int
    heading: str


def document_text(blocks: Sequence[BlockLike]) -> str:
    return "\n\n".join(b.text for b in blocks)


def sentence_spans(text: str, offset: int) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for m in _SENTENCE_END.finditer(text):
        if m.start() > pos:
            spans.append((offset + pos, offset + m.start()))
        pos = m.end()
    if pos < len(text):
        spans.append((offset + pos, offset + len(text)))
    return spans


def _units(blocks: Sequence[BlockLike], target_words: int) -> tuple[str, list[_Unit]]:
    text = document_text(blocks)
    units: list[_Unit] = []
    path: list[tuple[int, str]] = []  # (level, heading) of the open sections
    section, offset = 0, 0
    for block in blocks:
        if block.kind == "heading":
            level = block.level or 1
            path = [(lv, h) for lv, h in path if lv < level] + [(level, block.text)]
            section += 1
        heading = " > ".join(h for _, h in path)
        for s, e in sentence_spans(block.text, offset):
            words = list(_WORD.finditer(text, s, e))
            # a sentence longer than a chunk is cut on word boundaries
            for i in range(0, len(words), target_words):
                piece = words[i : i + target_words]
                units.append(
                    _Unit(piece[0].start(), piece[-1].end(), len(piece), block.page, section, heading)
                )
        offset += len(block.text) + 2
    return text, units


def chunk_blocks(
    blocks: Sequence[BlockLike], *, target_words: int = TARGET_WORDS, overlap_words: int = OVERLAP_WORDS
) -> list[Chunk]:
    """Chunks of a parsed document (see the module docstring)."""
    text, units = _units(blocks, target_words)
    chunks: list[Chunk] = []
    current: list[_Unit] = []

    def emit() -> None:
        first, last = current[0], current[-1]
        chunks.append(
            Chunk(len(chunks), first.start, last.end, text[first.start : last.end], first.heading,
                  first.page, last.page)
        )  # fmt: skip

    for unit in units:
        if current and unit.section != current[0].section:
            emit()
            current = []
        elif current and sum(u.words for u in current) + unit.words > target_words:
            emit()
            carry: list[_Unit] = []
            for u in reversed(current):  # overlap: the previous chunk's last sentences
                if sum(c.words for c in carry) + u.words > overlap_words:
                    break
                carry.insert(0, u)
            current = carry
        current.append(unit)
    if current:
        emit()
    return chunks
