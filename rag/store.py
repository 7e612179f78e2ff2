"""The Store role on Chroma: chunks and vectors on disk, cosine nearest neighbours.

We always hand Chroma our own vectors; its default embedding function (which
would download a model) is disabled, so a query without a vector is an error.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from rag.errors import StoreError
from rag.protocols import KeywordIndex
from rag.settings import DEFAULT_COLLECTION, Settings
from rag.types import Chunk, Hit, SourceInfo

log = logging.getLogger(__name__)

# Chroma rejects larger writes (its SQLite variable limit); the client reports the exact figure.
_FALLBACK_MAX_BATCH = 5461
_PAGE = 5000
# Set in the Chroma collection's metadata once every chunk carries its collection (see migrate).
MIGRATED_MARK = "rag_collections"


def scope_where(sources: Sequence[str] | None = None, collections: Sequence[str] | None = None
                ) -> dict[str, Any] | None:
    """The Chroma ``where`` filter for chunks of ``sources`` within ``collections`` (None: no restriction)."""
    clauses = []
    for key, values in (("collection", collections), ("source", sources)):
        if values:
            values = list(values)
            clauses.append({key: {"$in": values}} if len(values) > 1 else {key: values[0]})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


class ChromaStore:
    """Chunks with their MiniLM vectors in one Chroma collection (cosine space).

    No keyword index of its own (``keyword_query`` is None): :class:`CombinedStore` adds one.
    """

    keyword_query = None
    document_frequencies = None

    def __init__(self, path: str | Path | None = None, *, collection: str = Settings.collection, url: str | None = None) -> None:
        """Open (or create) the collection.

        Args:
            path: directory of an embedded ``PersistentClient``.
            collection: collection name (3-512 characters).
            url: ``http://host:port`` of a Chroma server; used instead of ``path`` when given.
        """
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        try:
            if url:
                from urllib.parse import urlparse

                parsed = urlparse(url)
                self._client = chromadb.HttpClient(
                    host=parsed.hostname or "127.0.0.1",
                    port=parsed.port or 8000,
                    ssl=parsed.scheme == "https",
                    settings=chroma_settings,
                )
            else:
                if path is None:
                    raise StoreError("ChromaStore needs a directory (path) or a server URL (url)")
                Path(path).mkdir(parents=True, exist_ok=True)
                self._client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
            self._collection = self._client.get_or_create_collection(
                collection, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
            )
        except StoreError:
            raise
        except Exception as exc:
            where = url or str(path)
            raise StoreError(f"Could not open the Chroma store at {where} ({exc}); check the path or server") from exc
        try:
            self._max_batch = int(self._client.get_max_batch_size())
        except Exception:
            self._max_batch = _FALLBACK_MAX_BATCH
        self._sources_cache: list[SourceInfo] | None = None
        self._lock = threading.Lock()
        if not self.migrated and self.count() == 0:
            self._mark_migrated()  # a new store: every chunk it will hold carries its collection

    def count(self) -> int:
        """Number of chunks stored."""
        return int(self._collection.count())

    def add(self, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None:
        """Upsert chunks with their vectors; ids that already exist are overwritten, not duplicated.

        Args:
            chunks: the chunks.
            embeddings: one unit vector per chunk.
        """
        if len(chunks) != len(embeddings):
            raise StoreError(f"{len(chunks)} chunks but {len(embeddings)} vectors; they must match")
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for lo in range(0, len(chunks), self._max_batch):
            part = chunks[lo : lo + self._max_batch]
            self._collection.upsert(
                ids=[c.id for c in part],
                embeddings=np.asarray(embeddings[lo : lo + self._max_batch], dtype=np.float32),
                documents=[c.text for c in part],
                metadatas=[{**c.metadata(), "added_at": now} for c in part],
            )
        self._sources_cache = None

    def delete_ids(self, ids: Sequence[str]) -> None:
        """Delete chunks by id (unknown ids are ignored)."""
        ids = list(ids)
        for lo in range(0, len(ids), self._max_batch):
            self._collection.delete(ids=ids[lo : lo + self._max_batch])
        if ids:
            self._sources_cache = None

    def ids_for(self, source: str, *, complete: bool = True, collection: str = DEFAULT_COLLECTION) -> set[str]:
        """Ids of every chunk of ``source`` in ``collection`` (one index: ``complete`` changes nothing)."""
        ids: set[str] = set()
        for page in self._pages(where=scope_where([source], [collection]), include=[]):
            ids.update(page["ids"])
        return ids

    def delete_source(self, source: str, *, collection: str = DEFAULT_COLLECTION) -> int:
        """Delete every chunk of ``source`` in ``collection``.

        Returns:
            How many chunks were deleted (0 when the source is unknown).
        """
        ids = self.ids_for(source, collection=collection)
        self.delete_ids(sorted(ids))
        return len(ids)

    def query(self, embedding: np.ndarray, k: int, sources: Sequence[str] | None = None,
              collections: Sequence[str] | None = None) -> list[Hit]:
        """The ``k`` chunks most similar to ``embedding`` by cosine, best first.

        Args:
            embedding: a unit query vector.
            k: how many to return.
            sources: only chunks of these sources, when given.
            collections: only chunks of these collections, when given (a filter inside Chroma's
                search, so the k nearest are the k nearest of these collections).

        Returns:
            Hits whose ``score`` is the cosine similarity.
        """
        where = scope_where(sources, collections)
        # Chroma 1.x returns fewer results when fewer match (or none when empty), so no count()
        # round trip first: it cost 9 ms a query at 100k chunks.
        result = self._collection.query(
            query_embeddings=np.asarray(embedding, dtype=np.float32).reshape(1, -1),
            n_results=k,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        hits = []
        for id_, text, meta, dist in zip(
            result["ids"][0], result["documents"][0], result["metadatas"][0], result["distances"][0]
        ):
            # Chroma's cosine space reports distance = 1 - cosine similarity.
            hits.append(Hit(Chunk.from_metadata(id_, text or "", meta or {}), score=1.0 - float(dist)))
        return hits

    def nearest(self, embedding: np.ndarray, k: int, sources: Sequence[str] | None = None,
                collections: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """:meth:`query` without reading the chunks: ``(id, cosine)`` pairs, best first.

        What score fusion ranks by; the texts of the few winners are read afterwards.
        """
        result = self._collection.query(
            query_embeddings=np.asarray(embedding, dtype=np.float32).reshape(1, -1),
            n_results=k,
            where=scope_where(sources, collections),
            include=["distances"],
        )
        return [(id_, 1.0 - float(dist)) for id_, dist in zip(result["ids"][0], result["distances"][0])]

    def vectors_of(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of ``ids`` (unknown ids are left out), without reading their chunks."""
        if not ids:
            return {}
        got = self._collection.get(ids=list(ids), include=["embeddings"])
        return {i: np.asarray(e, dtype=np.float32) for i, e in zip(got["ids"], got["embeddings"])}

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """Chunks by id, in the order given (unknown ids are left out)."""
        return [chunk for chunk, _ in self.get_with_vectors(ids, vectors=False)]

    def get_with_vectors(self, ids: Sequence[str], *, vectors: bool = True) -> list[tuple[Chunk, np.ndarray | None]]:
        """Chunks by id with their stored vectors, in the order given (unknown ids are left out)."""
        if not ids:
            return []
        include = ["documents", "metadatas"] + (["embeddings"] if vectors else [])
        got = self._collection.get(ids=list(ids), include=include)
        embeddings = got["embeddings"] if vectors else [None] * len(got["ids"])
        by_id = {
            i: (Chunk.from_metadata(i, d or "", m or {}), None if e is None else np.asarray(e, dtype=np.float32))
            for i, d, m, e in zip(got["ids"], got["documents"], got["metadatas"], embeddings)
        }
        return [by_id[i] for i in ids if i in by_id]

    def sources(self) -> list[SourceInfo]:
        """Every source in the store with its chunk count, newest first."""
        with self._lock:
            if self._sources_cache is None:
                self._sources_cache = self._scan_sources()
            return list(self._sources_cache)

    def _scan_sources(self) -> list[SourceInfo]:
        agg: dict[tuple[str, str], dict[str, Any]] = {}
        for page in self._pages(include=["metadatas"]):
            for meta in page["metadatas"]:
                src = str(meta.get("source"))
                key = (str(meta.get("collection") or DEFAULT_COLLECTION), src)
                entry = agg.get(key)
                if entry is None:
                    agg[key] = {
                        "kind": meta.get("kind", "text"),
                        "title": meta.get("title", src),
                        "url": meta.get("url") if meta.get("kind") == "wikipedia" else None,
                        "chunks": 1,
                        "added_at": meta.get("added_at", ""),
                    }
                else:
                    entry["chunks"] += 1
                    entry["added_at"] = max(entry["added_at"], meta.get("added_at", ""))
        infos = []
        for (collection, src), e in agg.items():
            url = e["url"].split("#", 1)[0] if e["url"] else None
            infos.append(SourceInfo(source=src, kind=e["kind"], title=e["title"], chunks=e["chunks"],
                                    added_at=e["added_at"], url=url, collection=collection))
        return sorted(infos, key=lambda s: (s.added_at, s.source, s.collection), reverse=True)

    @property
    def migrated(self) -> bool:
        """Whether every chunk carries its collection (a store made by this version, or migrated)."""
        return bool((self._collection.metadata or {}).get(MIGRATED_MARK))

    def migrate(self, *, progress: bool = True) -> int:
        """Put every chunk of a store made before collections into the default collection, once.

        Only metadata changes (a Chroma update: ids, texts and vectors stay, nothing is
        re-embedded; default-collection ids are the old ids). Chunks are updated a page at a
        time and the store is marked done only at the end, so a run cut short is finished by
        the next one, which updates only what is still unmarked.

        Args:
            progress: show a progress bar on stderr.

        Returns:
            How many chunks were updated (0 when there was nothing to do).
        """
        if self.migrated:
            return 0
        total = self.count()
        done = 0
        if total:
            from tqdm import tqdm

            log.warning("Putting the %d chunks of %s into the collection %r (once; no re-embedding)",
                        total, self._collection.name, DEFAULT_COLLECTION)
            with tqdm(total=total, desc="Migrating into collections", unit="chunk", disable=not progress,
                      dynamic_ncols=True) as bar:
                for page in self._pages(include=["metadatas"]):
                    todo = [(i, m) for i, m in zip(page["ids"], page["metadatas"]) if not (m or {}).get("collection")]
                    for lo in range(0, len(todo), self._max_batch):
                        part = todo[lo:lo + self._max_batch]
                        # Chroma merges the given keys into each chunk's metadata.
                        self._collection.update(ids=[i for i, _ in part],
                                                metadatas=[{"collection": DEFAULT_COLLECTION} for _ in part])
                    done += len(todo)
                    bar.update(len(page["ids"]))
            self._sources_cache = None
        self._mark_migrated()
        return done

    def _mark_migrated(self) -> None:
        meta = {k: v for k, v in (self._collection.metadata or {}).items() if not k.startswith("hnsw:")}
        self._collection.modify(metadata={**meta, MIGRATED_MARK: 1})

    def iter_chunks(self) -> Iterator[list[Chunk]]:
        """Every stored chunk, without vectors, a page at a time (to rebuild the keyword index)."""
        for page in self._pages(include=["documents", "metadatas"]):
            yield [Chunk.from_metadata(i, d or "", m or {}) for i, d, m in zip(page["ids"], page["documents"],
                                                                                page["metadatas"])]

    def dump(self) -> dict[str, tuple[str, dict[str, Any], list[float]]]:
        """Everything stored, id -> (text, metadata, vector); for consistency checks and export."""
        out = {}
        for page in self._pages(include=["documents", "metadatas", "embeddings"]):
            for i, d, m, e in zip(page["ids"], page["documents"], page["metadatas"], page["embeddings"]):
                out[i] = (d, dict(m), [float(x) for x in e])
        return out

    def _pages(self, *, where: dict[str, Any] | None = None, include: list[str]) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self._collection.get(where=where, include=include, limit=_PAGE, offset=offset)
            if not page["ids"]:
                return
            yield page
            if len(page["ids"]) < _PAGE:
                return
            offset += _PAGE


