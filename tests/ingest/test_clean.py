"""Page furniture is not indexed: headers/footers, page numbers, contents and index lines, fragments (real PDFs)."""

from __future__ import annotations

import re

import pytest

from ingest import clean
from ingest.chunk import chunk_documents
from ingest.pdf import read_pdf
from rag.types import Document
from tests.conftest import require_shared


def page(n: int, text: str, source: str = "book.pdf") -> Document:
    return Document(source=source, text=text, kind="pdf", title=source, page=n)


@pytest.fixture(scope="module")
def lecture() -> list[Document]:
    """The 117-page German lecture; generous time limit, the machine may be busy."""
    path = next(require_shared("pdfs").rglob("009-*.pdf"))
    return read_pdf(path, max_seconds=1200)


@pytest.fixture(scope="module")
def lecture_chunks(embedder, lecture: list[Document]):
    return chunk_documents(lecture, embedder.token_offsets)


def test_lecture_headers_contents_and_index_are_not_chunked(lecture, lecture_chunks) -> None:
    by_page = {d.page: d for d in lecture}
    for c in lecture_chunks:
        assert by_page[c.page].text[c.start:c.end] == c.text  # offsets still point into the page
        first_line = c.text.split("\n", 1)[0]
        assert not re.fullmatch(r"\d+ \d+\.\d+\. [A-ZÄÖÜ][A-ZÄÖÜ \-]+", first_line), first_line  # running header
        assert not re.search(r"(?:\. ){4,}", c.text), c.text[:200]  # a dot leader
        assert clean.words(c.text) >= clean.MIN_CHUNK_WORDS, c.text
    pages = {c.page for c in lecture_chunks}
    assert 4 not in pages  # the table of contents
    assert "Teilraumtopologie, 4" not in " ".join(c.text for c in lecture_chunks)  # the index
    # The headers were real: page 41 opens with one, and its content is still there, after it.
    assert by_page[41].text.startswith("38 2.3. SIMPLIZIALKOMPLEX\n")
    p41 = [c for c in lecture_chunks if c.page == 41]
    assert p41 and p41[0].start == len("38 2.3. SIMPLIZIALKOMPLEX\n") and "konvexe Hülle" in p41[0].text
    # Most of the lecture is still there.
    assert len(pages) > 100


def test_the_table_page_loses_its_page_number_only(embedder, pdf_dir) -> None:
    docs = read_pdf(next(pdf_dir.rglob("026-*.pdf")))
    table = [c for c in chunk_documents(docs, embedder.token_offsets) if c.page == 3]
    assert docs[2].text.endswith("\n3")
    assert len(table) == 1 and table[0].text.startswith("Table 1: EU Countries Information")
    assert table[0].text.endswith("Finland 5.5 338,424 Helsinki Finnish, Swedish")


def test_repeated_first_and_last_lines_are_headers_and_footers(embedder) -> None:
    body = "The survey measured {} wells across the northern valley and found clean water in most of them."
    docs = [page(n, f"Annual Report {2020 + n}\n{body.format(n * 10)}\nConfidential - page {n}") for n in range(1, 5)]
    assert {"annual report", "confidential page"} <= clean.repeated_edge_lines(docs)
    chunks = chunk_documents(docs, embedder.token_offsets)
    assert [c.text for c in chunks] == [body.format(n * 10) for n in range(1, 5)]
    # Two pages are not enough to call a line a header.
    assert clean.repeated_edge_lines(docs[:2]) == set()


@pytest.mark.parametrize(("line", "noise"), [
    ("17", True), ("iii", True), ("Page 3 of 10", True), ("- 12 -", True), ("Seite 4", True),
    ("1.2 Metrische Räume . . . . . . . . . . 6", True), ("Introduction ........ 1", True),
    ("In 1911 the tower was painted red.", False), ("Mild", False), ("3.5 million people", False),
])
def test_noise_lines(line: str, noise: bool) -> None:
    assert clean.is_noise_line(line) is noise


def test_a_fragment_page_is_not_indexed_unless_it_is_all_there_is(embedder) -> None:
    text = "The lighthouse keeper Marta Velasquez painted the lighthouse tower bright red in 1911."
    docs = [page(1, text), page(2, "(a) Figure 2"), page(3, text.replace("1911", "1912"))]
    assert [c.page for c in chunk_documents(docs, embedder.token_offsets)] == [1, 3]
    alone = chunk_documents([page(1, "Short note.")], embedder.token_offsets)
    assert [c.text for c in alone] == ["Short note."]
    wiki = Document(source="w", text="Tiny.", kind="wikipedia", title="w")
    assert [c.text for c in chunk_documents([wiki, Document(**{**wiki.__dict__, "text": text})],
                                            embedder.token_offsets)] == ["Tiny.", text]  # only PDFs are cleaned
