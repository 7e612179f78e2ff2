"""Word, HTML, Markdown and plain-text files -> one Document per section.

What a file is comes from its content, never its name: a ``.docx`` is a ZIP that holds
``word/document.xml``, HTML starts with its markup, text is valid UTF-8. Headings start
sections, so a citation names the section it came from (for Word, the heading); tables are
kept as rows, one line each with the cells joined by `` | ``. PDFs are read by
:mod:`ingest.pdf`; :func:`sniff` tells the caller which reader a file needs.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Literal

from rag.errors import NoTextError, SourceError, UnreadableSourceError
from rag.types import Document

FileKind = Literal["pdf", "docx", "html", "text"]

# Readers look for the PDF header in the first 1024 bytes; HTML announces itself early too.
_SNIFF_BYTES = 4096
_PDF_MAGIC = b"%PDF-"
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .doc / .xls
_HTML_START = re.compile(r"\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b",
                         re.IGNORECASE | re.DOTALL)
_ATX = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SETEXT = re.compile(r"^(=+|-+)\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_RUNS = re.compile(r"\n\s*\n+")

SUPPORTED = "a PDF, a Word document (.docx), an HTML page, or a Markdown or plain-text file"


@dataclass(frozen=True)
class Section:
    """A heading (None before the first one) and the lines under it."""

    heading: str | None
    lines: tuple[str, ...]


def sniff(path: str | Path) -> FileKind:
    """Which reader a file needs, decided by its content.

    Args:
        path: the file.

    Returns:
        ``pdf``, ``docx``, ``html`` or ``text``.

    Raises:
        UnreadableSourceError: the file cannot be read or is none of these (the message names
            what it seems to be and the fix).
    """
    path = Path(path)
    if not path.is_file():
        raise UnreadableSourceError(path.name, f"No file at '{path}'; check the path")
    try:
        with path.open("rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError as exc:
        raise UnreadableSourceError(path.name, f"Cannot read {path.name} ({exc.strerror}); check the path") from None
    if _PDF_MAGIC in head[:1024]:
        return "pdf"
    if head.startswith(_ZIP_MAGIC):
        if _is_docx(path):
            return "docx"
        raise UnreadableSourceError(path.name, f"{path.name} is a ZIP archive but not a Word document; "
                                    f"unpack it or upload {SUPPORTED}")
    if head.startswith(_OLE_MAGIC):
        raise UnreadableSourceError(path.name, f"{path.name} is an old binary Office file (.doc); "
                                    "save it as .docx (Word: File > Save As) and add it again")
    text = _decode(head, partial=True)
    if text is None:
        raise UnreadableSourceError(path.name, f"{path.name} is not {SUPPORTED} (its content is binary); "
                                    "convert it to one of these first")
    return "html" if _HTML_START.match(text) else "text"


def read_file(path: str | Path, *, name: str | None = None, max_bytes: int | None = None) -> list[Document]:
    """Read a Word, HTML, Markdown or text file into one Document per section.

    Args:
        path: the file.
        name: the source name to store (default: the file name).
        max_bytes: refuse larger files.

    Returns:
        Documents in reading order, each with its ``section`` (the heading above it, or None).

    Raises:
        SourceError: the file is too large, unreadable, a PDF (read those with ``ingest.pdf``),
            or has no text.
    """
    path = Path(path)
    name = name or path.name
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnreadableSourceError(name, f"Cannot read {name} ({exc.strerror}); check the path") from None
    if max_bytes is not None and size > max_bytes:
        raise SourceError(name, f"{name} is {size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit; "
                          "split it or raise RAG_MAX_PDF_BYTES")
    kind = sniff(path)
    if kind == "pdf":
        raise UnreadableSourceError(name, f"{name} is a PDF; read it with ingest.pdf.read_pdf")
    if kind == "docx":
        title, sections = _docx_sections(path, name)
        doc_kind = "docx"
    else:
        raw = path.read_bytes()
        text = _decode(raw)
        if text is None:
            raise UnreadableSourceError(name, f"{name} is not text in UTF-8 or Windows-1252; save it as UTF-8 "
                                        "and add it again")
        if kind == "html":
            title, sections = html_sections(text)
            doc_kind = "html"
        else:
            title, sections = None, markdown_sections(text)
            doc_kind = "text"
    docs = documents(name, sections, kind=doc_kind, title=title or name)
    if not docs:
        raise NoTextError(name, f"{name} has no text to index")
    return docs


def documents(source: str, sections: Iterable[Section], *, kind: str, title: str) -> list[Document]:
    """One Document per section that has text.

    Args:
        source: the source name every document carries.
        sections: headings with their lines, in reading order.
        kind: the source kind stored with each chunk.
        title: the title shown in citations.

    Returns:
        The documents (sections without text are left out).
    """
    out = []
    for section in sections:
        text = _BLANK_RUNS.sub("\n\n", "\n".join(section.lines)).strip()
        if text:
            out.append(Document(source=source, text=text, kind=kind, title=title,  # type: ignore[arg-type]
                                section=section.heading))
    return out


# -- Markdown and plain text -------------------------------------------------------------------
def markdown_sections(text: str) -> list[Section]:
    """Split Markdown (or plain text that uses its headings) at ATX (``# H``) and setext headings.

    Lines inside fenced code blocks are text, never headings.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    sections: list[Section] = []
    heading: str | None = None
    body: list[str] = []
    fenced = False

    def close() -> None:
        sections.append(Section(heading, tuple(_tidy(x) for x in body)))

    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
            body.append(line)
            continue
        if not fenced:
            atx = _ATX.match(line)
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            if atx:
                close()
                heading, body = atx.group(2).strip(), []
                continue
            if line.strip() and _SETEXT.match(nxt) and not _SETEXT.match(line) and (not body or not body[-1].strip()):
                close()
                heading, body = line.strip(), []
                continue
            if _SETEXT.match(line) and sections and heading is not None and not body:
                continue  # the underline of the heading just read
        body.append(line)
    close()
    return sections


# -- HTML ----------------------------------------------------------------------------------------
_DROP = {"script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg",
         "iframe", "object", "embed", "button", "select", "input", "textarea", "canvas", "menu"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_LEAF_BLOCKS = {"p", "pre", "dt", "dd", "caption", "figcaption", "blockquote", "address", "summary"}


def html_sections(html: str) -> tuple[str | None, list[Section]]:
    """Readable text of an HTML page by section: scripts, styles and navigation dropped.

    Returns:
        The page title (``<title>``, else the first ``<h1>``) and its sections.
    """
    from bs4 import BeautifulSoup, Comment, NavigableString, Tag

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(_DROP):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": ["navigation", "banner", "contentinfo", "search"]}):
        tag.decompose()
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    # Inline markup joins words as written ("<b>world</b>."); blocks and breaks separate them.
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for block in soup.find_all([*_BLOCKISH, "li", "td", "th", "tr", "dt", "dd", "section", "article"]):
        block.append(" ")
    title_tag = soup.find("title")
    title = _tidy(title_tag.get_text()) if title_tag else None
    root = soup.find("main") or soup.find("article") or soup.body or soup
    sections: list[Section] = []
    state = {"heading": None, "lines": []}

    def emit(text: str) -> None:
        text = _tidy(text)
        if text:
            state["lines"].append(text)

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                emit(str(child))
            elif not isinstance(child, Tag) or child.name in ("title", "head"):
                continue
            elif child.name in _HEADINGS:
                sections.append(Section(state["heading"], tuple(state["lines"])))
                state["heading"], state["lines"] = _tidy(child.get_text()) or None, []
            elif child.name == "tr":
                cells = [_tidy(c.get_text()) for c in child.find_all(["th", "td"], recursive=False)]
                emit(" | ".join(c for c in cells if c))
            elif child.name in _LEAF_BLOCKS or not child.find([*_BLOCKISH, "li", "tr"]):
                emit(child.get_text())  # a block, or inline markup holding no block: one line
            elif child.name == "br":
                continue
            else:
                walk(child)

    walk(root)
    sections.append(Section(state["heading"], tuple(state["lines"])))
    if not title:
        first = next((s.heading for s in sections if s.heading), None)
        title = first
    return title, [s for s in sections if s.lines or s.heading]


_BLOCKISH = ["p", "ul", "ol", "table", "div", "pre", "blockquote", *sorted(_HEADINGS)]


# -- Word ------------------------------------------------------------------------------------------
def _is_docx(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return "word/document.xml" in z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _docx_sections(path: Path, name: str) -> tuple[str | None, list[Section]]:
    """Paragraphs and tables of a .docx in body order, split at its headings."""
    import docx

    try:
        document = docx.Document(str(path))
    except Exception as exc:  # python-docx raises a handful of unrelated types for damaged files
        raise UnreadableSourceError(name, f"{name} looks like a Word document but cannot be read ({exc}); "
                                    "open and save it again in Word, or export it as PDF") from None
    title = _tidy(document.core_properties.title or "") or None
    sections: list[Section] = []
    heading: str | None = None
    lines: list[str] = []
    for block in _docx_blocks(document):
        if isinstance(block, str):
            lines.append(block)
            continue
        kind, text = block
        if kind == "title":
            title = title or text
            continue
        sections.append(Section(heading, tuple(lines)))
        heading, lines = text, []
    sections.append(Section(heading, tuple(lines)))
    return title, sections


def _docx_blocks(document) -> Iterator[str | tuple[str, str]]:
    """Body text in order: plain lines, or ("heading" | "title", text) where a section starts."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = _tidy(item.text)
            if not text:
                continue
            style = (item.style.name if item.style is not None else "") or ""
            if style == "Title":
                yield ("title", text)
            elif style.startswith("Heading"):
                yield ("heading", text)
            else:
                yield text
        elif isinstance(item, Table):
            for row in item.rows:
                cells: list[str] = []
                for cell in row.cells:
                    text = _tidy(cell.text)
                    if text and (not cells or cells[-1] != text):  # merged cells repeat their text
                        cells.append(text)
                if cells:
                    yield " | ".join(cells)


# -- helpers -------------------------------------------------------------------------------------------
def _tidy(text: str) -> str:
    return _SPACES.sub(" ", text.replace("\x00", "")).strip()


def _decode(data: bytes, *, partial: bool = False) -> str | None:
    """The bytes as text: UTF-8 (with or without BOM), else Windows-1252 (legacy Windows and
    Latin-1 files); None when they are binary."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # A sniffed prefix may end inside a multi-byte character.
        if partial and exc.start >= len(data) - 3:
            try:
                return data[: exc.start].decode("utf-8-sig")
            except UnicodeDecodeError:
                pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f")
    return text if controls <= len(text) // 100 else None
