"""The offline default: answer with the best sentences of the retrieved chunks, no language model.

``ExtractiveGenerator`` scores every sentence of the retrieved chunks against the question
and answers with the best one, verbatim, followed by the citation of its chunk; a second or
third joins it only while the ranker is unsure, and a short answer is completed by the best
sentence's neighbour in its chunk (see :meth:`ExtractiveGenerator.select`). The
answer text starts with :data:`EXTRACT_PREFIX` (``From the documents:``) and the
``Answer.generator`` is ``extractive``, so every surface shows it is an extract.

A sentence's score is a weighted sum of the features of
:mod:`rag.generate.sentence_features` (MiniLM cosines of the sentence and its neighbours,
IDF overlap with the question's words, its chunk's retrieval score and rank, its place in the
chunk, whether it holds the kind of thing the question asks for, its length, ...). The best
:data:`RERANK_TOP` of them are then read again, question and sentence together, by the
cross-encoder of :mod:`rag.generate.rerank` (unless ``RAG_EXTRACT_RERANK=0``), whose logit,
times :data:`RERANK_WEIGHT`, is added to their scores. The scores of one question's candidates
are turned into probabilities by a softmax. Sentences repeated in overlapping chunks count once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from rag.cite import MARKER, PassageVectors, neutralize_brackets
from rag.errors import ConfigError
from rag.generate.sentence_features import (FEATURES, answer_type, candidate_features, matches_type,
                                            sentence_cosines)
from rag.protocols import CrossEncoder, Embedder
from rag.types import Hit

__all__ = ["EXTRACT_PREFIX", "ExtractiveGenerator", "Sentence", "answer_type", "matches_type"]

EXTRACT_PREFIX = "From the documents:"
MAX_SENTENCES = 3

# A listwise ranker over rag.generate.sentence_features.FEATURES, fitted by bench/fit_sentences.py
# (--l2 0.1) on the dump of bench/sentence_features.py (SQuAD half-a, product retrieval): a softmax
# over each question's candidate sentences, maximising the probability of those that hold a gold
# answer, checked by a two-fold cross-fit by article (even/odd). Refit with those two scripts after
# changing a feature.
WEIGHTS = {
    "cosine": 3.8495,
    "pair_cosine": 2.7069,
    "prev_cosine": -0.4435,
    "next_cosine": -0.0486,
    "context": -0.3259,
    "centrality": -3.7203,
    "overlap": 5.8892,
    "prev_overlap": 3.1197,
    "next_overlap": 0.1055,
    "chunk_overlap": 0.9730,
    "chunk_score": 0.8844,
    "chunk_gap": -1.6536,
    "chunk_rank": 2.1401,
    "first": -0.0988,
    "position": -0.1889,
    "type_match": 0.6630,
    "date_match": 0.5384,
    "number_match": 0.3400,
    "person_match": 0.3653,
    "bigrams": 1.5276,
    "log_words": 0.0070,
    "short": -0.6687,
    "novelty": -2.6793,
    "copies": -0.0835,
}
# A sentence after the best one joins when its own probability is at least ADD_SENTENCE, or
# SAME_CHUNK times that when it comes from the best sentence's own chunk: a runner-up from the same
# passage holds the answer about as often as one from another chunk but comes from a chunk that
# holds it far more often, so it costs words, seldom precision (chosen with the same cross-fit,
# bench/fit_sentences.py).
ADD_SENTENCE = 0.2
SAME_CHUNK = 0.33
# An answer shorter than SHORT_ANSWER words is completed by the sentence after its best one in the
# same chunk (the one before when it ends the chunk): a short best sentence often names what the
# next one answers ("The game was played on February 7." / "It was held at Levi's Stadium."), and
# a sentence of the same passage seldom costs precision (chosen with the bar above and the weight
# below, cross-fit by article: bench/extract_rule.py; docs/answers.md#short-answers).
SHORT_ANSWER = 20
# The cross-encoder rereads the feature ranker's best RERANK_TOP sentences and adds RERANK_WEIGHT
# times its logit to their scores; the rest count as if they had its lowest logit, so none overtakes
# a reread one. The weight, the runner-up bars and SHORT_ANSWER are chosen together on the shipped
# model's logits, cross-fit by article (bench/extract_rule.py); bench/train_reranker.py --heldout
# holds the model out too (docs/answers.md).
RERANK_TOP = 8
RERANK_WEIGHT = 0.75



def reread(scores: np.ndarray, top: np.ndarray, logits: np.ndarray, weight: float = RERANK_WEIGHT) -> np.ndarray:
    """Feature scores after the cross-encoder: ``weight`` x logit added to the reread ones (``top``),
    the lowest logit to the rest, so none of those overtakes a reread sentence."""
    boost = np.full(len(scores), logits.min())
    boost[top] = logits
    return scores + weight * boost


def runner_ups(probabilities: Sequence[float], chunks: Sequence[int], *, add_sentence: float = ADD_SENTENCE,
               same_chunk: float = SAME_CHUNK, most: int = MAX_SENTENCES) -> list[int]:
    """Which sentences of a best-first list an answer quotes (see :meth:`ExtractiveGenerator.select`).

    Args:
        probabilities: each sentence's probability, best first.
        chunks: the hit each sentence comes from, in the same order.
        add_sentence: the probability a sentence after the best needs to join it.
        same_chunk: the share of ``add_sentence`` that suffices for one of the best sentence's chunk.
        most: the most sentences quoted.

    Returns:
        Positions in the list, best first; ``[0]`` at least when the list is not empty.
    """
    picked = [0] if len(probabilities) else []
    for i in range(1, len(probabilities)):
        if len(picked) >= most:
            break
        if probabilities[i] >= add_sentence * (same_chunk if chunks[i] == chunks[0] else 1.0):
            picked.append(i)
    return picked


def completed(picked: Sequence[int], words: Mapping[int, int], chunks: Mapping[int, int], *,
              short: int = SHORT_ANSWER, most: int = MAX_SENTENCES) -> list[int]:
    """``picked`` with the best sentence's neighbour added when the answer is under ``short`` words.

    Args:
        picked: the chosen candidates (positions in document order: chunk by chunk, sentence by
            sentence), best first.
        words: each available candidate's word count, by position (a candidate left out, e.g.
            said earlier in the conversation, is absent).
        chunks: each available candidate's hit, by position.
        short: the answer length, in words, below which the neighbour joins.
        most: the most sentences an answer quotes.

    Returns:
        ``picked``, or ``picked`` and then the sentence after the best one in its chunk (else the one
        before it).
    """
    if not picked or len(picked) >= most or sum(words[i] for i in picked) >= short:
        return list(picked)
    best = picked[0]
    for near in (best + 1, best - 1):
        if near in words and chunks[near] == chunks[best] and near not in picked:
            return [*picked, near]
    return list(picked)


@dataclass(frozen=True)
class Sentence:
    """A candidate sentence with the hit it comes from (0-based index into the hits) and its score.

    ``order`` is its position among the candidates in document order (chunk by chunk).
    """

    text: str
    hit: int
    score: float
    cosine: float
    probability: float = 1.0
    order: int = -1


class ExtractiveGenerator:
    """Answers with the best 1-3 sentences of the retrieved chunks, each cited; no language model.

    A :class:`rag.protocols.Extractor`: it is handed the hits, never a prompt.

    Attributes:
        name: ``extractive``.
        prompt_format: None (there is no prompt).
        warning: None.
        passages: the sentence-vector cache (shared with the citation check).
    """

    name = "extractive"
    prompt_format: str | None = None
    warning: str | None = None

    def __init__(self, embedder: Embedder, *, max_sentences: int = MAX_SENTENCES,
                 weights: dict[str, float] | None = None, passages: PassageVectors | None = None,
                 reranker: CrossEncoder | None = None, add_sentence: float = ADD_SENTENCE,
                 same_chunk: float = SAME_CHUNK, short_answer: int = SHORT_ANSWER) -> None:
        """Keep MiniLM; sentence vectors are cached per chunk.

        Args:
            embedder: MiniLM (the retriever's own).
            max_sentences: the most sentences an answer quotes.
            weights: overrides for :data:`WEIGHTS`.
            passages: a shared sentence-vector cache.
            reranker: the cross-encoder that rereads the best candidates (features only when None;
                :func:`rag.generate.make_generator` passes the shared one unless
                ``settings.extract_rerank`` is off).
            add_sentence: the probability a sentence after the best needs to join it.
            same_chunk: the share of ``add_sentence`` that suffices for a sentence of the best
                sentence's own chunk.
            short_answer: below this many words, the best sentence's neighbour joins the answer
                (0: never).
        """
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.weights = {**WEIGHTS, **(weights or {})}
        unknown = set(self.weights) - set(FEATURES)
        if unknown:
            raise ConfigError(f"unknown sentence features {sorted(unknown)}; choose from {', '.join(FEATURES)}")
        self.reranker = reranker
        self.add_sentence = add_sentence
        self.same_chunk = same_chunk
        self.short_answer = short_answer
        self.passages = passages or PassageVectors(embedder)

    def rank(self, question: str, hits: Sequence[Hit], *, question_vector: np.ndarray | None = None) -> list[Sentence]:
        """Every distinct sentence of ``hits``, scored against ``question``, best first.

        Args:
            question: the question.
            hits: retrieved chunks, best first.
            question_vector: the question's MiniLM vector, when already computed.

        Returns:
            The scored sentences; their probabilities (softmax of the scores) sum to 1.
        """
        if not hits:
            return []
        qv = question_vector if question_vector is not None else self.embedder.embed([question])[0]
        chunks = []
        for texts, vectors in self.passages.many(hits):
            if not texts:
                chunks.append(((), (), (), ()))
                continue
            chunks.append((texts, *sentence_cosines(vectors, qv)))
        candidates = candidate_features(question, chunks, [h.score for h in hits])
        if not candidates:
            return []
        w = np.array([self.weights.get(f, 0.0) for f in FEATURES])
        scores = np.array([c.features for c in candidates]) @ w
        if self.reranker is not None and len(candidates) > 1:
            top = np.argsort(-scores, kind="stable")[:RERANK_TOP]
            scores = reread(scores, top, self.reranker.score(
                question, [(hits[candidates[i].hit].chunk.title, candidates[i].text) for i in top]))
        p = np.exp(scores - scores.max())
        p /= p.sum()
        out = [Sentence(c.text, c.hit, float(x), c.cosine, float(q), i)
               for i, (c, x, q) in enumerate(zip(candidates, scores, p))]
        return sorted(out, key=lambda s: -s.score)

    def select(self, question: str, hits: Sequence[Hit], *, question_vector: np.ndarray | None = None,
               exclude: Sequence[str] = ()) -> list[Sentence]:
        """The best sentence for ``question``, then the next ones while each is probable enough.

        A runner-up joins when its probability is at least ``add_sentence``
        (:data:`ADD_SENTENCE`), or ``same_chunk`` times that (:data:`SAME_CHUNK`) when it is a
        sentence of the best one's own chunk, up to ``max_sentences`` in all, best first; an
        answer still under ``short_answer`` words (:data:`SHORT_ANSWER`) then gets the sentence
        after the best one in its chunk (:func:`completed`).

        Args:
            question: what to answer.
            hits: the retrieved chunks.
            question_vector: the question's MiniLM vector, when already embedded.
            exclude: earlier answers of the conversation: the sentence each one answered with (its
                text up to the first citation) is not chosen again. What they quoted after it may
                be: a sentence that completed an earlier answer can be the answer to this one.

        Returns:
            The chosen sentences, best first.
        """
        ranked = self.rank(question, hits, question_vector=question_vector)
        if exclude:
            said = [f" {_plain(_answered_with(t))} " for t in exclude]
            ranked = [s for s in ranked if not any(f" {_plain(s.text)} " in t for t in said)]
        keep = runner_ups([s.probability for s in ranked], [s.hit for s in ranked], add_sentence=self.add_sentence,
                          same_chunk=self.same_chunk, most=self.max_sentences)
        by_order = {s.order: s for s in ranked}
        keep = completed([ranked[i].order for i in keep], {o: len(s.text.split()) for o, s in by_order.items()},
                         {o: s.hit for o, s in by_order.items()}, short=self.short_answer, most=self.max_sentences)
        return [by_order[o] for o in keep]

    @staticmethod
    def compose(sentences: Sequence[Sentence]) -> str:
        """The answer text: the prefix, then each sentence followed by ``[n]`` (n = its hit's 1-based position).

        Bracketed numbers of the documents' own (``[0, 1]``, ``[2][3]``) are neutralised, so
        only the markers added here cite.
        """
        if not sentences:
            return ""
        return " ".join([EXTRACT_PREFIX, *(f"{neutralize_brackets(s.text)} [{s.hit + 1}]" for s in sentences)])

    def answer(self, question: str, hits: Sequence[Hit]) -> str:
        """The extract for ``question`` from ``hits`` (citations numbered by position in ``hits``)."""
        return self.compose(self.select(question, hits))


def _answered_with(answer: str) -> str:
    """What an earlier answer answered with: its text up to its first citation marker, prefix removed."""
    text = answer.removeprefix(EXTRACT_PREFIX)
    first = MARKER.search(text)
    return text[:first.start()] if first else text


def _plain(text: str) -> str:
    """Lower-case words only, so a sentence is found in an answer whatever its markers and spacing."""
    return " ".join(re.findall(r"\w+", text.lower()))
