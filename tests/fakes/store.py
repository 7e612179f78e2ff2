"""A Store that follows rag.protocols.Store exactly, in memory: exact cosine and an in-memory BM25.

Behaves like rag.store.CombinedStore over Chroma and SQLite FTS5 (the store contract suite in
tests/rag/test_store.py runs the same tests on both): upserts by id, cosine scores, source
filters, newest-first source listing, and BM25 over the chunk's title, section and text with
the same query words as rag.keyword.match_expression.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np

from rag.errors import StoreError
from rag.keyword import keyword_text, query_terms
from rag.settings import DEFAULT_COLLECTION
from rag.text import stem
from rag.types import Chunk, Hit, SourceInfo

_K1, _B = 1.2, 0.75  # FTS5's bm25() defaults
_WORD = re.compile(r"\w+")


def _terms(text: str) -> list[str]:
    # FTS5's porter tokenizer stems; rag.text.stem is cruder but meets the same plurals and -ing forms.
    return [stem(w) for w in _WORD.findall(text.lower())]


class MemoryStore:
    """Chunks, vectors and (optionally) a BM25 index in dicts.

    Args:
        keywords: False for a vector-only store (``keyword_query`` is None, like ``ChromaStore``).
    """

    def __init__(self, *, keywords: bool = True) -> None:
        self._rows: dict[str, tuple[Chunk, np.ndarray, str]] = {}  # id -> (chunk, vector, added_at)
        self._terms: dict[str, Counter[str]] = {}
        self._lock = threading.Lock()
        self.keyword_query = self._keyword_query if keywords else None
        self.document_frequencies = self._document_frequencies if keywords else None

    def add(self, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None:
        if len(chunks) != len(embeddings):
            raise StoreError(f"{len(chunks)} chunks but {len(embeddings)} vectors; they must match")
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._lock:
            for chunk, vector in zip(chunks, embeddings):
                self._rows[chunk.id] = (chunk, np.asarray(vector, dtype=np.float32).copy(), now)
                self._terms[chunk.id] = Counter(_terms(keyword_text(chunk)))

    def delete_ids(self, ids: Sequence[str]) -> None:
        with self._lock:
            for i in ids:
                self._rows.pop(i, None)
                self._terms.pop(i, None)

    def delete_source(self, source: str, *, collection: str = DEFAULT_COLLECTION) -> int:
        ids = self.ids_for(source, collection=collection)
        self.delete_ids(sorted(ids))
        return len(ids)

    def ids_for(self, source: str, *, complete: bool = True, collection: str = DEFAULT_COLLECTION) -> set[str]:
        with self._lock:
            return {i for i, (c, _, _) in self._rows.items() if c.source == source and c.collection == collection}

    @staticmethod
    def _in(chunk: Chunk, sources: Sequence[str] | None, collections: Sequence[str] | None) -> bool:
        return (not sources or chunk.source in sources) and (not collections or chunk.collection in collections)

    def query(self, embedding: np.ndarray, k: int, sources: Sequence[str] | None = None,
              collections: Sequence[str] | None = None) -> list[Hit]:
        q = np.asarray(embedding, dtype=np.float32).reshape(-1)
        with self._lock:
            rows = [(c, v) for c, v, _ in self._rows.values() if self._in(c, sources, collections)]
        scored = sorted((-float(v @ q), n, c) for n, (c, v) in enumerate(rows))
        return [Hit(c, -s) for s, _, c in scored[:k]]

    def get_with_vectors(self, ids: Sequence[str], *, vectors: bool = True) -> list[tuple[Chunk, np.ndarray | None]]:
        with self._lock:
            return [(self._rows[i][0], self._rows[i][1].copy() if vectors else None) for i in ids if i in self._rows]

    def sources(self) -> list[SourceInfo]:
        agg: dict[tuple[str, str], dict[str, Any]] = {}
        with self._lock:
            for chunk, _, added in self._rows.values():
                e = agg.setdefault((chunk.collection, chunk.source), {"kind": chunk.kind, "title": chunk.title, "chunks": 0,
                                                  "added_at": added,
                                                  "url": chunk.url if chunk.kind == "wikipedia" else None})
                e["chunks"] += 1
                e["added_at"] = max(e["added_at"], added)
        infos = [SourceInfo(source=s, kind=e["kind"], title=e["title"], chunks=e["chunks"], added_at=e["added_at"],
                            url=e["url"].split("#", 1)[0] if e["url"] else None, collection=c)
                 for (c, s), e in agg.items()]
        return sorted(infos, key=lambda s: (s.added_at, s.source, s.collection), reverse=True)

    def count(self) -> int:
        with self._lock:
            return len(self._rows)

    def _document_frequencies(self, words: Sequence[str], sources: Sequence[str] | None = None,
                              collections: Sequence[str] | None = None) -> tuple[int, dict[str, int]]:
        with self._lock:
            scope = [t for i, t in self._terms.items() if self._in(self._rows[i][0], sources, collections)]
        return len(scope), {w: sum(1 for t in scope if stem(w.lower()) in t) for w in dict.fromkeys(words)}

    def _keyword_query(self, text: str, k: int, sources: Sequence[str] | None = None,
                       collections: Sequence[str] | None = None) -> list[tuple[str, float]]:
        query = list(dict.fromkeys(stem(w) for w in query_terms(text)))
        if not query:
            return []
        with self._lock:
            docs = {i: t for i, t in self._terms.items() if self._in(self._rows[i][0], sources, collections)}
            n = len(self._terms)
            avgdl = sum(sum(t.values()) for t in self._terms.values()) / n if n else 0.0
            df = {w: sum(1 for t in self._terms.values() if w in t) for w in query}
        scores = []
        for order, (i, tf) in enumerate(docs.items()):
            dl = sum(tf.values())
            score = 0.0
            for w in query:
                if tf[w]:
                    idf = math.log((n - df[w] + 0.5) / (df[w] + 0.5) + 1)
                    score += idf * tf[w] * (_K1 + 1) / (tf[w] + _K1 * (1 - _B + _B * dl / avgdl))
            if score > 0:
                scores.append((-score, order, i))
        return [(i, -s) for s, _, i in sorted(scores)[:k]]
