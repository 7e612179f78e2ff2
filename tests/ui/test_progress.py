"""Upload progress: each file's pages read and chunks embedded reach the page's bar, in order."""

from __future__ import annotations

from pathlib import Path

from tests.pdfgen import make_pdf
from ui.app import Actions


def test_upload_reports_pages_read_then_chunks_embedded_per_file(rag, tmp_path: Path) -> None:
    pages = [f"Page {n} is about the harbour of Velmora number {n}. " * 12 for n in range(1, 13)]
    big, small = tmp_path / "big.pdf", tmp_path / "small.pdf"
    make_pdf(pages, big)
    make_pdf(pages[:2], small)
    events: list[tuple[float, str]] = []
    rag.settings = rag.settings.replace(ingest_batch=4)  # several batches, so embedding reports steps
    result = Actions(rag).upload([(str(big), "big.pdf"), (str(small), "small.pdf")], None,
                                 progress=lambda frac, desc: events.append((frac, desc)))
    assert [f["status"] for f in result["files"]] == ["added", "added"]
    fractions = [f for f, _ in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and events[-1][1] == "Done"
    big_events = [d for _, d in events if d.startswith("big.pdf (1 of 2)")]
    read = [d for d in big_events if "read page" in d]
    assert read == [f"big.pdf (1 of 2): read page {n} of 12" for n in range(1, 13)]
    embedded = [d for d in big_events if "embedded" in d]
    chunks = result["files"][0]["chunks"]
    assert len(embedded) >= 2 and embedded[-1] == f"big.pdf (1 of 2): embedded {chunks} of {chunks} chunks"
    assert big_events.index(read[-1]) < big_events.index(embedded[0])  # pages first, then chunks
    assert any(d.startswith("small.pdf (2 of 2): read page 2 of 2") for _, d in events)
    # The bar's second file starts where the first ended.
    first_small = next(f for f, d in events if d.startswith("small.pdf"))
    assert first_small == 0.5
