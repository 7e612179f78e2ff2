"""Stored files: safe names, the one PDF content check, staging, and the copies under ``files_dir``.

A stored file's name is also its source name in the index (``RAG.add_pdfs`` names a
source after the file), so a citation of source ``report.pdf`` page 3 links to
``/files/report.pdf#page=3``. Nothing outside ``files_dir`` is ever written or served:
names are reduced to a bare, ASCII-safe basename, and every lookup re-checks the name.

An upload is first *staged* in ``files_dir/.staging/<random>/<name>``; the ingestion
transaction (``ingest.index``) moves it into place once its chunks are in the store. A
staged folder holds a lock file its process keeps locked, so a folder left by a killed
process is recognisable (its lock is free) and :func:`sweep_staging` removes it.

The default collection's files live in ``files_dir`` itself (as before collections), every
other collection's in ``files_dir/<collection>/`` (:func:`collection_dir`), served at
``/files/<collection>/<name>``: a collection name has no dot and a stored file name always
has an extension, so the two never meet, and ``report.pdf`` of ``team-a`` and of ``team-b``
are two files.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import tempfile
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from rag.errors import InvalidNameError, SourceError, UnreadableSourceError
from rag.settings import DEFAULT_COLLECTION

log = logging.getLogger(__name__)

FILES_ROUTE = "/files"
MAX_NAME_CHARS = 120
# The PDF header may follow a little junk; readers (Acrobat, pypdf) look in the first 1024 bytes.
PDF_MAGIC = b"%PDF-"
MAGIC_WINDOW = 1024
STAGING = ".staging"
_LOCK = ".lock"
_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+-]+")


class NotAPDFError(UnreadableSourceError, ValueError):
    """The uploaded bytes are not a PDF, whatever the file is called."""


# The extensions a stored file may have, by what its content is (ingest.formats.sniff).
KIND_SUFFIXES = {"pdf": (".pdf",), "docx": (".docx",), "html": (".html", ".htm"), "text": (".md", ".markdown", ".txt")}
_SUFFIX_KIND = {suffix: kind for kind, suffixes in KIND_SUFFIXES.items() for suffix in suffixes}
_KIND_WORDS = {"pdf": "a PDF", "docx": "a Word document", "html": "an HTML page", "text": "text"}


def collection_dir(files_dir: str | Path, collection: str = DEFAULT_COLLECTION) -> Path:
    """The folder that holds a collection's stored files (``collection`` is an already checked name)."""
    return Path(files_dir) if collection == DEFAULT_COLLECTION else Path(files_dir) / collection


def safe_name(name: str, kind: str = "pdf") -> str:
    """A file name that is safe to create directly inside ``files_dir``.

    Keeps only the last path component (``/`` and ``\\`` both count as separators),
    folds Unicode to ASCII where it can, turns any other odd character into ``_``, drops
    leading dots (no hidden files, no ``..``), bounds the length, and always ends in an
    extension of ``kind`` (the name's own when it is one, e.g. ``.htm``).

    Args:
        name: the name the client sent, e.g. ``../../etc/x.pdf``.
        kind: what the content is: ``pdf``, ``docx``, ``html`` or ``text``.

    Returns:
        e.g. ``x.pdf``; ``upload.pdf`` when nothing usable is left (:func:`upload_name` refuses those).
    """
    stem, suffix = _safe_parts(name, kind)
    return f"{stem or 'upload'}{suffix}"


