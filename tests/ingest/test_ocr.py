"""OCR of scanned pages: a real text PDF rendered to an image-only PDF, read back by Tesseract."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.ocr import character_accuracy, ocr_pages, ocr_unavailable
from rag.errors import SourceError
from tests.conftest import require_shared


def require_ocr() -> None:
    reason = ocr_unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"OCR must run in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture
def scanned(tmp_path: Path) -> tuple[Path, str]:
    """crazyones.pdf page 1 rendered at 200 dpi and saved as a PDF holding only that image, with its known text."""
    require_ocr()
    import pypdf
    import pypdfium2 as pdfium

    source = require_shared("pdfs", "pypdf-resources", "crazyones.pdf")
    truth = require_shared("pdfs", "pypdf-resources", "crazyones.txt").read_text(encoding="utf-8")
    document = pdfium.PdfDocument(str(source))
    image = document[0].render(scale=200 / 72, grayscale=True).to_pil()
    document.close()
    path = tmp_path / "scan.pdf"
    image.save(path, "PDF", resolution=200)
    assert not pypdf.PdfReader(path).pages[0].extract_text().strip(), "the scan must have no text layer"
    return path, truth


def test_ocr_reads_a_scanned_page(scanned: tuple[Path, str]) -> None:
    path, truth = scanned
    seen: list[tuple[int, int]] = []
    pages = ocr_pages(path, [1], progress=lambda done, total: seen.append((done, total)))
    assert list(pages) == [1] and seen == [(1, 1)]
    accuracy = character_accuracy(pages[1], truth)
    print(f"character accuracy {accuracy:.4f} over {len(truth)} characters")
    assert accuracy >= 0.95
    assert "The Crazy Ones" in pages[1]


def test_ocr_stops_at_its_deadline(scanned: tuple[Path, str]) -> None:
    path, _ = scanned
    with pytest.raises(SourceError, match="time limit"):
        ocr_pages(path, [1], deadline=0.0)


def test_missing_language_names_the_choices(scanned: tuple[Path, str]) -> None:
    path, _ = scanned
    with pytest.raises(SourceError, match="no language data for xyz.*eng"):
        ocr_pages(path, [1], languages="xyz")


def test_without_tesseract_the_hint_names_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    reason = ocr_unavailable()
    assert reason is not None and "tesseract-ocr" in reason
    with pytest.raises(SourceError, match=r"scan\.pdf has no text layer and .*\[ocr\]"):
        ocr_pages(tmp_path / "scan.pdf", [1])


@pytest.mark.parametrize("recognised, truth, expected", [
    ("The Crazy Ones", "The Crazy Ones", 1.0),
    ("The Crazy  Ones\n", "The  Crazy Ones", 1.0),
    ("The Crazy Onez", "The Crazy Ones", 1 - 1 / 14),
    ("", "abcd", 0.0),
    ("misﬁts", "misfits", 1.0),
])
def test_character_accuracy(recognised: str, truth: str, expected: float) -> None:
    assert character_accuracy(recognised, truth) == pytest.approx(expected)


def test_read_pdf_ocrs_a_scan_with_its_page_number(scanned: tuple[Path, str]) -> None:
    from ingest.pdf import read_pdf

    path, truth = scanned
    (doc,) = read_pdf(path)
    assert doc.page == 1 and doc.kind == "pdf" and doc.source == "scan.pdf"
    assert character_accuracy(doc.text, truth) >= 0.95


def test_with_ocr_off_a_scan_is_refused_with_the_hint(scanned: tuple[Path, str]) -> None:
    from ingest.pdf import read_pdf
    from rag.errors import NoTextError
    from rag.settings import Settings

    path, _ = scanned
    with pytest.raises(NoTextError, match=r"scan\.pdf has no text layer .*RAG_OCR=off.*ocrmypdf"):
        read_pdf(path, settings=Settings.from_env(ocr="off"))
