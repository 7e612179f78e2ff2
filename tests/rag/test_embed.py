"""The real MiniLM: unit vectors, the fast single-text path agrees with sentence-transformers."""

from __future__ import annotations

import numpy as np


def test_vectors_are_unit_length_and_384_wide(embedder) -> None:
    vecs = embedder.embed(["a cat sat on the mat", "stock markets fell sharply", "a kitten on a rug"])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert vecs[0] @ vecs[2] > vecs[0] @ vecs[1] + 0.2


def test_single_query_path_matches_sentence_transformers(embedder) -> None:
    texts = ["what classifier is used?", "Who won Super Bowl 50?", "x " * 400]
    reference = embedder._model.encode(texts, normalize_embeddings=True)
    for text, ref in zip(texts, reference):
        assert float(embedder.embed([text])[0] @ ref) > 0.9999


def test_token_counts_ignore_padding_and_truncation(embedder) -> None:
    short, long = "one two three", "word " * 1000
    assert embedder.count_tokens([short, long]) == [3, 1000]
    spans = embedder.token_offsets(["Hello world"])[0]
    assert spans == [(0, 5), (6, 11)]
