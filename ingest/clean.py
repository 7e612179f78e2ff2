"""What in a document is not content: page headers and footers, page numbers, table-of-contents lines, fragments.

Chunking (:func:`ingest.chunk.chunk_documents`) asks this module which lines of each PDF page
to leave out of its chunks (Wikipedia and text sources have no page furniture and are chunked whole). The text itself is never changed, so character offsets into a
page stay true; a noise line is only kept from being cut into chunks, or starting one:

* **Repeated headers and footers** (PDFs of at least :data:`MIN_PAGES_FOR_HEADERS` pages): a
  first or last line of a page whose words (numbers and punctuation ignored) are the first or
  last line of at least :data:`MIN_REPEATS` pages ("38 2.3. SIMPLIZIALKOMPLEX" on every page of
  a section), or that carries the printed page number (see :func:`repeated_edge_lines`).
* **Bare page numbers**: a line that is only a number or a roman numeral, optionally as
  "Page 3", "3 of 10" or "- 3 -".
* **Table-of-contents lines**: a line with a dot leader ("1.2 Metrische Räume . . . . 6"); on a
  page with at least :data:`MIN_TOC_LINES` of them, also its lines that end in a page number
  ("2 Mannigfaltigkeiten und Simplizialkomplexe 24").
* **Index pages**: on a page where at least half the lines (and :data:`MIN_TOC_LINES`) end in
  page references ("Teilraumtopologie, 4", "diskrete, 2, 6"), those lines and its short ones.
* **Fragments**: a PDF chunk with fewer than :data:`MIN_CHUNK_WORDS` words is not indexed on its
  own (a figure label, a caption, "Dann ist A kompakt."), unless the source has nothing
  else; and a sentence of fewer than :data:`MIN_SENTENCE_WORDS` words is never quoted as an
  extract (:func:`is_fragment`).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

from rag.text import trim_span
from rag.types import Document

MIN_PAGES_FOR_HEADERS = 3
MIN_REPEATS = 3
MIN_TOC_LINES = 3
MIN_CHUNK_WORDS = 8
MIN_SENTENCE_WORDS = 4

_PAGE_NUMBER = re.compile(
    r"^[\s\-–—]*(?:(?:page|seite|p\.)\s*)?(?:\d{1,4}|(?=[ivxlcdm])m{0,3}(?:cm|cd|d?c{0,3})(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3}))(?:\s*(?:/|of|von)\s*\d{1,4})?[\s\-–—]*$", re.I)
_DOT_LEADER = re.compile(r"(?:\.\s?){4,}\s*\S{0,6}\s*$|(?:…\s?){2,}\s*\S{0,6}\s*$")
_ENDS_IN_PAGE = re.compile(r"\S.*\s\d{1,4}$")
_INDEX_ENTRY = re.compile(r"\w.*,\s*\d{1,4}(?:\s*[,–-]\s*\d{1,4})*$")
_WORD = re.compile(r"\w*[^\W\d_]\w*")
_EDGE_NUMBER = re.compile(r"^(\d{1,4})\s+\S.*$|^.*\S\s+(\d{1,4})$")


def line_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each non-blank line of ``text``, surrounding whitespace excluded."""
    spans = (trim_span(text, m.start(), m.end()) for m in re.finditer(r"[^\n]+", text))
    return [(s, e) for s, e in spans if e > s]


def is_noise_line(line: str) -> bool:
    """Whether a line alone says it is not content: a bare page number or a dot-leader line."""
    line = line.strip()
    return bool(_PAGE_NUMBER.match(line)) or bool(_DOT_LEADER.search(line))


def words(text: str) -> int:
    """How many words (runs with a letter) ``text`` has."""
    return len(_WORD.findall(text))


def is_fragment(sentence: str) -> bool:
    """Too short to answer anything on its own (fewer than :data:`MIN_SENTENCE_WORDS` words), or noise."""
    return words(sentence) < MIN_SENTENCE_WORDS or is_noise_line(sentence)


def _key(line: str) -> str:
    """A line's words only: "38 2.3. SIMPLIZIALKOMPLEX" and "2.3. Simplizialkomplex 39" are one header."""
    return " ".join(_WORD.findall(line.lower()))


def repeated_edge_lines(docs: Sequence[Document]) -> set[str]:
    """The running headers and footers of a PDF, as the :func:`_key` forms of their lines.

    An edge line (first or last of a page) is one when its words are an edge line of at least
    :data:`MIN_REPEATS` pages, or when it carries the page's printed number (``"10 1.3.
    STETIGKEIT"`` on the 13th page: the printed numbers run at one offset from the page index
    on at least :data:`MIN_REPEATS` pages). Returned as ``"#<page>:<key>"`` for the latter.
    """
    pages = [d for d in docs if d.kind == "pdf" and d.page is not None]
    if len(pages) < MIN_PAGES_FOR_HEADERS:
        return set()
    counts: Counter[str] = Counter()
    offsets: Counter[int] = Counter()
    numbered: list[tuple[int, int, str]] = []  # (page, printed number, key) of edge lines
    for doc in pages:
        lines = line_spans(doc.text)
        if len(lines) < 2:
            continue
        edges = [doc.text[s:e] for s, e in (lines[0], lines[-1])]
        counts.update({_key(t) for t in edges})
        for t in edges:
            m = _EDGE_NUMBER.match(t)
            if m:
                printed = int(m.group(1) or m.group(2))
                offsets[printed - doc.page] += 1  # type: ignore[operator]
                numbered.append((doc.page, printed, _key(t)))  # type: ignore[arg-type]
    out = {k for k, n in counts.items() if n >= MIN_REPEATS and k}
    if offsets:
        offset, n = offsets.most_common(1)[0]
        if n >= MIN_REPEATS:
            out |= {f"#{p}:{k}" for p, printed, k in numbered if printed - p == offset}
    return out


def noise_spans(doc: Document, repeated: set[str] = frozenset()) -> list[tuple[int, int]]:
    """Character spans of the lines of ``doc`` that are not content (see the module docstring).

    Args:
        doc: one page or section.
        repeated: header/footer forms of its source (:func:`repeated_edge_lines`).

    Returns:
        Sorted, non-overlapping (start, end) spans into ``doc.text``.
    """
    lines = line_spans(doc.text)
    if not lines:
        return []
    texts = [doc.text[s:e] for s, e in lines]
    noise = [is_noise_line(t) for t in texts]
    if sum(bool(_DOT_LEADER.search(t)) for t in texts) >= MIN_TOC_LINES:
        noise = [n or bool(_ENDS_IN_PAGE.match(t)) for n, t in zip(noise, texts)]
    entries = sum(bool(_INDEX_ENTRY.match(t)) for t in texts)
    if entries >= MIN_TOC_LINES and 2 * entries >= len(texts):
        noise = [n or bool(_INDEX_ENTRY.match(t)) or words(t) < MIN_SENTENCE_WORDS for n, t in zip(noise, texts)]
    if repeated:
        for i in {0, len(lines) - 1}:
            key = _key(texts[i])
            if key in repeated or f"#{doc.page}:{key}" in repeated:
                noise[i] = True
    return [span for span, n in zip(lines, noise) if n]


def content_segments(text: str, noise: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans of ``text`` between its noise spans (what chunking cuts into sentences)."""
    out = []
    pos = 0
    for s, e in noise:
        if s > pos:
            out.append((pos, s))
        pos = max(pos, e)
    if pos < len(text):
        out.append((pos, len(text)))
    return [(s, e) for s, e in out if text[s:e].strip()]
