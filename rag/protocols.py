"""The extension points: one Protocol per role, stating everything its callers use.

A backend written only from this module works everywhere the built-in one does
(``tests/rag/test_protocols.py`` proves it with a minimal store, embedder and generator).

* :class:`Embedder`: texts -> unit vectors, and the tokenizer that sizes chunks.
* :class:`Store`: chunks and vectors, nearest-neighbour queries, and, optionally, BM25.
* :class:`KeywordIndex`: the BM25 half of the built-in store (SQLite FTS5 or tantivy).
* :class:`Generator`: a language model: prompt in, text out, in its own prompt format.
* :class:`Extractor`: answers from the retrieved chunks themselves, no prompt (the default).

An **optional capability** is an attribute that is either the method or ``None``
(``Store.keyword_query``, ``Store.document_frequencies``, ``Generator.render_chat_template``). Callers test ``is None``;
nothing in ``rag`` probes a backend with ``hasattr``/``getattr``. Which kind of answerer a
backend is shows in its declared ``prompt_format``: a string for a :class:`Generator`,
``None`` for an :class:`Extractor`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

from rag.settings import DEFAULT_COLLECTION
from rag.types import Chunk, Hit, SourceInfo

if TYPE_CHECKING:
    from rag.cite import PassageVectors

ChatTemplate = Callable[[list[dict[str, str]]], str]
KeywordQuery = Callable[[str, int, Sequence[str] | None, Sequence[str] | None], list[tuple[str, float]]]
DocumentFrequencies = Callable[[Sequence[str], Sequence[str] | None, Sequence[str] | None], tuple[int, dict[str, int]]]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors; knows its own tokenizer and limit.

    Attributes:
        dimension: the length of every vector.
        max_tokens: the most word pieces a text may have before the embedder ignores the rest;
            chunks are cut to fit.
    """

    dimension: int
    max_tokens: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts as an (n, dimension) float32 array of unit vectors (n may be 0)."""
        ...

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Per text, the character spans of the word pieces the embedder reads (no specials)."""
        ...

    def warm_up(self) -> None:
        """Load whatever the first query would otherwise wait for (may do nothing)."""
        ...


