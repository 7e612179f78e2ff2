"""The write journal: each source's ingestion (or deletion) is one unit that survives a crash.

Before the first chunk of a source is written, a manifest names what the source holds now
(``old``: its complete chunk ids), what it will hold (``new``), and the upload that goes
with it (the staged file and its digest). The manifest is removed once the new chunks are
in both indexes, the file is in place and the stale chunks are gone. A manifest still on
disk therefore marks an unfinished source, and :meth:`Journal.recover` settles it:

- forward, when every ``new`` id is complete and the new file is staged or already in
  place: move the file in, delete the stale chunks;
- back otherwise: delete every chunk that is not in ``old`` and the staged file (the old
  chunks and the old file are untouched until the forward point, so this restores exactly
  the old version, or nothing for a source that was new);
- a deletion always goes forward.

Only ``Store`` protocol methods are used (``ids_for``, ``delete_ids``), so this works for
any store. The writer keeps its manifest locked (``flock``); a manifest whose lock is free
belongs to a process that is gone, which is how another process tells a crash from a
write in progress.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ingest.files import StagedFile, collection_dir, file_digest, fsync_dir, remove_file
from rag.protocols import Store
from rag.settings import DEFAULT_COLLECTION
from rag.types import source_key

log = logging.getLogger(__name__)


@dataclass
class Entry:
    """One open transaction: its manifest on disk, locked by this process.

    ``key`` names the source within its collection (:func:`rag.types.source_key`).
    """

    key: str
    path: Path
    manifest: dict[str, Any]
    fd: int | None = field(default=None, repr=False)


class Journal:
    """Manifests of unfinished writes, one file per source in ``folder``."""

    def __init__(self, folder: str | Path, files_dir: str | Path) -> None:
        """Args:
            folder: where manifests live (``data_dir/journal``).
            files_dir: where stored uploads live (``settings.files_dir``).
        """
        self.folder = Path(folder)
        self.files_dir = Path(files_dir)
        self._live: dict[str, int] = {}
        self._lock = threading.Lock()

    def _path(self, source: str) -> Path:
        return self.folder / (hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:32] + ".json")

    def live(self) -> dict[str, int]:
        """Sources this process is writing now (by :func:`rag.types.source_key`), with how many chunks
        their old version has."""
        with self._lock:
            return dict(self._live)

    def begin(self, store: Store, source: str, *, old: set[str], new: set[str], file: StagedFile | None = None,
              delete: bool = False, remove: str | None = None, collection: str = DEFAULT_COLLECTION) -> Entry:
        """Write (durably) and lock the manifest of a source's write before any chunk changes.

        Args:
            store: the store (a manifest a crashed process left for this source is settled first).
            source: the source name.
            old: its complete chunk ids now.
            new: the ids it will hold (empty for a deletion).
            file: the staged upload to move into place with the new version.
            delete: this is a deletion (always completed, never undone).
            remove: the stored file a deletion removes.
            collection: the source's collection (one manifest per source and collection).

        Returns:
            The open entry; :meth:`finish` it once the write is complete.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        key = source_key(collection, source)
        path = self._path(key)
        if path.exists():
            self._settle(store, path)
        manifest: dict[str, Any] = {"source": source, "collection": collection, "op": "delete" if delete else "write",
                                    "old": sorted(old), "new": sorted(new), "remove": remove}
        if file is not None:
            manifest["file"] = {"name": file.name, "staged": str(file.path.resolve()),
                                "digest": file.digest or file_digest(file.path), "target": str(file.target)}
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, json.dumps(manifest).encode("utf-8"))
            os.fsync(fd)
            os.replace(tmp, path)
            fsync_dir(self.folder)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        with self._lock:
            self._live[key] = len(old)
        return Entry(key, path, manifest, fd)

    def finish(self, entry: Entry) -> None:
        """The write is complete: remove its manifest."""
        entry.path.unlink(missing_ok=True)
        fsync_dir(self.folder)
        self._close(entry)

    def abort(self, store: Store, entry: Entry) -> None:
        """The write failed in this process (an exception): settle it now as a crash would be."""
        try:
            self._repair(store, entry.manifest)
            entry.path.unlink(missing_ok=True)
        finally:
            self._close(entry)

    def _close(self, entry: Entry) -> None:
        if entry.fd is not None:
            os.close(entry.fd)
            entry.fd = None
        with self._lock:
            self._live.pop(entry.key, None)

    def recover(self, store: Store) -> list[str]:
        """Settle every manifest a stopped process left (live writes of other processes are left alone).

        Returns:
            The sources repaired.
        """
        if not self.folder.is_dir():
            return []
        done = []
        for path in sorted(self.folder.iterdir()):
            if path.suffix == ".tmp":
                _remove_if_unlocked(path)
            elif path.suffix == ".json":
                source = self._settle(store, path)
                if source is not None:
                    done.append(source)
        return done

    def _settle(self, store: Store, path: Path) -> str | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # its writer is alive
            try:
                if os.fstat(fd).st_ino != os.stat(path).st_ino:
                    return None  # finished and replaced meanwhile
            except FileNotFoundError:
                return None  # finished meanwhile
            with open(path, encoding="utf-8") as f:
                try:
                    manifest = json.load(f)
                except ValueError:
                    # Never written out in full, so no chunk was changed after it (it is written first).
                    path.unlink(missing_ok=True)
                    return None
            outcome = self._repair(store, manifest)
            path.unlink(missing_ok=True)
            fsync_dir(self.folder)
            log.warning("%s: an interrupted write was %s", manifest["source"], outcome)
            return manifest["source"]
        finally:
            os.close(fd)

    def _repair(self, store: Store, m: dict[str, Any]) -> str:
        source = m["source"]
        # A manifest written before collections names a source of the default collection.
        where = m.get("collection") or DEFAULT_COLLECTION
        folder = collection_dir(self.files_dir, where)
        if m["op"] == "delete":
            store.delete_ids(sorted(store.ids_for(source, complete=False, collection=where)))
            if m.get("remove"):
                remove_file(folder, m["remove"])
            return "completed (deleted)"
        old, new = set(m["old"]), set(m["new"])
        f = m.get("file")
        staged = Path(f["staged"]) if f else None
        target = (Path(f["target"]) if f.get("target") else folder / f["name"]) if f else None
        file_ok = f is None or staged.exists() or file_digest(target) == f["digest"]
        if new <= store.ids_for(source, complete=True, collection=where) and file_ok:
            if staged is not None and staged.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, target)
                fsync_dir(target.parent)
            _delete(store, store.ids_for(source, complete=False, collection=where) - new)
            outcome = "completed"
        else:
            _delete(store, store.ids_for(source, complete=False, collection=where) - old)
            outcome = "rolled back to its previous version" if old else "rolled back (the source was new)"
        if staged is not None:
            staged.unlink(missing_ok=True)
        return outcome


def _delete(store: Store, ids: set[str]) -> None:
    if ids:
        store.delete_ids(sorted(ids))


def _remove_if_unlocked(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path.unlink(missing_ok=True)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)


__all__: Sequence[str] = ["Entry", "Journal"]
