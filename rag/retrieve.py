"""The retriever: dense cosine ranking, BM25 keyword ranking, or both fused.

Whatever the mode, every hit carries its cosine similarity to the query, so the
score a user sees always means the same thing; the mode only decides the order.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rag.errors import ConfigError, RagError
from rag.protocols import Embedder, Store
from rag.types import Hit

# MiniLM reads 256 word pieces; a longer query is cut there anyway, so we cap the
# text we tokenize to keep a pasted 100 KB "question" cheap.
MAX_QUERY_CHARS = 4000
MODES = ("dense", "keyword", "hybrid")


class EmptyQueryError(RagError):
    """The query has no text."""


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], weights: Sequence[float], c: float = 60.0) -> list[str]:
    """Fuse ranked id lists: score(id) = sum of weight / (c + rank), best first.

    Args:
        rankings: id lists, each best first.
        weights: one weight per list.
        c: the RRF constant; larger flattens the head of each list.

    Returns:
        All ids, best fused score first (ties keep first-seen order).
    """
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, id_ in enumerate(ranking):
            scores[id_] = scores.get(id_, 0.0) + weight / (c + rank + 1)
    return sorted(scores, key=lambda i: -scores[i])


class Retriever:
    """Ranks stored chunks for a query by cosine similarity, BM25, or their fusion."""

    def __init__(self, embedder: Embedder, store: Store, *, mode: str = "dense",
                 keyword_weight: float = 1.0, candidates: int = 50) -> None:
        """Args:
            embedder: embeds the query.
            store: a Store; keyword and hybrid modes need one with ``keyword_query``.
            mode: ``dense``, ``keyword`` or ``hybrid``.
            keyword_weight: weight of the BM25 list in the fusion (dense has 1.0).
            candidates: how deep each list is read before fusing.
        """
        if mode not in MODES:
            raise ConfigError(f"retrieval mode {mode!r} is not one of {', '.join(MODES)}; e.g. RAG_RETRIEVAL_MODE=hybrid")
        if mode != "dense" and not hasattr(store, "keyword_query"):
            raise ConfigError(f"retrieval mode {mode!r} needs a keyword index next to the vector store")
        self.embedder = embedder
        self.store = store
        self.mode = mode
        self.keyword_weight = keyword_weight
        self.candidates = candidates

    def search(self, query: str, k: int = 5, *, sources: Sequence[str] | None = None) -> list[Hit]:
        """The ``k`` best chunks for ``query``, best first.

        Args:
            query: the question or search text.
            k: how many hits to return.
            sources: only search these sources (names as listed by ``sources()``).

        Returns:
            Hits carrying text, cosine score and source details.
        """
        # Lone surrogates (undecodable bytes from a terminal or form) would crash the tokenizer.
        query = query.encode("utf-8", errors="replace").decode("utf-8").strip()
        if not query:
            raise EmptyQueryError("The query is empty; type a question or some search words")
        if k < 1:
            raise RagError(f"k={k} must be at least 1")
        query = query[:MAX_QUERY_CHARS]
        vector = self.embedder.embed([query])[0]
        if self.mode == "dense":
            return self.store.query(vector, k, sources=sources)
        depth = max(self.candidates, k)
        keyword_ids = [i for i, _ in self.store.keyword_query(query, depth, sources)]
        if self.mode == "keyword":
            return self._hits(keyword_ids[:k], vector, {})
        dense = self.store.query(vector, depth, sources=sources)
        fused = reciprocal_rank_fusion([[h.chunk.id for h in dense], keyword_ids], [1.0, self.keyword_weight])
        return self._hits(fused[:k], vector, {h.chunk.id: h for h in dense})

    def _hits(self, ids: Sequence[str], vector: np.ndarray, known: dict[str, Hit]) -> list[Hit]:
        missing = [i for i in ids if i not in known]
        for chunk, emb in self.store.get_with_vectors(missing):
            # Keyword-only hits get their cosine from the stored vector, like dense ones.
            known[chunk.id] = Hit(chunk, float(np.dot(vector, emb)) if emb is not None else 0.0)
        return [known[i] for i in ids if i in known]