def _safe_parts(name: str, kind: str) -> tuple[str, str]:
    base = re.split(r"[\\/]", name or "")[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    base = re.sub(r" {2,}", " ", _UNSAFE.sub("_", base)).strip(" ._")
    suffixes = KIND_SUFFIXES[kind]
    own = next((x for x in suffixes if base.lower().endswith(x)), None)
    stem = base[: -len(own)] if own else base
    suffix = own or suffixes[0]
    stem = re.sub(r"_{2,}", "_", stem).strip(" ._")[: MAX_NAME_CHARS - len(suffix)].rstrip(" ._")
    return stem, suffix


def name_kind(name: str) -> str | None:
    """The kind of content a file name's extension promises (``report.pdf`` -> ``pdf``), or None."""
    return _SUFFIX_KIND.get(Path(name).suffix.lower()) if name else None


def upload_name(name: str, kind: str = "pdf") -> str:
    """The source name for an upload the client called ``name``: :func:`safe_name`, but never a made-up one.

    Names whose last path component has nothing usable (``..``, ``x.pdf/..``, ``///``, an
    empty name) would all become ``upload.pdf`` and silently replace each other, so they
    are refused instead; so is a name whose extension promises other content than the file
    holds (``notes.pdf`` holding text), which would be served and cited as what it is not.

    Args:
        name: the name the client gave the file.
        kind: what its content is (``ingest.formats.sniff``).

    Raises:
        InvalidNameError: nothing usable is left of the name.
        NotAPDFError: the name ends in ``.pdf`` but the content is not a PDF.
        UnreadableSourceError: the name promises another format than the content.
    """
    if not _safe_parts(name, kind)[0]:
        shown = name if len(name or "") <= 60 else name[:57] + "..."
        raise InvalidNameError(name or "", f"The file name {shown!r} has no usable base name; rename the file "
                               "(e.g. report.pdf) and upload it again")
    promised = name_kind(re.split(r"[\\/]", name)[-1])
    if promised is not None and promised != kind:
        shown = safe_name(name, promised)
        error = NotAPDFError if promised == "pdf" else UnreadableSourceError
        raise error(shown, f"{shown} is not {_KIND_WORDS[promised]} (its content is {_KIND_WORDS[kind]}); give it "
                    f"the extension {KIND_SUFFIXES[kind][0]}, or upload {_KIND_WORDS[promised]}")
    return safe_name(name, kind)


def is_pdf(path: str | Path) -> bool:
    """Whether the file's content says PDF (``%PDF-`` in its first 1024 bytes), whatever its name.

    The one content check of the project: uploads, the PDF reader and ``/files`` use it.
    """
    try:
        with open(path, "rb") as f:
            return PDF_MAGIC in f.read(MAGIC_WINDOW)
    except OSError:
        return False


def file_digest(path: str | Path) -> str | None:
    """SHA-256 of a file's bytes (hex), or None when there is no such file."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


@dataclass
class StagedFile:
    """An upload copied into ``files_dir/.staging/<random>/<name>``, waiting to be ingested.

    Ingest ``path`` (its file name is the final source name); the ingestion transaction
    :meth:`commit`\\ s it into ``files_dir`` once the chunks are in, or the caller
    :meth:`discard`\\ s it on failure, so a refused upload never replaces a good file that
    was stored before. Both are idempotent.
    """

    name: str
    path: Path
    files_dir: Path
    digest: str = ""
    _lock_fd: int | None = field(default=None, repr=False, compare=False)

    @property
    def target(self) -> Path:
        """Where the file goes on commit."""
        return self.files_dir / self.name

    def commit(self) -> Path:
        """Move the file to ``files_dir/<name>`` (atomically, replacing an older version)."""
        if self.path.exists():
            self.files_dir.mkdir(parents=True, exist_ok=True)
            os.replace(self.path, self.target)
            fsync_dir(self.files_dir)
        self._cleanup()
        return self.target

    def discard(self) -> None:
        """Forget the staged copy."""
        self.path.unlink(missing_ok=True)
        self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def stage_upload(files_dir: str | Path, upload_path: str | Path, name: str | None = None, *,
                 collection: str = DEFAULT_COLLECTION) -> StagedFile:
    """Copy an uploaded file into a private staging folder under ``files_dir`` under a safe name.

    Args:
        files_dir: where uploads are kept (``settings.files_dir``).
        upload_path: the temporary file the web server received.
        name: the name the client gave it (default: ``upload_path``'s own name).
        collection: the collection it goes into (its file is committed into :func:`collection_dir`).

    Returns:
        The staged file (its folder locked by this process until commit or discard).

    Raises:
        InvalidNameError: the name has no usable base name (see :func:`upload_name`).
        UnreadableSourceError: the content is none of the formats we read (``ingest.formats``), or
            its name promises another one (``NotAPDFError`` when the name ends in ``.pdf``): what a
            file is comes from its content, never its name.
    """
    from ingest.formats import sniff

    files_dir = Path(files_dir)
    raw_name = name if name is not None else Path(upload_path).name
    try:
        kind = sniff(upload_path)
    except UnreadableSourceError as exc:  # name it as the client did, not as the temporary file
        shown = safe_name(raw_name, name_kind(raw_name) or "pdf")
        raise (NotAPDFError if name_kind(raw_name) in (None, "pdf") else UnreadableSourceError)(
            shown, str(exc).replace(Path(upload_path).name, shown, 1)) from None
    name = upload_name(raw_name, kind)
    staging = files_dir / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=uuid.uuid4().hex[:8], dir=staging))
    fd = os.open(folder / _LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    target = folder / name
    try:
        shutil.copyfile(upload_path, target)
    except BaseException:
        os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return StagedFile(name=name, path=target, files_dir=collection_dir(files_dir, collection),
                      digest=file_digest(target) or "", _lock_fd=fd)


def keep_copy(files_dir: str | Path, path: str | Path, name: str,
              collection: str = DEFAULT_COLLECTION) -> StagedFile | None:
    """Stage a copy of a local file (``rag ingest file.pdf``, ``RAG.add_pdf``) so citations can open it.

    The copy is committed into ``files_dir`` with the source's chunks, as an upload is. A file
    whose source name is not already a safe stored name (``Café.pdf``), or whose content is not
    what its name says, is not kept (its citations then show the path it was read from); this
    never makes the ingestion itself fail.

    Args:
        files_dir: where stored files are kept.
        path: the file that was read.
        name: its source name.
        collection: its collection (the copy goes into :func:`collection_dir`).

    Returns:
        The staged copy, or None when it is not kept.
    """
    kind = name_kind(name)
    if kind is None or safe_name(name, kind) != name:
        log.info("not keeping a copy of %s: its name is not a safe stored name", name)
        return None
    kept = stored_file(collection_dir(files_dir, collection), name)
    if kept is not None and file_digest(kept) == file_digest(path):
        return None  # the same bytes are kept already
    try:
        staged = stage_upload(files_dir, path, name, collection=collection)
    except (SourceError, OSError) as exc:
        log.info("not keeping a copy of %s: %s", name, exc)
        return None
    if staged.name != name:
        staged.discard()
        return None
    return staged


def staged_in(files_dir: str | Path, path: str | Path, collection: str = DEFAULT_COLLECTION) -> StagedFile | None:
    """The staged upload at ``path`` when it lies in ``files_dir``'s staging area, else None.

    Lets an ingestion of a staged file (``RAG.pdf_job``) commit it within its transaction
    whoever staged it.
    """
    path = Path(path)
    staging = Path(files_dir) / STAGING
    try:
        if path.resolve().parent.parent != staging.resolve() or not path.is_file():
            return None
    except OSError:
        return None
    return StagedFile(name=path.name, path=path, files_dir=collection_dir(files_dir, collection),
                      digest=file_digest(path) or "")


def sweep_staging(files_dir: str | Path) -> int:
    """Remove staging folders whose process is gone (their lock is free); returns how many."""
    staging = Path(files_dir) / STAGING
    if not staging.is_dir():
        return 0
    removed = 0
    for folder in staging.iterdir():
        try:
            fd = os.open(folder / _LOCK, os.O_RDWR)
        except FileNotFoundError:
            fd = None  # died before locking, or not ours at all: nothing holds it
        except OSError:
            continue
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a live upload
        shutil.rmtree(folder, ignore_errors=True) if folder.is_dir() else folder.unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)
        removed += 1
    if removed:
        log.info("removed %d staging folder(s) left by a stopped process", removed)
    return removed


def stored_file(files_dir: str | Path, name: str) -> Path | None:
    """The stored upload called ``name``, or None when there is none (or the name is not a safe one).

    Only a regular file directly inside ``files_dir`` whose name is already safe qualifies,
    so ``..``, sub-folders, hidden files and symlinks out of the folder never resolve.
    """
    kind = name_kind(name)
    if kind is None or name != safe_name(name, kind):
        return None
    root = Path(files_dir).resolve()
    path = root / name
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if resolved.parent != root or not resolved.is_file():
        return None
    return resolved


def stored_kind(files_dir: str | Path, name: str, collection: str = DEFAULT_COLLECTION) -> tuple[Path, str] | None:
    """The stored file ``name`` of ``collection`` and its kind, when its content is what its name says; else None.

    What ``/files`` and the viewer serve: a file whose bytes are not what its extension
    promises is never served as that (nor at all).
    """
    from ingest.formats import sniff

    path = stored_file(collection_dir(files_dir, collection), name)
    if path is None:
        return None
    try:
        kind = sniff(path)
    except SourceError:
        return None
    return (path, kind) if kind == name_kind(name) else None


def file_url(files_dir: str | Path, source: str, page: int | None = None,
             collection: str = DEFAULT_COLLECTION) -> str | None:
    """The link that opens a stored upload of ``collection`` (at ``page``), or None when the file is not stored here."""
    if stored_file(collection_dir(files_dir, collection), source) is None:
        return None
    where = "" if collection == DEFAULT_COLLECTION else f"/{collection}"
    url = f"{FILES_ROUTE}{where}/{quote(source)}"
    return f"{url}#page={page}" if page else url


def remove_file(files_dir: str | Path, source: str) -> bool:
    """Delete the stored upload for ``source`` if there is one; True when a file was removed."""
    path = stored_file(files_dir, source)
    if path is None:
        return False
    path.unlink(missing_ok=True)
    return True


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
