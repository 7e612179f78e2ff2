"""The retriever: embed the query, rank chunks by cosine similarity, filter by source."""

from __future__ import annotations

from typing import Sequence

from rag.errors import RagError
from rag.protocols import Embedder, Store
from rag.types import Hit

# MiniLM reads 256 word pieces; a longer query is cut there anyway, so we cap the
# text we tokenize to keep a pasted 100 KB "question" cheap.
MAX_QUERY_CHARS = 4000


class EmptyQueryError(RagError):
    """The query has no text."""


class Retriever:
    """Ranks stored chunks by cosine similarity to the query."""

    def __init__(self, embedder: Embedder, store: Store) -> None:
        self.embedder = embedder
        self.store = store

    def search(self, query: str, k: int = 5, *, sources: Sequence[str] | None = None) -> list[Hit]:
        """The ``k`` chunks most similar to ``query``, best first.

        Args:
            query: the question or search text.
            k: how many hits to return.
            sources: only search these sources (names as listed by ``sources()``).

        Returns:
            Hits carrying text, cosine score and source details.
        """
        query = query.strip()
        if not query:
            raise EmptyQueryError("The query is empty; type a question or some search words")
        if k < 1:
            raise RagError(f"k={k} must be at least 1")
        vector = self.embedder.embed([query[:MAX_QUERY_CHARS]])[0]
        return self.store.query(vector, k, sources=sources)
