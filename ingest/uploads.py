"""Uploaded PDFs: safe names, a content check, storage under ``settings.files_dir`` (served by ``rag.http.api``).

A stored file's name is also its source name in the index (``RAG.add_pdfs`` names a
source after the file), so a citation of source ``report.pdf`` page 3 links to
``/files/report.pdf#page=3``. Nothing outside ``files_dir`` is ever written or served:
names are reduced to a bare, ASCII-safe basename, and the route re-checks every request.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

FILES_ROUTE = "/files"
MAX_NAME_CHARS = 120
# The PDF header may follow a little junk; readers (Acrobat, pypdf) look in the first 1024 bytes.
PDF_MAGIC = b"%PDF-"
MAGIC_WINDOW = 1024
_STAGING = ".staging"
_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+-]+")


class NotAPDFError(ValueError):
    """The uploaded bytes are not a PDF, whatever the file is called."""


def safe_name(name: str) -> str:
    """A file name that is safe to create directly inside ``files_dir``.

    Keeps only the last path component (``/`` and ``\\`` both count as separators),
    folds Unicode to ASCII where it can, turns any other odd character into ``_``, drops
    leading dots (no hidden files, no ``..``), bounds the length, and always ends in
    ``.pdf``.

    Args:
        name: the name the client sent, e.g. ``../../etc/x.pdf``.

    Returns:
        e.g. ``x.pdf``; ``upload.pdf`` when nothing usable is left.
    """
    base = re.split(r"[\\/]", name or "")[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    base = re.sub(r" {2,}", " ", _UNSAFE.sub("_", base)).strip(" ._")
    stem = base[:-4] if base.lower().endswith(".pdf") else base
    stem = re.sub(r"_{2,}", "_", stem).strip(" ._")[: MAX_NAME_CHARS - 4].rstrip(" ._")
    return f"{stem or 'upload'}.pdf"


def is_pdf(path: str | Path) -> bool:
    """Whether the file's content says PDF (``%PDF-`` in its first 1024 bytes), whatever its name."""
    try:
        with open(path, "rb") as f:
            return PDF_MAGIC in f.read(MAGIC_WINDOW)
    except OSError:
        return False


@dataclass(frozen=True)
class StagedFile:
    """An upload copied into ``files_dir/.staging/<random>/<name>``, waiting to be ingested.

    Ingest ``path`` (its file name is the final source name), then :meth:`commit` it into
    ``files_dir`` on success or :meth:`discard` it on failure, so a refused upload never
    replaces a good file that was stored before.
    """

    name: str
    path: Path
    files_dir: Path

    def commit(self) -> Path:
        """Move the file to ``files_dir/<name>`` (atomically, replacing an older version)."""
        target = self.files_dir / self.name
        os.replace(self.path, target)
        self._cleanup()
        return target

    def discard(self) -> None:
        """Forget the staged copy."""
        self.path.unlink(missing_ok=True)
        self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)


def stage_upload(files_dir: str | Path, upload_path: str | Path, name: str | None = None) -> StagedFile:
    """Copy an uploaded file into a private staging folder under ``files_dir`` under a safe name.

    Args:
        files_dir: where uploads are kept (``settings.files_dir``).
        upload_path: the temporary file the web server received.
        name: the name the client gave it (default: ``upload_path``'s own name).

    Returns:
        The staged file.

    Raises:
        NotAPDFError: the content is not a PDF (checked by its ``%PDF-`` header, not its name).
    """
    files_dir = Path(files_dir)
    name = safe_name(name if name is not None else Path(upload_path).name)
    if not is_pdf(upload_path):
        raise NotAPDFError(f"{name} is not a PDF (its content does not start with %PDF-); upload a PDF file")
    staging = files_dir / _STAGING
    staging.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=uuid.uuid4().hex[:8], dir=staging))
    target = folder / name
    shutil.copyfile(upload_path, target)
    return StagedFile(name=name, path=target, files_dir=files_dir)


def stored_file(files_dir: str | Path, name: str) -> Path | None:
    """The stored upload called ``name``, or None when there is none (or the name is not a safe one).

    Only a regular file directly inside ``files_dir`` whose name is already safe qualifies,
    so ``..``, sub-folders, hidden files and symlinks out of the folder never resolve.
    """
    if not name or name != safe_name(name):
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


def file_url(files_dir: str | Path, source: str, page: int | None = None) -> str | None:
    """The link that opens a stored upload (at ``page``), or None when the file is not stored here."""
    if stored_file(files_dir, source) is None:
        return None
    url = f"{FILES_ROUTE}/{quote(source)}"
    return f"{url}#page={page}" if page else url


def remove_file(files_dir: str | Path, source: str) -> bool:
    """Delete the stored upload for ``source`` if there is one; True when a file was removed."""
    path = stored_file(files_dir, source)
    if path is None:
        return False
    path.unlink(missing_ok=True)
    return True
