"""The answerability reader's trainer: adapting only the upper blocks over their cached input is the same model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.train_answerability import FrozenBelow, case_logits, train
from bench.train_reranker import save
from rag.generate.rerank import SentenceReranker

PAIRS = [
    ("Who leads the Orion project?", "Handbook", "Dana Whit leads the Orion project.", 1.0),
    ("Who leads the Orion project?", "Handbook", "The Orion project is due on March 3.", 0.0),
    ("When is the Orion project due?", "Handbook", "The Orion project is due on March 3.", 1.0),
    ("When is the Orion project due?", "Handbook", "Kites fly on the beach in the summer.", 0.0),
] * 8


def test_upper_blocks_over_cached_lower_ones_score_as_the_product_loads_them(tmp_path: Path) -> None:
    enc, head, tok = train(PAIRS, 40.0, blocks=2)
    adapted = {name.split(".layer.")[1].split(".")[0] for name, p in enc.named_parameters() if p.requires_grad}
    assert adapted == {"4", "5"}  # MiniLM's last two of six blocks
    wanted = {"case": [p[:3] for p in PAIRS[:4]]}
    distinct = [p[:3] for p in PAIRS[:4]]
    cached = case_logits(enc, head, tok, wanted, distinct, FrozenBelow(enc, tok, distinct, 2))["case"]
    whole = case_logits(enc, head, tok, wanted, distinct)["case"]
    np.testing.assert_allclose(cached, whole, atol=1e-5)
    save(enc, head, tmp_path / "reader.npz")
    reader = SentenceReranker(tmp_path / "reader.npz")  # adapters merged into only the blocks that have them
    product = [float(reader.score(q, [(t, s)])[0]) for q, t, s, _ in PAIRS[:4]]
    np.testing.assert_allclose(product, whole, atol=1e-3)  # the file holds the adapters in float16
    # It learned something in its 80 steps: each question's answer above its non-answer.
    assert product[0] > product[1] and product[2] > product[3]
