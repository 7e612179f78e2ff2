"""PDF -> one Document per page with text, via pypdf in a worker process under hard limits.

Encrypted, scanned (no text layer), oversized and broken files raise a
:class:`SourceError` subclass with one sentence a person can act on; the
indexer reports it and goes on with the rest of the batch.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import selectors
import struct
import subprocess
import sys
import threading
import time
import unicodedata
from typing import Callable
from pathlib import Path

from rag.errors import EncryptedPDFError, NoTextError, SourceError, UnreadableSourceError
from rag.settings import Settings
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
    max_bytes: int | None = None,
    max_pages: int | None = None,
    max_seconds: float | None = None,
    max_page_bytes: int | None = None,
    settings: Settings | None = None,
    on_page: Callable[[int, int], None] | None = None,
) -> list[Document]:
    """Read a PDF into one Document per page that has text, in a worker process under hard limits.

    The text is extracted in a separate process that is killed once ``max_seconds`` have
    passed, so a file crafted to make extraction slow (a page of many megabytes of
    compressed text) costs at most that long and never blocks the caller's other work; a
    page whose content decompresses to more than ``max_page_bytes`` is refused before its
    text is extracted. Limits left as None come from ``settings``
    (``Settings.from_env()`` when omitted).

    Args:
        path: the file.
        password: the password of an encrypted file.
        name: the source name to store (default: the file name).
        max_bytes: refuse larger files (``RAG_MAX_PDF_BYTES``).
        max_pages: refuse files with more pages (``RAG_MAX_PDF_PAGES``).
        max_seconds: give up on files whose text takes longer to extract (``RAG_MAX_PDF_SECONDS``).
        max_page_bytes: refuse pages with more decompressed content (``RAG_MAX_PDF_PAGE_BYTES``).
        settings: where the limits not given come from.
        on_page: called with (page being read, pages in the file) as the worker goes.

    Returns:
        Documents with ``page`` set (1-based), in page order.

    Raises:
        EncryptedPDFError: encrypted and no or a wrong password.
        NoTextError: no page has a text layer.
        UnreadableSourceError: not a PDF, damaged, or missing.
        SourceError: over the size, page, per-page content or time limit.
    """
    from ingest.files import is_pdf

    limits = settings or Settings.from_env()
    max_bytes = limits.max_pdf_bytes if max_bytes is None else max_bytes
    max_pages = limits.max_pdf_pages if max_pages is None else max_pages
    max_seconds = limits.max_pdf_seconds if max_seconds is None else max_seconds
    max_page_bytes = limits.max_pdf_page_bytes if max_page_bytes is None else max_page_bytes
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
    if not is_pdf(path):
        raise UnreadableSourceError(name, f"{name} is not a PDF (its content does not start with %PDF-)")
    ocr_languages = limits.ocr_languages if limits.ocr == "auto" else None
    pages = _in_worker(name, max_seconds, (str(path), password, name, max_pages, max_page_bytes, ocr_languages),
                       on_page=on_page)
    return [Document(source=name, text=text, kind="pdf", title=name, page=number) for number, text in pages]


_ERRORS = {cls.__name__: cls for cls in (SourceError, EncryptedPDFError, NoTextError, UnreadableSourceError)}
_IDLE_WORKERS = 2


class _Worker:
    """A ``python -m ingest.pdf`` process that reads PDFs on request, one at a time.

    A fresh interpreter (not multiprocessing: its spawn and forkserver modes re-run the
    caller's main script in every worker) that inherits no torch threads or locks; kept
    between files so a read costs no start-up, and killed when a read runs out of time.
    """

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        # Unbuffered, so a message select() saw is never sitting in a Python buffer select() cannot see.
        self.proc = subprocess.Popen([sys.executable, "-m", "ingest.pdf"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, close_fds=True, bufsize=0)

    def send(self, message: object) -> None:
        _write_message(self.proc.stdin, message)

    def receive(self, timeout: float) -> object | None:
        """The next message, or None when none came within ``timeout`` seconds."""
        # A selector, not select.select(): that fails for descriptors numbered 1024 and up, which a
        # long-running server holding many open files reaches.
        with selectors.DefaultSelector() as waiting:
            waiting.register(self.proc.stdout, selectors.EVENT_READ)
            if not waiting.select(max(timeout, 0)):
                return None
        return _read_message(self.proc.stdout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


_idle: list[_Worker] = []
_idle_lock = threading.Lock()


def _in_worker(name: str, max_seconds: float, args: tuple,
               on_page: Callable[[int, int], None] | None = None) -> list[tuple[int, str]]:
    with _idle_lock:
        worker = _idle.pop() if _idle else None
    if worker is None or worker.proc.poll() is not None:
        worker = _Worker()
    deadline = time.monotonic() + max_seconds
    at: tuple[int, int] | None = None
    done = False
    try:
        worker.send(args)
        while True:
            message = worker.receive(deadline - time.monotonic())
            if message is None:
                where = f" (stopped at page {at[0]} of {at[1]})" if at else ""
                raise SourceError(
                    name, f"{name} took over {max_seconds:g} s to read{where}; it may be malformed or a "
                    "decompression bomb; raise RAG_MAX_PDF_SECONDS to allow more"
                )
            kind = message[0]
            if kind == "page":
                at = message[1:]
                if on_page is not None:
                    on_page(*at)
                continue
            done = True
            if kind == "ok":
                return message[1]
            if kind == "error":
                raise _ERRORS[message[1]](message[2], message[3], hints=message[4])
            raise UnreadableSourceError(name, f"{name} could not be read as a PDF ({message[1]}); it may be damaged")
    except (EOFError, OSError, pickle.UnpicklingError):
        done = False
        raise UnreadableSourceError(
            name, f"{name} could not be read as a PDF (the reader stopped with exit code {worker.proc.poll()}); "
            "it may be damaged"
        ) from None
    finally:
        if done:
            with _idle_lock:
                if len(_idle) < _IDLE_WORKERS:
                    _idle.append(worker)
                    worker = None
        if worker is not None:
            worker.kill()


def _write_message(stream, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("!Q", len(data)) + data)
    stream.flush()


def _read_message(stream) -> object:
    (size,) = struct.unpack("!Q", _read_exactly(stream, 8))
    return pickle.loads(_read_exactly(stream, size))


def _read_exactly(stream, size: int) -> bytes:
    parts, left = [], size
    while left:
        part = stream.read(left)
        if not part:
            raise EOFError("the PDF reader stopped")
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _serve() -> None:
    """The worker's loop: read (path, password, name, max_pages, max_page_bytes, ocr_languages), answer, repeat."""
    import pypdf  # noqa: F401 - imported once, before the first request

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the message stream
    send = lambda message: _write_message(stdout, message)  # noqa: E731
    while True:
        try:
            path, password, name, max_pages, max_page_bytes, ocr_languages = _read_message(stdin)
        except EOFError:
            return
        try:
            send(("ok", _extract(send, Path(path), password, name, max_pages, max_page_bytes, ocr_languages)))
        except SourceError as exc:
            send(("error", type(exc).__name__ if type(exc).__name__ in _ERRORS else "SourceError",
                  exc.source, exc.message, exc.hints))
        except Exception as exc:  # noqa: BLE001 - reported to the caller as one sentence
            send(("crash", _reason(exc)))


def _extract(send, path: Path, password: str | None, name: str, max_pages: int,
             max_page_bytes: int, ocr_languages: str | None = None) -> list[tuple[int, str]]:
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
        raise _encrypted(name, password) from exc
    except Exception as exc:  # pypdf raises many types for damaged files
        raise UnreadableSourceError(name, f"{name} could not be read as a PDF ({_reason(exc)}); it may be damaged") from exc

    if n_pages > max_pages:
        raise SourceError(
            name, f"{name} has {n_pages} pages, over the {max_pages}-page limit; split it or raise RAG_MAX_PDF_PAGES"
        )
    pages: list[tuple[int, str]] = []
    failed = 0
    for number in range(1, n_pages + 1):
        send(("page", number, n_pages))
        try:
            page = reader.pages[number - 1]
            content = _content_bytes(page)
            if content > max_page_bytes:
                raise SourceError(
                    name, f"Page {number} of {name} holds {content / 2**20:.1f} MB of content once decompressed, "
                    f"over the {max_page_bytes / 2**20:g} MB per-page limit; it may be a decompression bomb; "
                    "raise RAG_MAX_PDF_PAGE_BYTES to allow more"
                )
            raw = page.extract_text() or ""
        except SourceError:
            raise
        except Exception as exc:  # one bad page must not lose the rest of the file
            failed += 1
            log.warning("%s: page %d could not be read (%s); skipping it", name, number, _reason(exc))
            continue
        text = clean_page_text(raw)
        if text:
            pages.append((number, text))
    if not pages:
        if failed == n_pages and n_pages:
            raise UnreadableSourceError(name, f"{name}: none of its {n_pages} pages could be read; it may be damaged")
        return _ocr(send, path, password, name, n_pages, ocr_languages)
    return pages


def _ocr(send, path: Path, password: str | None, name: str, n_pages: int,
         languages: str | None) -> list[tuple[int, str]]:
    """A scanned PDF's pages by OCR, in this worker (so the caller's time limit bounds it too)."""
    from ingest.ocr import ocr_pages, ocr_unavailable

    reason = "OCR is off (RAG_OCR=off)" if languages is None else ocr_unavailable()
    if reason is not None:
        raise NoTextError(name, f"{name} has no text layer (scanned or image-only pages) and {reason}; "
                          f"or run OCR on it first, e.g. `ocrmypdf {name} ocr.pdf`, then ingest the result")
    read = ocr_pages(path, range(1, n_pages + 1), password=password, languages=languages, name=name,
                     progress=lambda done, total: send(("page", done, total)))
    pages = [(number, text) for number, text in ((n, clean_page_text(t)) for n, t in sorted(read.items())) if text]
    if not pages:
        raise NoTextError(name, f"{name} has no text layer and OCR found no text on its {n_pages} page(s); "
                          "check that it holds legible text (RAG_OCR_LANGUAGES names the languages to read)")
    return pages


def _content_bytes(page) -> int:
    """Decompressed size of what extracting the page's text parses: its content and its form XObjects."""
    from pypdf.errors import LimitReachedError

    total = 0
    try:
        contents = page.get_contents()
        if contents is not None:
            total += len(contents.get_data())
        seen: set[int] = set()
        stack = [(page.get("/Resources"), 0)]
        while stack:
            resources, depth = stack.pop()
            resources = resources.get_object() if resources is not None else None
            if not resources or depth > 8:
                continue
            xobjects = resources.get("/XObject")
            for ref in (xobjects.get_object().values() if xobjects is not None else ()):
                obj = ref.get_object()
                if id(obj) in seen or obj.get("/Subtype") != "/Form":
                    continue
                seen.add(id(obj))
                total += len(obj.get_data())
                stack.append((obj.get("/Resources"), depth + 1))
    except LimitReachedError:
        return sys.maxsize  # over pypdf's own decompression cap: certainly over ours
    except Exception:  # noqa: BLE001 - a damaged stream: extraction reports the page
        pass
    return total


def _decrypt(reader, name: str, password: str | None) -> None:
    from pypdf import PasswordType

    # An empty user password opens many "encrypted" files that only restrict printing.
    for candidate in ([password] if password else []) + [""]:
        if reader.decrypt(candidate) != PasswordType.NOT_DECRYPTED:
            return
    raise _encrypted(name, password)


# How to give a password, on each surface (rag.errors.RagError hints).
PASSWORD_HINTS = {"cli": "pass its password with --password",
                  "page": "type its password in the Password field and click Add files again",
                  "api": "send its password in the form field 'password'"}


def _encrypted_message(name: str, password: str | None) -> str:
    if password:
        return f"The password given for {name} is wrong; check it and try again"
    return f"{name} is encrypted"


def _encrypted(name: str, password: str | None) -> EncryptedPDFError:
    return EncryptedPDFError(name, _encrypted_message(name, password), hints=None if password else PASSWORD_HINTS)


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


if __name__ == "__main__":
    _serve()
