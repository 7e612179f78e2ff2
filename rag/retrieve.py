"""The retriever: dense cosine ranking, BM25 keyword ranking, or both fused.

Whatever the mode, every hit carries its cosine similarity to the query, so the
score a user sees always means the same thing; the mode only decides the order.

Hybrid (the default) reads the top ``candidates`` of each list and fuses them by
min-max-normalised scores (``minmax``), or by reciprocal rank (``rrf``). Measured with
``python -m bench.tune_retrieval`` on SQuAD half-a and SciFact's train queries, score
fusion beat every RRF weighting on both (README, Retrieval).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, Sequence

import numpy as np

from rag.errors import ConfigError, RagError
from rag.protocols import Embedder, Store
from rag.settings import Settings, check_choice
from rag.types import Chunk, Hit

# MiniLM reads 256 word pieces; a longer query is cut there anyway, so we cap the
# text we tokenize to keep a pasted 100 KB "question" cheap.
MAX_QUERY_CHARS = 4000


class EmptyQueryError(RagError):
    """The query has no text."""


RRF_K = 60  # the reciprocal-rank-fusion constant, as in Cormack et al. 2009


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], weights: Sequence[float], c: float = RRF_K) -> list[str]:
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


def minmax_fusion(dense: Mapping[str, float], keyword: Mapping[str, float], keyword_weight: float) -> list[str]:
    """Fuse scored candidates: (1 - w) * cosine' + w * bm25', each min-max normalised over all candidates.

    Args:
        dense: id -> cosine for every candidate (keyword-only ones included).
        keyword: id -> BM25 for the keyword candidates; a missing id scores 0, BM25's floor.
        keyword_weight: w, the BM25 share in [0, 1].

    Returns:
        The ids of ``dense``, best fused score first (ties keep the order of ``dense``).
    """
    ids = list(dense)
    if not ids:
        return []

    def normalised(values: list[float]) -> list[float]:
        lo, hi = min(values), max(values)
        # One candidate, or all equal (e.g. no keyword matched): the list says nothing.
        return [(v - lo) / (hi - lo) if hi > lo else 0.0 for v in values]

    cos = normalised([dense[i] for i in ids])
    bm = normalised([keyword.get(i, 0.0) for i in ids])
    fused = {i: (1 - keyword_weight) * c + keyword_weight * b for i, c, b in zip(ids, cos, bm)}
    return sorted(ids, key=lambda i: -fused[i])


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _keyword_pool() -> ThreadPoolExecutor:
    """The process's worker threads for keyword searches (created on first use)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rag-bm25")
        return _POOL