_REBUILD_LOCK = threading.Lock()


def open_keyword_index(path: str | Path, vectors: ChromaStore, *, legacy: str | Path | None = None,
                       progress: bool = True, **options: Any):
    """The keyword index at ``path``, built from ``vectors`` first when it does not exist yet.

    A store made before the tantivy index (its keyword index the SQLite file ``legacy``), a
    keyword folder deleted by hand, or a new app instance against a Chroma server all get
    their index rebuilt here once, from the ids and texts in Chroma (the source of truth),
    into a side folder renamed into place when complete, so a crash mid-way leaves nothing
    half-built. The SQLite file is then deleted: it holds nothing Chroma does not.

    Args:
        path: the tantivy index directory.
        vectors: the Chroma store the index must mirror.
        legacy: the FTS5 file of earlier versions, removed after a rebuild.
        progress: show a progress bar on stderr while rebuilding.
        **options: passed to ``rag.keyword.KeywordIndex`` (writer heap, threads, lock timeout).

    Returns:
        A ``rag.keyword.KeywordIndex`` holding every chunk id of ``vectors``.
    """
    import shutil

    from rag.keyword import KeywordIndex, index_exists

    path = Path(path)
    with _REBUILD_LOCK:
        if not index_exists(path):
            total = vectors.count()
            if total:
                building = path.with_name(path.name + ".building")
                shutil.rmtree(building, ignore_errors=True)
                why = (f"migrating from {legacy}" if legacy and Path(legacy).exists()
                       else "an index of an older schema" if path.exists() else "no index found")
                log.warning("Building the keyword index at %s from %d chunks in the vector store (%s)",
                            path, total, why)
                index = KeywordIndex(building, **options)
                try:
                    from tqdm import tqdm

                    with tqdm(total=total, desc="Rebuilding the keyword index", unit="chunk",
                              disable=not progress, dynamic_ncols=True) as bar:
                        for page in vectors.iter_chunks():
                            index._add(page, replace=False)
                            bar.update(len(page))
                finally:
                    index.close()
                shutil.rmtree(path, ignore_errors=True)
                building.rename(path)
            if legacy is not None:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{legacy}{suffix}").unlink(missing_ok=True)
        return KeywordIndex(path, **options)


