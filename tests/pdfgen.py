"""A tiny PDF writer for tests and demo data: text pages in Helvetica, nothing else.

Real PDFs come from ../shared/data; this makes small ones whose exact text and
page layout a test controls (citations to page N, upload limits, fuzz seeds).
"""

from __future__ import annotations

import textwrap
from pathlib import Path


def _escape(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: list[str], path: str | Path | None = None, *, title: str = "") -> bytes:
    """Write a PDF with one page per string (wrapped at 90 characters, Latin-1 text).

    Args:
        pages: the text of each page; blank lines separate paragraphs.
        path: where to write it, if anywhere.
        title: the document title in its metadata.

    Returns:
        The PDF bytes.
    """
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    pages_id = len(objects) + 1 + 2 * len(pages)
    kids = []
    for text in pages:
        lines: list[str] = []
        for para in text.split("\n"):
            lines += textwrap.wrap(para, 90) or [""]
        ops = ["BT", "/F1 11 Tf", "14 TL", "56 790 Td"]
        ops += [f"({_escape(line)}) Tj T*" for line in lines[:52]]
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1", errors="replace")
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        kids.append(add(
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 842] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (pages_id, content, font)
        ))
    assert add(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))) == pages_id
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)
    info = add(b"<< /Title (%s) /Producer (rag tests) >>" % _escape(title).encode("latin-1", errors="replace"))

    data = pdf_file(objects, root=catalog, info=info)
    if path is not None:
        Path(path).write_bytes(data)
    return data


def pdf_file(objects: list[bytes], *, root: int, info: int | None = None) -> bytes:
    """A PDF file of numbered objects (object n is ``objects[n - 1]``) with its cross-reference table.

    Args:
        objects: the bodies of objects 1, 2, ...
        root: the number of the catalog object.
        info: the number of the document information object, if any.

    Returns:
        The PDF bytes.
    """
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    info_ref = b" /Info %d 0 R" % info if info is not None else b""
    out += b"trailer\n<< /Size %d /Root %d 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, root, info_ref, xref)
    return bytes(out)
