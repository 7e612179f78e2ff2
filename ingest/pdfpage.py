"""PDF pages for the citation viewer: a page as a PNG, and where a passage lies on it.

Both come from PDFium (``pypdfium2``): the page is rasterised by it, and the passage is found
in its own text page, so the highlight boxes are PDFium's rectangles around the very glyphs
drawn. The passage (a chunk's text, cleaned at ingestion: hyphenation joined, spaces
collapsed) is compared with the page's characters on letters and digits only, lower-cased
and Unicode-folded (ligatures, accents), so those cleanings do not hide it; when no exact
match exists (the text layer orders columns differently), the longest runs they share are
highlighted instead.
"""

from __future__ import annotations

import io
import math
import threading
import unicodedata
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any, Iterator

from rag.errors import EncryptedPDFError, MissingDependencyError, NotFoundError, UnreadableSourceError
from rag.types import PageRect

_PDFIUM_LOCK = threading.Lock()
# A shared run shorter than this (in letters and digits) is a coincidence, not the passage.
MIN_RUN = 12


def _pdfium() -> Any:
    try:
        import pypdfium2
    except ImportError as exc:
        raise MissingDependencyError("pypdfium2", "api", "Showing a cited PDF page") from exc
    return pypdfium2


class PdfPages:
    """An open PDF whose pages can be counted, drawn and searched (use as a context manager).

    Args:
        path: the PDF.
        name: how messages name it (default: the file name).
        password: for an encrypted file.

    Raises:
        EncryptedPDFError: it is encrypted and the password is missing or wrong.
        UnreadableSourceError: PDFium cannot open it.
    """

    def __init__(self, path: str | Path, *, name: str | None = None, password: str | None = None) -> None:
        pdfium = _pdfium()
        self.name = name or Path(path).name
        # PDFium is not thread-safe and the server answers requests on a thread pool: one open
        # document at a time in this process, held until close().
        _PDFIUM_LOCK.acquire()
        try:
            self._doc = pdfium.PdfDocument(str(path), password=password)
        except BaseException as exc:
            _PDFIUM_LOCK.release()
            if not isinstance(exc, pdfium.PdfiumError):
                raise
            if "password" in str(exc).lower():
                raise EncryptedPDFError(self.name, f"{self.name} is encrypted, so its pages cannot be shown here; "
                                        "open the file itself to read it") from None
            raise UnreadableSourceError(self.name, f"{self.name} cannot be opened as a PDF ({exc}); "
                                        "open the file itself to read it") from None

    def __enter__(self) -> "PdfPages":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._doc is not None:
            try:
                self._doc.close()
            finally:
                self._doc = None
                _PDFIUM_LOCK.release()

    def __len__(self) -> int:
        return len(self._doc)

    def _page(self, number: int) -> Any:
        if not 1 <= number <= len(self):
            raise NotFoundError(self.name, f"{self.name} has no page {number}; choose a page from 1 to {len(self)}")
        return self._doc[number - 1]

    def page_size(self, number: int) -> tuple[float, float]:
        """Width and height of page ``number`` as shown (PDFium applies its /Rotate), in PDF units."""
        page = self._page(number)
        try:
            return page.get_size()
        finally:
            page.close()

    def render_png(self, number: int, *, dpi: int, max_pixels: int) -> bytes:
        """Page ``number`` (1-based) as PNG bytes at ``dpi``, fewer pixels if it would exceed ``max_pixels``."""
        page = self._page(number)
        try:
            width, height = page.get_size()
            scale = dpi / 72
            scale = min(scale, math.sqrt(max_pixels / max(width * height, 1.0)))
            image = page.render(scale=scale).to_pil()
            out = io.BytesIO()
            image.save(out, format="PNG", optimize=False)
            return out.getvalue()
        finally:
            page.close()

    def passage_rects(self, number: int, passage: str) -> list[PageRect]:
        """Where ``passage`` is on page ``number``: PDFium's text rectangles, as fractions of the shown page.

        Args:
            number: the 1-based page.
            passage: the text to find (a chunk of this page).

        Returns:
            One rectangle per line piece of the passage, top to bottom; empty when it is not there.
        """
        page = self._page(number)
        text = page.get_textpage()
        try:
            return [self._fraction(page, rect) for a, b in self.passage_ranges(text, passage)
                    for rect in _rects(text, a, b)]
        finally:
            text.close()
            page.close()

    @staticmethod
    def passage_ranges(text: Any, passage: str) -> list[tuple[int, int]]:
        """The character index ranges ``[a, b)`` of PDFium text page ``text`` that hold ``passage``."""
        page_key, where = _folded(_chars(text))
        want, _ = _folded(iter(passage))
        if not want or not page_key:
            return []
        at = page_key.find(want)
        if at >= 0:
            return [(where[at], where[at + len(want) - 1] + 1)]
        runs = SequenceMatcher(None, page_key, want, autojunk=False).get_matching_blocks()
        return [(where[r.a], where[r.a + r.size - 1] + 1) for r in runs if r.size >= MIN_RUN]

    @staticmethod
    def _fraction(page: Any, rect: tuple[float, float, float, float]) -> PageRect:
        """A rectangle in PDF units (left, bottom, right, top) as fractions of the page as displayed."""
        left0, bottom0, right0, top0 = page.get_cropbox()
        w, h = (right0 - left0) or 1.0, (top0 - bottom0) or 1.0
        l, b, r, t = rect
        x0, x1 = (l - left0) / w, (r - left0) / w
        y0, y1 = (top0 - t) / h, (top0 - b) / h  # from the top
        # The page's /Rotate turns it clockwise when shown; the image is drawn turned, so are the boxes.
        rotation = page.get_rotation() % 360
        corners = [(x0, y0), (x1, y1)]
        if rotation == 90:
            corners = [(1 - y, x) for x, y in corners]
        elif rotation == 180:
            corners = [(1 - x, 1 - y) for x, y in corners]
        elif rotation == 270:
            corners = [(y, 1 - x) for x, y in corners]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        left, top = max(min(xs), 0.0), max(min(ys), 0.0)
        return PageRect(left=left, top=top, width=min(max(xs), 1.0) - left, height=min(max(ys), 1.0) - top)


def _chars(text: Any) -> Iterator[str]:
    """Every character of a PDFium text page, by its index in PDFium's own character list."""
    import pypdfium2.raw as raw

    for i in range(text.count_chars()):
        code = raw.FPDFText_GetUnicode(text.raw, i)
        yield chr(code) if 0 < code < 0x110000 else ""


def _folded(chars: Iterator[str]) -> tuple[str, list[int]]:
    """Letters and digits of ``chars``, lower-cased and NFKD-folded, and the index each came from."""
    key: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(chars):
        for c in unicodedata.normalize("NFKD", ch):
            if c.isalnum():
                key.append(c.lower())
                where.append(i)
    return "".join(key), where


def _rects(text: Any, a: int, b: int) -> list[tuple[float, float, float, float]]:
    return [text.get_rect(i) for i in range(text.count_rects(a, b - a))]
