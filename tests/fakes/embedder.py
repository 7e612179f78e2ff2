"""An Embedder that follows rag.protocols.Embedder exactly, without a model: hashed bag of words.

Each text becomes the unit vector of its hashed content words (rag.text.content_words, so
"founded" and "founding" meet), and its "word pieces" are its words and punctuation marks.
Texts that share words are close by cosine, texts that share none are orthogonal (up to hash
collisions): enough for retrieval, evidence and support to behave as they do with MiniLM,
in microseconds and deterministically across processes (no Python hash randomisation).
"""

from __future__ import annotations

import re
import zlib
from typing import Sequence

import numpy as np

from rag.text import content_words

_PIECE = re.compile(r"\w+|[^\w\s]")


class HashEmbedder:
    """Hashed bag-of-words unit vectors; the tokenizer is words and punctuation."""

    def __init__(self, dimension: int = 512, max_tokens: int = 254) -> None:
        self.dimension = dimension
        self.max_tokens = max_tokens
        self.calls = 0  # how many embed() calls, for tests that check caching

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text; a text without content words gets a fixed vector of its own."""
        self.calls += 1
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            pieces = _PIECE.findall(text)[: self.max_tokens]  # like MiniLM, read no further than the limit
            for word in content_words(" ".join(pieces)):
                out[row, zlib.crc32(word.encode("utf-8")) % self.dimension] += 1.0
            norm = float(np.linalg.norm(out[row]))
            if norm == 0.0:
                out[row, 0] = 1.0
            else:
                out[row] /= norm
        return out

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Per text, the character spans of its words and punctuation marks."""
        return [[m.span() for m in _PIECE.finditer(text)] for text in texts]

    def warm_up(self) -> None:
        """Nothing loads lazily."""
