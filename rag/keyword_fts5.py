"""The BM25 keyword index of earlier versions, in SQLite FTS5: kept to compare against.

The product's index is tantivy's (``rag.keyword``). This one stays for the benchmarks that
measure the two side by side (``bench.query_latency``, ``bench.keyword_search``) and for
tests that build a store the way earlier versions did, to check its migration
(``rag.store.open_keyword_index``). Same method set as ``rag.keyword.KeywordIndex``.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path
from typing import Iterable, Sequence

from rag.keyword import keyword_text
from rag.settings import DEFAULT_COLLECTION
from rag.text import QUERY_STOP_WORDS
from rag.types import Chunk

_WORD = re.compile(r"\w+", re.UNICODE)
_MAX_TERMS = 64
_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, source TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_source ON chunks(source);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(body, tokenize = 'porter unicode61 remove_diacritics 2');
"""


def match_expression(query: str) -> str | None:
    """An FTS5 MATCH expression OR-ing the query's words (quoted, so no FTS syntax leaks through).

    Args:
        query: free text.

    Returns:
        The expression, or None when the query has no searchable words.
    """
    seen: list[str] = []
    for word in _WORD.findall(query.lower()):
        if word not in QUERY_STOP_WORDS and word not in seen:
            seen.append(word)
    if not seen:
        seen = list(dict.fromkeys(_WORD.findall(query.lower())))
    if not seen:
        return None
    return " OR ".join(f'"{w}"' for w in seen[:_MAX_TERMS])


class Fts5KeywordIndex:
    """Chunk ids and texts in an FTS5 table, ranked by BM25."""

    def __init__(self, path: str | Path) -> None:
        """Open (or create) the index file.

        Args:
            path: the SQLite file.
        """
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=60)
        self._lock = threading.Lock()
        with self._lock, self._db:
            # WAL lets a server read while a CLI ingestion writes.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    def add(self, chunks: Sequence[Chunk]) -> None:
        """Index chunks; ids already present are left as they are (ids derive from content)."""
        with self._lock, self._db:
            for chunk in chunks:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO chunks (id, source) VALUES (?, ?)", (chunk.id, chunk.source)
                )
                if cur.rowcount:
                    self._db.execute("INSERT INTO fts (rowid, body) VALUES (?, ?)", (cur.lastrowid, keyword_text(chunk)))

    def delete_ids(self, ids: Iterable[str]) -> None:
        """Remove chunks by id (unknown ids are ignored)."""
        ids = list(ids)
        with self._lock, self._db:
            for lo in range(0, len(ids), 500):
                part = ids[lo : lo + 500]
                marks = ",".join("?" * len(part))
                self._db.execute(f"DELETE FROM fts WHERE rowid IN (SELECT rowid FROM chunks WHERE id IN ({marks}))", part)
                self._db.execute(f"DELETE FROM chunks WHERE id IN ({marks})", part)

    def ids_for(self, source: str, *, collection: str = DEFAULT_COLLECTION) -> set[str]:
        """Ids of every indexed chunk of ``source`` (this index predates collections: all are in the default one)."""
        if collection != DEFAULT_COLLECTION:
            return set()
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT id FROM chunks WHERE source = ?", (source,))}

    def all_ids(self) -> set[str]:
        """Every indexed chunk id."""
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT id FROM chunks")}

    def count(self) -> int:
        """Number of indexed chunks."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])

    def search(self, query: str, k: int, sources: Sequence[str] | None = None,
               collections: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` best chunks for ``query`` by BM25.

        Args:
            query: free text.
            k: how many to return.
            sources: only chunks of these sources, when given.
            collections: only chunks of these collections (this index holds the default one only).

        Returns:
            (chunk id, BM25 score) pairs, best first; higher is better.
        """
        expr = match_expression(query)
        if expr is None or (collections and DEFAULT_COLLECTION not in collections):
            return []
        if sources:
            sql = ("SELECT c.id, -bm25(fts) FROM fts JOIN chunks c ON c.rowid = fts.rowid WHERE fts MATCH ?"
                   f" AND c.source IN ({','.join('?' * len(sources))}) ORDER BY bm25(fts) LIMIT ?")
            params: list[object] = [expr, *sources, k]
        else:
            # Rank inside FTS5 first and join only the k winners: joining every matching row
            # (most of the index, for common words) before sorting took a fifth of the time at
            # 100k chunks (python -m bench.keyword_search). bm25() beats FTS5's own `rank` here.
            sql = ("SELECT c.id, -f.score FROM (SELECT rowid, bm25(fts) AS score FROM fts WHERE fts MATCH ?"
                   " ORDER BY score LIMIT ?) f JOIN chunks c ON c.rowid = f.rowid ORDER BY f.score")
            params = [expr, k]
        with self._lock:
            return [(row[0], float(row[1])) for row in self._db.execute(sql, params)]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