@runtime_checkable
class Store(Protocol):
    """Keeps chunks and their vectors; answers nearest-neighbour queries by cosine.

    Every chunk belongs to a collection (``Chunk.collection``); a source is named by its
    collection and its name together (``ids_for``). A query restricted to ``collections``
    must apply the restriction inside its search, so it returns the k best of those
    collections (``rag.collections``).

    Attributes:
        keyword_query: ``keyword_query(text, k, sources, collections)`` -> (chunk id, BM25 score)
            pairs, best first, over the same chunks; ``None`` for a store without a keyword index
            (then only ``dense`` retrieval is possible).
        document_frequencies: ``document_frequencies(words, sources, collections)`` -> (chunks in scope,
            {word: chunks holding it}), as :meth:`KeywordIndex.document_frequencies`; ``None``
            for a store without a keyword index (the refusal evidence then weighs words over
            the retrieved sentences instead).

    A store may also offer two cheaper reads, which hybrid retrieval uses when present:
    ``nearest(embedding, k, sources, collections)`` -> (chunk id, cosine) pairs, best first
    (``query`` without reading the chunks), and ``vectors_of(ids)`` -> {id: stored vector}.
    Fusion ranks candidates by those and reads the chunks of the winners only.
    """

    keyword_query: KeywordQuery | None
    document_frequencies: DocumentFrequencies | None

    def query(self, embedding: np.ndarray, k: int, sources: Sequence[str] | None = None,
              collections: Sequence[str] | None = None) -> list[Hit]:
        """The k chunks closest to ``embedding``, best first, optionally only from ``sources`` within ``collections``.

        ``Hit.score`` is the cosine similarity; fewer than k hits when fewer chunks match.
        """
        ...

    def add(self, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None:
        """Upsert chunks with one unit vector each; an id already stored is overwritten, not duplicated."""
        ...

    def delete_ids(self, ids: Sequence[str]) -> None:
        """Delete chunks by id; unknown ids are ignored."""
        ...

    def delete_source(self, source: str, *, collection: str = DEFAULT_COLLECTION) -> int:
        """Delete every chunk of ``source`` in ``collection``; returns how many there were (0 for an unknown source)."""
        ...

    def ids_for(self, source: str, *, complete: bool = True, collection: str = DEFAULT_COLLECTION) -> set[str]:
        """Ids of the chunks of ``source`` in ``collection``.

        Args:
            source: the source name.
            collection: the collection the source is in.
            complete: a store made of several indexes (vectors + keywords) returns only ids
                present in all of them when True, in any of them when False; a single-index
                store returns the same set either way.
        """
        ...

    def get_with_vectors(self, ids: Sequence[str], *, vectors: bool = True) -> list[tuple[Chunk, np.ndarray | None]]:
        """Chunks by id with their stored vectors (None when ``vectors`` is False), in the order given;
        unknown ids are left out."""
        ...

    def sources(self) -> list[SourceInfo]:
        """Every source stored (one per collection and name), with its chunk count and collection, newest first."""
        ...

    def count(self) -> int:
        """How many chunks are stored."""
        ...


@runtime_checkable
class KeywordIndex(Protocol):
    """A BM25 index over the same chunk ids as the vector store."""

    def add(self, chunks: Sequence[Chunk]) -> None:
        """Index chunks; ids already present are left as they are (ids derive from content)."""
        ...

    def delete_ids(self, ids: Iterable[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        ...

    def ids_for(self, source: str, *, collection: str = DEFAULT_COLLECTION) -> set[str]:
        """Ids of every indexed chunk of ``source`` in ``collection``."""
        ...

    def all_ids(self) -> set[str]:
        """Every indexed chunk id."""
        ...

    def count(self) -> int:
        """How many chunks are indexed."""
        ...

    def search(self, query: str, k: int, sources: Sequence[str] | None = None,
               collections: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` best (chunk id, BM25 score) pairs for free text, best first (higher is better),
        within ``sources`` and ``collections`` when given; empty when the query has no searchable words."""
        ...

    def document_frequencies(self, words: Sequence[str], sources: Sequence[str] | None = None,
                             collections: Sequence[str] | None = None) -> tuple[int, dict[str, int]]:
        """``(chunks, {word: chunks holding it})``, each word matched as :meth:`search` matches it,
        counting only chunks of ``sources`` and ``collections`` when given (the refusal's rare-word weights)."""
        ...

    def close(self) -> None:
        """Release the index's files."""
        ...


@runtime_checkable
class Generator(Protocol):
    """A language model: writes an answer from a prompt, streaming text pieces as they are produced.

    Attributes:
        name: shown as ``Answer.generator``, e.g. ``openai:llama@http://...``.
        prompt_format: a :data:`rag.prompt.FORMATS` name the prompt is rendered in (never None).
        context_window: prompt + answer tokens the model reads; sources are packed to fit.
        warning: a sentence to show the user about this model (e.g. "running on the CPU"), or None.
        render_chat_template: renders chat messages with the model's own template; needed when
            ``prompt_format`` is ``chat-template``, otherwise may be None.
    """

    name: str
    prompt_format: str
    context_window: int
    warning: str | None
    render_chat_template: ChatTemplate | None

    def count_tokens(self, text: str) -> int:
        """How many of the model's tokens ``text`` is (sizes the packed prompt)."""
        ...

    def stream(self, prompt: str, *, max_new_tokens: int) -> Iterator[str]:
        """Yield the answer text piece by piece."""
        ...


@runtime_checkable
class Extractor(Protocol):
    """Answers from the retrieved chunks themselves: no prompt, no language model.

    The answerer retrieves, hands the hits over, and cites what comes back: ``[n]`` in
    :meth:`compose`'s text is the n-th hit given to :meth:`select`.

    Attributes:
        name: shown as ``Answer.generator``.
        prompt_format: always None (there is no prompt; this is how callers tell it from a Generator).
        warning: as for :class:`Generator`.
        passages: the sentence-vector cache it scores with, shared with the citation check.
    """

    name: str
    prompt_format: None
    warning: str | None
    passages: "PassageVectors"

    def select(self, question: str, hits: Sequence[Hit], *, question_vector: np.ndarray | None = None,
               exclude: Sequence[str] = ()) -> Sequence[Any]:
        """The passages that answer ``question``, best first; empty when none does.

        ``exclude`` holds the conversation's earlier answers: a passage they already say is not
        chosen again. The items are opaque to the caller, which only passes them to :meth:`compose`.
        """
        ...

    def compose(self, selected: Sequence[Any]) -> str:
        """The answer text for what :meth:`select` chose, each passage followed by ``[n]``."""
        ...


class CrossEncoder(Protocol):
    """Reads a question together with each candidate sentence and gives it one logit.

    The extract's reranker and the refusal's answerability reader
    (:class:`rag.generate.rerank.SentenceReranker` with their own adapters) are two of these.
    """

    def score(self, question: str, candidates: Sequence[tuple[str, str]]) -> np.ndarray:
        """One logit per ``(title, sentence)`` candidate, in their order."""
        ...


Answering = Generator | Extractor
"""What the answerer accepts: a language model or an extractor (``prompt_format is None``)."""


def is_extractor(backend: Generator | Extractor) -> bool:
    """Whether ``backend`` answers from hits (an :class:`Extractor`) rather than from a prompt."""
    return backend.prompt_format is None