class CombinedStore:
    """The vector store and the keyword index behind one Store interface, written together.

    Vectors go in first and are deleted last, so a chunk found by keyword always has
    its vector; ``ids_for`` reports only chunks complete in both, so ingestion redoes
    anything a crash left half-written.
    """

    def __init__(self, vectors: ChromaStore, keywords: KeywordIndex) -> None:
        """Args:
            vectors: the Chroma store.
            keywords: a ``rag.protocols.KeywordIndex`` (tantivy's, or SQLite FTS5's for benchmarks).
        """
        self.vectors = vectors
        self.keywords = keywords

    def add(self, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None:
        """Write chunks to the vector store, then to the keyword index."""
        self.vectors.add(chunks, embeddings)
        self.keywords.add(chunks)

    def delete_ids(self, ids: Sequence[str]) -> None:
        """Delete chunks from the keyword index, then from the vector store."""
        self.keywords.delete_ids(ids)
        self.vectors.delete_ids(ids)

    def ids_for(self, source: str, *, complete: bool = True, collection: str = DEFAULT_COLLECTION) -> set[str]:
        """Ids of ``source``'s chunks in ``collection``: in both indexes (``complete``) or in either."""
        a = self.vectors.ids_for(source, collection=collection)
        b = self.keywords.ids_for(source, collection=collection)
        return a & b if complete else a | b

    def delete_source(self, source: str, *, collection: str = DEFAULT_COLLECTION) -> int:
        """Delete every chunk of ``source`` in ``collection`` from both indexes; returns how many there were."""
        ids = self.ids_for(source, complete=False, collection=collection)
        self.delete_ids(sorted(ids))
        return len(ids)

    def query(self, embedding: np.ndarray, k: int, sources: Sequence[str] | None = None,
              collections: Sequence[str] | None = None) -> list[Hit]:
        """Dense nearest neighbours by cosine (see ChromaStore.query)."""
        return self.vectors.query(embedding, k, sources, collections)

    def nearest(self, embedding: np.ndarray, k: int, sources: Sequence[str] | None = None,
                collections: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """Dense nearest neighbours as (id, cosine), chunks not read (see ChromaStore.nearest)."""
        return self.vectors.nearest(embedding, k, sources, collections)

    def vectors_of(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors by id (see ChromaStore.vectors_of)."""
        return self.vectors.vectors_of(ids)

    def keyword_query(self, text: str, k: int, sources: Sequence[str] | None = None,
                      collections: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """BM25 matches as (id, score), best first, within ``sources`` and ``collections`` when given."""
        return self.keywords.search(text, k, sources, collections)

    def document_frequencies(self, words: Sequence[str], sources: Sequence[str] | None = None,
                             collections: Sequence[str] | None = None) -> tuple[int, dict[str, int]]:
        """Chunks in scope and, per word, how many hold it (see KeywordIndex.document_frequencies)."""
        return self.keywords.document_frequencies(words, sources, collections)

    def get_with_vectors(self, ids: Sequence[str], *, vectors: bool = True) -> list[tuple[Chunk, np.ndarray | None]]:
        return self.vectors.get_with_vectors(ids, vectors=vectors)

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        return self.vectors.get(ids)

    def sources(self) -> list[SourceInfo]:
        return self.vectors.sources()

    def count(self) -> int:
        return self.vectors.count()

    def dump(self) -> dict[str, tuple[str, dict[str, Any], list[float]]]:
        return self.vectors.dump()
