"""PDF -> one Document per page with text, via pypdf.

Encrypted, scanned (no text layer), oversized and broken files raise a
:class:`SourceError` subclass with one sentence a person can act on; the
indexer reports it and goes on with the rest of the batch.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from pathlib import Path

from rag.errors import EncryptedPDFError, NoTextError, SourceError, UnreadableSourceError
from rag.types import Document

log = logging.getLogger(__name__)
# pypdf logs every recoverable oddity of real-world files as a warning; we report per file instead.
logging.getLogger("pypdf").setLevel(logging.ERROR)

_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")


def clean_page_text(text: str) -> str:
    """Normalise extracted page text: Unicode NFKC (splits ligatures such as "ﬁ"), rejoin hyphenated line breaks, tidy spaces.

    Args:
        text: text as pypdf extracted it.

    Returns:
        The cleaned text (may be empty).
    """
    text = text.encode("utf-8", errors="replace").decode("utf-8")  # lone surrogates from odd cmaps
    text = unicodedata.normalize("NFKC", text.replace("\x00", ""))
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.splitlines())
    return _BLANK_LINES.sub("\n\n", text).strip()


def read_pdf(
    path: str | Path,
    *,
    password: str | None = None,
    name: str | None = None,
    max_bytes: int = 100 * 1024 * 1024,
    max_pages: int = 2000,
    max_seconds: float = 120.0,
) -> list[Document]:
    """Read a PDF into one Document per page that has text.

    Args:
        path: the file.
        password: the password of an encrypted file.
        name: the source name to store (default: the file name).
        max_bytes: refuse larger files.
        max_pages: refuse files with more pages.
        max_seconds: give up on files whose text takes longer to extract (checked between pages).

    Returns:
        Documents with ``page`` set (1-based), in page order.

    Raises:
        EncryptedPDFError: encrypted and no or a wrong password.
        NoTextError: no page has a text layer.
        UnreadableSourceError: not a PDF, damaged, or missing.
        SourceError: over the size or page limit.
    """
    path = Path(path)
    name = name or path.name
    if not path.is_file():
        raise UnreadableSourceError(name, f"No file at '{path}'; check the path")
    size = path.stat().st_size
    if size > max_bytes:
        raise SourceError(
            name, f"{name} is {size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit; "
            "split it or raise RAG_MAX_PDF_BYTES"
        )
    with path.open("rb") as fh:
        head = fh.read(1024)
    if b"%PDF-" not in head:
        raise UnreadableSourceError(name, f"{name} is not a PDF (its content does not start with %PDF-)")

    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            _decrypt(reader, name, password)
        n_pages = len(reader.pages)
    except SourceError:
        raise
    except DependencyError as exc:
        raise UnreadableSourceError(name, f"{name} uses an encryption this install cannot open ({exc})") from exc
    except FileNotDecryptedError as exc:
        raise EncryptedPDFError(name, _encrypted_message(name, password)) from exc
    except Exception as exc:  # pypdf raises many types for damaged files
        raise UnreadableSourceError(name, f"{name} could not be read as a PDF ({_reason(exc)}); it may be damaged") from exc

    if n_pages > max_pages:
        raise SourceError(
            name, f"{name} has {n_pages} pages, over the {max_pages}-page limit; split it or raise RAG_MAX_PDF_PAGES"
        )
    docs: list[Document] = []
    failed = 0
    started = time.monotonic()
    for number in range(1, n_pages + 1):
        if time.monotonic() - started > max_seconds:
            raise SourceError(
                name, f"{name} took over {max_seconds:.0f} s to read (stopped at page {number} of {n_pages}); "
                "it may be malformed or a decompression bomb; raise RAG_MAX_PDF_SECONDS to allow more"
            )
        try:
            raw = reader.pages[number - 1].extract_text() or ""
        except Exception as exc:  # one bad page must not lose the rest of the file
            failed += 1
            log.warning("%s: page %d could not be read (%s); skipping it", name, number, _reason(exc))
            continue
        text = clean_page_text(raw)
        if text:
            docs.append(Document(source=name, text=text, kind="pdf", title=name, page=number))
    if not docs:
        if failed == n_pages and n_pages:
            raise UnreadableSourceError(name, f"{name}: none of its {n_pages} pages could be read; it may be damaged")
        raise NoTextError(
            name, f"{name} has no text layer (scanned or image-only pages); run OCR on it first, "
            f"e.g. `ocrmypdf {name} ocr.pdf`, then ingest the result"
        )
    return docs


def _decrypt(reader, name: str, password: str | None) -> None:
    from pypdf import PasswordType

    # An empty user password opens many "encrypted" files that only restrict printing.
    for candidate in ([password] if password else []) + [""]:
        if reader.decrypt(candidate) != PasswordType.NOT_DECRYPTED:
            return
    raise EncryptedPDFError(name, _encrypted_message(name, password))


def _encrypted_message(name: str, password: str | None) -> str:
    if password:
        return f"The password given for {name} is wrong; check it and try again"
    return f"{name} is encrypted; pass its password with --password (or the password field in the app)"


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]