class Retriever:
    """Ranks stored chunks for a query by cosine similarity, BM25, or their fusion."""

    def __init__(self, embedder: Embedder, store: Store, *, mode: str = Settings.retrieval_mode,
                 fusion: str = Settings.fusion, keyword_weight: float = Settings.keyword_weight,
                 candidates: int = Settings.fusion_candidates) -> None:
        """Args:
            embedder: embeds the query.
            store: a Store; keyword and hybrid modes need one whose ``keyword_query`` is not None.
            mode: ``dense``, ``keyword`` or ``hybrid``.
            fusion: how hybrid fuses the lists: ``minmax`` (normalised scores) or ``rrf`` (ranks).
            keyword_weight: the BM25 share in ``minmax`` (0..1); the BM25 list's weight in ``rrf``
                (dense has 1.0).
            candidates: how deep each list is read before fusing.
        """
        check_choice("retrieval_mode", mode)
        check_choice("fusion", fusion)
        if mode != "dense" and store.keyword_query is None:
            raise ConfigError(f"retrieval mode {mode!r} needs a keyword index next to the vector store")
        self.embedder = embedder
        self.store = store
        self.mode = mode
        self.fusion = fusion
        self.keyword_weight = keyword_weight
        self.candidates = candidates

    def search(self, query: str, k: int = Settings.top_k, *, sources: Sequence[str] | None = None,
               collections: Sequence[str] | None = None) -> list[Hit]:
        """The ``k`` best chunks for ``query``, best first.

        Args:
            query: the question or search text.
            k: how many hits to return.
            sources: only search these sources (names as listed by ``sources()``).
            collections: only search these collections; both lists restrict the stores' own
                searches, so nothing outside them is ever read.

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
        if self.mode == "dense":
            return self.store.query(self.embedder.embed([query])[0], k, sources=sources, collections=collections)
        depth = max(self.candidates, k)
        # BM25 needs no vector: it runs on a worker thread while the query is embedded and
        # searched densely (tantivy, Chroma and ONNX Runtime release the GIL), so hybrid costs
        # little more than the slower of the two instead of their sum. Score fusion also needs
        # the cosine of keyword-only candidates, so the worker reads the stored vectors of its
        # candidates too, while the dense side is still busy, instead of after it.
        fetch = self.mode == "hybrid" and self.fusion == "minmax"
        pending = _keyword_pool().submit(self._keyword_side, query, depth, sources, collections, fetch)
        vector = self.embedder.embed([query])[0]
        if self.mode == "keyword":
            return self._hits([i for i, _ in pending.result()[0]][:k], vector, {})
        # Fusion ranks ids by scores: only the k winners' texts are read. Reading text and
        # metadata with all the candidates of the dense list was most of its time (python -m
        # bench.query_latency, "texts of every candidate").
        nearest = getattr(self.store, "nearest", None)
        known: dict[str, Hit] = {}
        if nearest is not None:
            cosines = dict(nearest(vector, depth, sources=sources, collections=collections))
        else:
            known = {h.chunk.id: h for h in self.store.query(vector, depth, sources=sources, collections=collections)}
            cosines = {i: h.score for i, h in known.items()}
        ranked, stored = pending.result()
        keyword = dict(ranked)
        if self.fusion == "rrf":
            fused = reciprocal_rank_fusion([list(cosines), list(keyword)], [1.0, self.keyword_weight])
            return self._hits(fused[:k], vector, known, cosines)
        for id_, (chunk, emb) in stored.items():
            if id_ not in cosines:
                # Keyword-only hits get their cosine from the stored vector, like dense ones.
                cosines[id_] = float(np.dot(vector, emb)) if emb is not None else 0.0
                if chunk is not None:
                    known[id_] = Hit(chunk, cosines[id_])
        fused = minmax_fusion(cosines, keyword, self.keyword_weight)
        return self._hits(fused[:k], vector, known, cosines)

    def _keyword_side(
        self, query: str, depth: int, sources: Sequence[str] | None, collections: Sequence[str] | None, fetch: bool,
    ) -> tuple[list[tuple[str, float]], dict[str, tuple[Chunk | None, np.ndarray | None]]]:
        """BM25's ranked ``(id, score)`` list and, when ``fetch``, its candidates' stored vectors.

        A store without ``vectors_of`` hands the chunks over with their vectors (None otherwise:
        only the winners' chunks are read, after fusion).
        """
        ranked = self.store.keyword_query(query, depth, sources, collections)
        if not fetch:
            return ranked, {}
        ids = [i for i, _ in ranked]
        vectors_of = getattr(self.store, "vectors_of", None)
        if vectors_of is not None:
            return ranked, {i: (None, emb) for i, emb in vectors_of(ids).items()}
        return ranked, {chunk.id: (chunk, emb) for chunk, emb in self.store.get_with_vectors(ids)}

    def _hits(self, ids: Sequence[str], vector: np.ndarray, known: dict[str, Hit],
              cosines: Mapping[str, float] | None = None) -> list[Hit]:
        """Hits for ``ids`` in order: from ``known``, else read from the store and added to ``known``.

        A chunk's score is its cosine from ``cosines`` when there, else from its stored vector.
        """
        cosines = cosines or {}
        missing = [i for i in ids if i not in known]
        need_vectors = any(i not in cosines for i in missing)
        for chunk, emb in self.store.get_with_vectors(missing, vectors=need_vectors):
            if chunk.id in cosines:
                score = cosines[chunk.id]
            else:
                # Keyword-only hits get their cosine from the stored vector, like dense ones.
                score = float(np.dot(vector, emb)) if emb is not None else 0.0
            known[chunk.id] = Hit(chunk, score)
        return [known[i] for i in ids if i in known]
