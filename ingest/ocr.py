"""OCR for PDF pages without a text layer (scans): rendered with PDFium, read by Tesseract.

Optional: it needs the ``ocr`` extra (``pytesseract``, ``pypdfium2``) and the Tesseract program
(Debian: ``apt install tesseract-ocr``, plus ``tesseract-ocr-deu`` etc. for other languages).
Without them a scanned PDF is refused with a sentence saying what to install, as before.
Pages are rendered at a resolution Tesseract reads well and read one by one, so the page
number of every piece of text is kept; the caller's deadline is checked between pages and
the caller's worker process bounds a single page (see ``ingest.pdf``).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Callable, Sequence

from rag.errors import SourceError

log = logging.getLogger(__name__)

INSTALL_HINT = ("install OCR with pip install -e '.[ocr]' and Debian's tesseract-ocr "
                "(apt install tesseract-ocr), or run ocrmypdf on it first")


def ocr_unavailable() -> str | None:
    """Why OCR cannot run here (one clause naming what to install), or None when it can."""
    try:
        import pypdfium2  # noqa: F401
        import pytesseract  # noqa: F401
    except ImportError:
        return "the OCR extra is not installed; " + INSTALL_HINT
    if shutil.which("tesseract") is None:
        return "the tesseract program is not installed; " + INSTALL_HINT
    return None


def ocr_pages(path: str | Path, pages: Sequence[int], *, password: str | None = None, languages: str = "eng",
              dpi: int = 300, deadline: float | None = None, name: str | None = None,
              progress: Callable[[int, int], None] | None = None) -> dict[int, str]:
    """Read the text of some pages of a PDF by OCR.

    Args:
        path: the PDF.
        pages: 1-based page numbers to read.
        password: the password of an encrypted file.
        languages: Tesseract language codes joined by ``+`` (e.g. ``eng+deu``).
        dpi: rendering resolution.
        deadline: a ``time.monotonic()`` value; reading stops with an error once it has passed.
        name: the source name for messages (default: the file name).
        progress: called with (pages done, pages to do) after each page.

    Returns:
        Page number -> recognised text (stripped; pages where nothing was recognised are left out).

    Raises:
        SourceError: OCR is unavailable, a language pack is missing, or the deadline passed.
    """
    name = name or Path(path).name
    reason = ocr_unavailable()
    if reason is not None:
        raise SourceError(name, f"{name} has no text layer and {reason}")  # callers check first
    import pypdfium2 as pdfium
    import pytesseract

    missing = set(languages.split("+")) - set(pytesseract.get_languages(config=""))
    if missing:
        raise SourceError(name, f"Tesseract has no language data for {', '.join(sorted(missing))} "
                          f"(RAG_OCR_LANGUAGES={languages!r}); install tesseract-ocr-<lang> or choose from "
                          f"{', '.join(sorted(pytesseract.get_languages(config='')))}")
    document = pdfium.PdfDocument(str(path), password=password)
    out: dict[int, str] = {}
    try:
        for done, number in enumerate(pages, 1):
            if deadline is not None and time.monotonic() > deadline:
                raise SourceError(name, f"OCR of {name} ran past its time limit at page {number}; "
                                  "split the file or raise RAG_MAX_PDF_SECONDS")
            image = document[number - 1].render(scale=dpi / 72, grayscale=True).to_pil()
            text = pytesseract.image_to_string(image, lang=languages).strip()
            if text:
                out[number] = text
            if progress is not None:
                progress(done, len(pages))
    finally:
        document.close()
    log.info("OCR read %d of %d page(s) of %s", len(out), len(pages), name)
    return out


def character_accuracy(recognised: str, truth: str) -> float:
    """1 - (edit distance / length of ``truth``), over whitespace-normalised NFKC text.

    The standard OCR character accuracy; 1.0 is a perfect transcription.
    """
    import unicodedata

    def norm(s: str) -> str:
        return " ".join(unicodedata.normalize("NFKC", s).split())

    a, b = norm(recognised), norm(truth)
    if not b:
        return 1.0 if not a else 0.0
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return max(0.0, 1.0 - previous[-1] / len(b))
