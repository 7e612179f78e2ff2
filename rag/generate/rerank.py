"""A cross-encoder that reorders the extract's best candidate sentences: MiniLM reading question and sentence together.

The extract's feature ranker (:mod:`rag.generate.sentence_features`) sees the question and a
sentence apart: two MiniLM vectors and word counts. Reading both in one pass lets attention
match "Which NFL team represented the AFC" against "The AFC champion Denver Broncos defeated
...", which neither a cosine nor an overlap can. :class:`SentenceReranker` is
all-MiniLM-L6-v2 (the bundled weights the embedder uses) with low-rank adapters (LoRA, rank
:data:`RANK`) on every linear layer of its six transformer blocks and a linear head on the
mean-pooled output; the adapters and the head, the only trained part, ship with the package
(:data:`WEIGHTS_FILE`, a few hundred kilobytes) and are merged into the weights once at load.

Input is ``question [SEP] title: sentence``: the chunk's title (a Wikipedia article's name, a
PDF's title) says what a sentence's "it" or "the team" is. Output is one logit per sentence;
only differences between one question's candidates mean anything (it was trained listwise).

Trained by ``python -m bench.train_reranker`` on SQuAD half-a (the questions of
``bench.sentence_features``' dump, each question's gold sentences against the feature ranker's
best wrong ones), checked by a cross-fit by article (docs/answers.md).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from rag.errors import RagError

RANK = 8
ALPHA = 16.0
MAX_TOKENS = 96
WEIGHTS_FILE = Path(__file__).with_name("sentence_reranker.npz")
# The same architecture trained pointwise (does this sentence answer the question?) for the
# refusal's evidence (rag.refuse.answerability; bench/train_answerability.py).
ANSWERABILITY_FILE = Path(__file__).with_name("sentence_answerability.npz")
BATCH = 32

_SHARED: "dict[Path, SentenceReranker]" = {}
_LOAD_LOCK = threading.Lock()


def encode_pairs(tokenizer, question: str | Sequence[str], candidates: Sequence[tuple[str, str]]):
    """The model's input for ``question`` against ``(title, sentence)`` candidates: the one encoding
    the product scores and the training benches train on (``question [SEP] title: sentence``).
    ``question`` may be one question per candidate (a training batch mixes questions)."""
    from rag.embed import valid_utf8

    texts = [valid_utf8(f"{title}: {text}" if title else text) for title, text in candidates]
    questions = [valid_utf8(q) for q in ([question] * len(texts) if isinstance(question, str) else question)]
    return tokenizer(questions, texts, padding=True, truncation="longest_first",
                     max_length=MAX_TOKENS, return_tensors="pt")


def mean_pool(hidden, attention_mask):
    """The mean of each pair's token vectors over its real tokens (padding left out)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1)


class SentenceReranker:
    """Scores ``(question, title, sentence)`` triples with an adapted MiniLM cross-encoder.

    The extract's reranker (:data:`WEIGHTS_FILE`) and the refusal's answerability reader
    (:data:`ANSWERABILITY_FILE`) are two sets of adapters for this one class.
    """

    def __init__(self, weights: Path = WEIGHTS_FILE, model_dir: Path | None = None) -> None:
        """Load MiniLM and merge the trained adapters into it.

        Args:
            weights: the adapters and head (``.npz``, as ``bench.train_reranker`` writes them).
            model_dir: the MiniLM files (the bundled all-MiniLM-L6-v2 when None).

        Raises:
            RagError: the weights file is missing or does not fit the model.
        """
        import torch
        from transformers import AutoModel, AutoTokenizer

        from rag.embed import bundled_model_dir

        if not weights.is_file():
            hint = (", or set RAG_EXTRACT_RERANK=0 to rank sentences by their features only"
                    if weights.name == WEIGHTS_FILE.name else "")
            raise RagError(f"the cross-encoder's weights are missing ({weights}); reinstall rag{hint}")
        directory = model_dir or bundled_model_dir()
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        self.model = AutoModel.from_pretrained(directory).eval()
        trained = np.load(weights)
        merged = 0
        with torch.no_grad():
            for name, module in self.model.named_modules():
                a, b = trained.get(f"{name}.A"), trained.get(f"{name}.B")
                if a is None or b is None:
                    continue
                if not isinstance(module, torch.nn.Linear) or module.weight.shape != (b.shape[0], a.shape[1]):
                    raise RagError(f"{weights} does not fit {directory} at {name}; retrain it with bench.train_reranker")
                delta = torch.from_numpy(b.astype(np.float32) @ a.astype(np.float32)) * (ALPHA / RANK)
                module.weight += delta
                merged += 1
        if not merged:
            raise RagError(f"{weights} holds no adapters for {directory}; retrain it with bench.train_reranker")
        self.head_weight = trained["head.weight"].astype(np.float32).reshape(-1)
        self.head_bias = float(trained["head.bias"].reshape(-1)[0])
        self._lock = threading.Lock()  # one forward pass at a time: torch's threads are shared anyway

    @classmethod
    def shared(cls, weights: Path = WEIGHTS_FILE) -> "SentenceReranker":
        """The process's one model for ``weights`` (loaded on first use; read-only after that).

        Args:
            weights: :data:`WEIGHTS_FILE` (the extract's reranker) or :data:`ANSWERABILITY_FILE`.
        """
        with _LOAD_LOCK:
            if weights not in _SHARED:
                _SHARED[weights] = cls(weights)
            return _SHARED[weights]

    def score(self, question: str, candidates: Sequence[tuple[str, str]]) -> np.ndarray:
        """One logit per candidate.

        Args:
            question: the question.
            candidates: ``(title, sentence)`` pairs; the title may be empty.

        Returns:
            The logits, in the candidates' order (comparable within one question only).
        """
        if not candidates:
            return np.zeros(0)
        out = []
        with self._lock, self._torch.inference_mode():
            for start in range(0, len(candidates), BATCH):
                batch = encode_pairs(self.tokenizer, question, candidates[start:start + BATCH])
                pooled = mean_pool(self.model(**batch).last_hidden_state, batch["attention_mask"]).numpy()
                out.append(pooled @ self.head_weight + self.head_bias)
        return np.concatenate(out)
