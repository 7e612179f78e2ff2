"""Real Word documents for tests, written with python-docx (the library users' files come from)."""

from __future__ import annotations

from pathlib import Path


def make_docx(path: Path) -> Path:
    """A real .docx written by python-docx: a title, two heading levels, a table, a list."""
    import docx

    doc = docx.Document()
    doc.core_properties.title = "Nordic facts"
    doc.add_paragraph("Nordic facts", style="Title")
    doc.add_paragraph("An overview of the Nordic countries for the travel team.")
    doc.add_heading("Capitals", level=1)
    doc.add_paragraph("Each country and its capital city:")
    table = doc.add_table(rows=4, cols=3)
    rows = [("Country", "Capital", "Population"), ("Denmark", "Copenhagen", "5.9 million"),
            ("Norway", "Oslo", "5.5 million"), ("Sweden", "Stockholm", "10.5 million")]
    for r, cells in enumerate(rows):
        for c, text in enumerate(cells):
            table.cell(r, c).text = text
    doc.add_heading("Budget", level=2)
    doc.add_paragraph("The travel budget was approved in March.", style="List Bullet")
    doc.save(path)
    return path
