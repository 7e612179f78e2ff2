"""Word, HTML, Markdown and text files: made with the real libraries (and real Wikipedia text), read by section."""

from __future__ import annotations

import html
import re
import zipfile
from pathlib import Path

import pytest

from ingest.formats import read_file, sniff
from rag.errors import NoTextError, SourceError, UnreadableSourceError
from tests.conftest import require_shared
from tests.docgen import make_docx
from tests.fakes.mediawiki import wikitext_to_plain


def test_docx_headings_become_sections_and_tables_stay_rows(tmp_path: Path) -> None:
    path = make_docx(tmp_path / "nordic.docx")
    assert sniff(path) == "docx"
    docs = read_file(path)
    assert [d.section for d in docs] == [None, "Capitals", "Budget"]
    assert {d.kind for d in docs} == {"docx"} and {d.title for d in docs} == {"Nordic facts"}
    assert {d.source for d in docs} == {"nordic.docx"}
    capitals = docs[1].text.splitlines()
    assert "Country | Capital | Population" in capitals
    assert "Denmark | Copenhagen | 5.9 million" in capitals
    assert "approved in March" in docs[2].text
    assert "Nordic facts" not in docs[0].text  # the title names the document, it is not body text


def test_content_decides_not_the_name(tmp_path: Path) -> None:
    docx_named_pdf = make_docx(tmp_path / "looks-like.pdf")
    assert sniff(docx_named_pdf) == "docx"
    page = tmp_path / "page.txt"
    page.write_text("<!DOCTYPE html><html><body><h1>Hi</h1><p>there</p></body></html>", encoding="utf-8")
    assert sniff(page) == "html"
    notes = tmp_path / "notes.html"
    notes.write_text("# Plain notes\n\nNo markup at all.\n", encoding="utf-8")
    assert sniff(notes) == "text"
    pdf = tmp_path / "x.docx"
    pdf.write_bytes(b"%PDF-1.7\n...")
    assert sniff(pdf) == "pdf"


@pytest.mark.parametrize("data, says", [
    (b"\x00\x01\x02\x03" * 64, "binary"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, ".docx"),
])
def test_unsupported_content_is_one_sentence(tmp_path: Path, data: bytes, says: str) -> None:
    path = tmp_path / "thing.docx"
    path.write_bytes(data)
    with pytest.raises(UnreadableSourceError, match=re.escape(says)) as info:
        read_file(path)
    assert "thing.docx" in str(info.value) and "\n" not in str(info.value)


def test_a_zip_that_is_not_word_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "archive.docx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(UnreadableSourceError, match="not a Word document"):
        read_file(path)


def test_damaged_docx_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "broken.docx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("word/document.xml", "<not really xml")
    with pytest.raises(UnreadableSourceError, match="cannot be read"):
        read_file(path)


def _wiki_html(title: str, plain: str) -> str:
    """Render MediaWiki plain text (``== headings ==``) as a page with the chrome real sites add."""
    body: list[str] = []
    paragraph: list[str] = []

    def close() -> None:
        if paragraph:
            body.append(f"<p>{html.escape(' '.join(paragraph))}</p>")
            paragraph.clear()

    for line in plain.splitlines():
        heading = re.fullmatch(r"(={2,6})\s*(.+?)\s*\1\s*", line)
        if heading or not line.strip():
            close()
        if heading:
            level, text = len(heading.group(1)), html.escape(heading.group(2))
            body.append(f"<h{level} id='{text}'>{text}</h{level}>")
        elif line.strip():
            paragraph.append(line.strip())
    close()
    return (f"<!DOCTYPE html><html><head><title>{html.escape(title)} - Wikipedia</title>"
            "<script>window.tracking = 'SCRIPT-MARKER';</script><style>.x{color:red}</style></head><body>"
            "<nav><a href='/'>NAV-MARKER Main page</a></nav><header>HEADER-MARKER</header>"
            f"<main><h1>{html.escape(title)}</h1>{''.join(body)}</main>"
            "<footer>FOOTER-MARKER Text is available under CC BY-SA</footer></body></html>")


def test_real_wikipedia_text_as_html(tmp_path: Path) -> None:
    source = require_shared("wiki", "wikitext", "Mozilla-Firefox.txt")
    plain = wikitext_to_plain(source.read_text(encoding="utf-8"))
    headings = re.findall(r"^==\s*([^=].*?)\s*==\s*$", plain, flags=re.M)
    assert len(headings) > 3
    path = tmp_path / "firefox.html"
    path.write_text(_wiki_html("Mozilla Firefox", plain), encoding="utf-8")
    docs = read_file(path)
    text = "\n".join(d.text for d in docs)
    for marker in ("SCRIPT-MARKER", "NAV-MARKER", "HEADER-MARKER", "FOOTER-MARKER", ".x{color"):
        assert marker not in text
    assert {d.title for d in docs} == {"Mozilla Firefox - Wikipedia"}
    sections = [d.section for d in docs]
    assert set(headings[:3]) <= set(sections)
    first_line = plain.strip().splitlines()[0].strip()
    assert first_line[:60] in docs[0].text
    assert docs[0].section == "Mozilla Firefox"  # the lead sits under the page's <h1>


def test_markdown_and_text_headings(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text("Intro before any heading.\n\n# Install\n\nRun the setup script.\n\n```\n# a comment, not a heading\n"
                    "```\n\nUsage\n=====\n\nAsk a question.\n\n## Limits ##\n\nOne writer at a time.\n", encoding="utf-8")
    docs = read_file(path)
    assert [d.section for d in docs] == [None, "Install", "Usage", "Limits"]
    assert "# a comment, not a heading" in docs[1].text
    assert {d.kind for d in docs} == {"text"}
    plain = tmp_path / "notes.txt"
    plain.write_text("Just some notes\nwithout headings.\n", encoding="utf-8")
    (doc,) = read_file(plain, name="my-notes")
    assert doc.section is None and doc.source == "my-notes" and "without headings" in doc.text


def test_empty_and_oversized_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.md"
    empty.write_text("\n\n   \n", encoding="utf-8")
    with pytest.raises(NoTextError, match="no text"):
        read_file(empty)
    big = tmp_path / "big.txt"
    big.write_text("word " * 1000, encoding="utf-8")
    with pytest.raises(SourceError, match="over the"):
        read_file(big, max_bytes=1000)


def test_legacy_windows_text_is_read(tmp_path: Path) -> None:
    path = tmp_path / "old.txt"
    path.write_bytes("Caf\xe9 cr\xe8me \u2013 a note saved by an old editor.".encode("cp1252"))
    (doc,) = read_file(path)
    assert doc.text == "Caf\xe9 cr\xe8me \u2013 a note saved by an old editor."
