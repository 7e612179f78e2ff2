"""The extension points: one small Protocol per role, one main method each."""

from __future__ import annotations

from typing import Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

from rag.types import Chunk, Hit, SourceInfo


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors; knows its own tokenizer and limit."""

    dimension: int
    max_tokens: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts as an (n, dimension) float32 array of unit vectors."""
        ...

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Per text, the character spans of the word pieces the embedder reads (no specials)."""
        ...


@runtime_checkable
class Store(Protocol):
    """Keeps chunks and their vectors; answers nearest-neighbour queries by cosine."""

    def query(self, embedding: np.ndarray, k: int, sources: Sequence[str] | None = None) -> list[Hit]:
        """The k chunks closest to ``embedding``, best first, optionally only from ``sources``."""
        ...

    def add(self, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None: ...

    def delete_ids(self, ids: Sequence[str]) -> None: ...

    def delete_source(self, source: str) -> int: ...

    def ids_for(self, source: str) -> set[str]: ...

    def sources(self) -> list[SourceInfo]: ...

    def count(self) -> int: ...


@runtime_checkable
class KeywordIndex(Protocol):
    """Ranks chunks by BM25 over their words, beside the vector store (same chunk ids)."""

    def search(self, query: str, k: int, sources: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """The k best (chunk id, BM25 score) pairs, best first, optionally only from ``sources``."""
        ...

    def document_frequencies(self, words: Sequence[str],
                             sources: Sequence[str] | None = None) -> tuple[int, dict[str, int]]:
        """(chunks, {word: chunks holding it}), words matched as the index tokenizes, within ``sources``."""
        ...


@runtime_checkable
class Generator(Protocol):
    """Writes an answer from a prompt, streaming text pieces as they are produced."""

    name: str

    def stream(self, prompt: str, *, max_new_tokens: int) -> Iterator[str]:
        """Yield the answer text piece by piece."""
        ...
