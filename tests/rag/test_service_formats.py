"""Word, HTML and Markdown through the facade: ingested by content, cited by section, uploaded under their own kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import RAG
from rag.errors import UnreadableSourceError
from tests.docgen import make_docx


def test_files_of_every_format_are_searchable_by_section(rag: RAG, tmp_path: Path) -> None:
    page = tmp_path / "rivers.html"
    page.write_text("<html><head><title>Rivers</title><script>alert(1)</script></head><body><nav>Menu</nav>"
                    "<h1>Rivers</h1><h2>Danube</h2><p>The Danube flows through ten countries into the Black Sea.</p>"
                    "</body></html>", encoding="utf-8")
    notes = tmp_path / "notes.md"
    notes.write_text("# Setup\n\nThe deployment runs on three servers in Frankfurt.\n", encoding="utf-8")
    report = rag.add_files([make_docx(tmp_path / "nordic.docx"), page, notes])
    assert sorted(report.added) == ["nordic.docx", "notes.md", "rivers.html"] and not report.skipped
    kinds = {s.source: s.kind for s in rag.sources()}
    assert kinds == {"nordic.docx": "docx", "rivers.html": "html", "notes.md": "text"}
    top = rag.search("What is the capital of Denmark?", k=1)[0]
    assert top.source == "nordic.docx" and top.section == "Capitals" and "Copenhagen" in top.text
    top = rag.search("Where does the Danube flow?", k=1)[0]
    assert top.source == "rivers.html" and top.section == "Danube" and "alert" not in top.text
    top = rag.search("How many servers does the deployment use?", k=1)[0]
    assert top.source == "notes.md" and top.section == "Setup"


def test_an_upload_keeps_its_kind_and_a_lying_name_is_refused(rag: RAG, tmp_path: Path) -> None:
    docx = make_docx(tmp_path / "upload-tmp")
    report = rag.upload(docx, name="../Nordic Facts.docx")
    assert list(report.added) == ["Nordic Facts.docx"]
    assert (rag.settings.files_dir / "Nordic Facts.docx").read_bytes() == docx.read_bytes()
    nameless = rag.upload(docx, name="summary")  # no extension: the content names the kind
    assert list(nameless.added) == ["summary.docx"]
    with pytest.raises(UnreadableSourceError, match=r"report\.pdf is not a PDF \(its content is a Word document\)"):
        rag.upload(docx, name="report.pdf")
    assert not (rag.settings.files_dir / "report.pdf").exists()
