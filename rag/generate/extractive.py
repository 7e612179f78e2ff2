"""The offline default: answer with the best sentences of the retrieved chunks, no language model.

``ExtractiveGenerator`` scores every sentence of the retrieved chunks against the question
and returns the best one to three, verbatim, each followed by the citation of its chunk.
The answer text starts with :data:`EXTRACT_PREFIX` (``From the documents:``) and the
``Answer.generator`` is ``extractive``, so every surface shows it is an extract.

A sentence's score adds up, with weights fitted on SQuAD half-a (``rag eval answers``):

* ``cosine``: MiniLM cosine between the question and the sentence;
* ``overlap``: the share of the question's content words (IDF-weighted over the candidate
  sentences, crude suffix stemming) that the sentence contains;
* ``chunk``: the cosine of the sentence's chunk to the question (retrieval's own score);
* ``context``: how much better the previous sentence matches than this one (the answer
  often follows the sentence that names the subject: "... Newton. He was sacked seven times.");
* ``answer type``: for when/how many/who/where questions, whether the sentence has a date,
  a number, a name, or a place after in/at/near (a name or place the question does not
  already contain);
* ``centrality`` (subtracted): cosine to its chunk's mean sentence, which is high for topic
  sentences ("Super Bowl 50 was an American football game ...") that restate a subject
  without answering anything about it.

Sentences repeated in overlapping chunks count once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rag.cite import PassageVectors, neutralize_brackets
from rag.protocols import Embedder
from rag.text import IdfOverlap, content_words, words as _words
from rag.types import Hit

EXTRACT_PREFIX = "From the documents:"
MAX_SENTENCES = 3

# Fitted on SQuAD half-a (see rag.eval.answers.evaluate_extract and the README).
WEIGHTS = {
    "cosine": 1.0,
    "overlap": 1.0,
    "chunk": 1.0,
    "context": 0.5,
    "answer_type": 0.2,
    "centrality": 0.6,
}

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_NUMBER_WORDS = frozenset(
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million billion "
    "trillion dozen half percent".split()
)
_DATE_Q = re.compile(r"\b(when|what year|which year|what month|what day|what date|what century|which century|"
                     r"what decade|in what year|what time)\b")
_NUM_Q = re.compile(r"\b(how many|how much|what percentage|what percent|how long|how far|how old|how large|how big|"
                    r"how high|how tall|how fast|what number|what amount|how often|what proportion|what fraction)\b")
_PERSON_Q = re.compile(r"\b(who|whom|whose)\b")
_PLACE_Q = re.compile(r"\b(where|what city|which city|what country|which country|what state|which state|"
                      r"what region|what place)\b")

_PLACE = re.compile(r"\b(?:in|at|near|from|to)\s+(?:the\s+)?([A-Z][\w'-]+)")


@dataclass(frozen=True)
class Sentence:
    """A candidate sentence with the hit it comes from (0-based index into the hits) and its score."""

    text: str
    hit: int
    score: float
    cosine: float


def answer_type(question: str) -> str | None:
    """``date``, ``number``, ``person``, ``place`` or None, from the question's wh-phrase."""
    q = question.lower()
    for kind, pattern in (("date", _DATE_Q), ("number", _NUM_Q), ("person", _PERSON_Q), ("place", _PLACE_Q)):
        if pattern.search(q):
            return kind
    return None


def matches_type(kind: str | None, sentence: str, question_words: set[str]) -> bool:
    """Whether ``sentence`` holds the kind of thing the question asks for."""
    if kind is None:
        return False
    low = sentence.lower()
    if kind == "date":
        return bool(re.search(r"\b(1[0-9]{3}|20[0-9]{2})s?\b", sentence)) or "century" in low or \
            any(m in low for m in _MONTHS)
    if kind == "number":
        return bool(re.search(r"\d", sentence)) or any(w in _NUMBER_WORDS for w in _words(sentence))
    if kind == "place":  # "in Santa Clara", "at Levi's Stadium"
        return any(m.group(1).lower() not in question_words for m in _PLACE.finditer(sentence))
    names = re.findall(r"\b[A-Z][\w'-]+", sentence)[1:]  # the first word is capitalised anyway
    return any(n.lower() not in question_words for n in names)


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
                 weights: dict[str, float] | None = None, passages: PassageVectors | None = None) -> None:
        """Keep MiniLM; sentence vectors are cached per chunk.

        Args:
            embedder: MiniLM (the retriever's own).
            max_sentences: the most sentences an answer quotes.
            weights: overrides for :data:`WEIGHTS`.
            passages: a shared sentence-vector cache.
        """
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.weights = {**WEIGHTS, **(weights or {})}
        self.passages = passages or PassageVectors(embedder)

    def rank(self, question: str, hits: Sequence[Hit], *, question_vector: np.ndarray | None = None) -> list[Sentence]:
        """Every distinct sentence of ``hits``, scored against ``question``, best first.

        Args:
            question: the question.
            hits: retrieved chunks, best first.
            question_vector: the question's MiniLM vector, when already computed.

        Returns:
            The scored sentences.
        """
        if not hits:
            return []
        w = self.weights
        qv = question_vector if question_vector is not None else self.embedder.embed([question])[0]
        per_hit = self.passages.many(hits)
        q_content = content_words(question)
        q_words = set(_words(question))
        kind = answer_type(question)
        sentence_words = [[content_words(t) for t in texts] for texts, _ in per_hit]
        # IDF over the candidate sentences: a question word found in every sentence tells nothing.
        overlap_of = IdfOverlap(q_content, (ws for per in sentence_words for ws in per))

        best: dict[str, Sentence] = {}
        for index, (hit, (texts, vectors)) in enumerate(zip(hits, per_hit)):
            if not texts:
                continue
            cos = vectors @ qv
            centre = vectors.mean(axis=0)
            centre /= np.linalg.norm(centre) + 1e-12
            centrality = vectors @ centre
            for j, text in enumerate(texts):
                overlap = overlap_of(sentence_words[index][j])
                context = max(float(cos[j - 1] - cos[j]), 0.0) if j > 0 else 0.0
                score = (w["cosine"] * float(cos[j]) + w["overlap"] * overlap + w["chunk"] * hit.score
                         + w["context"] * context + w["answer_type"] * matches_type(kind, text, q_words)
                         - w["centrality"] * float(centrality[j]))
                key = " ".join(text.lower().split())
                if key not in best or score > best[key].score:
                    best[key] = Sentence(text, index, score, float(cos[j]))
        return sorted(best.values(), key=lambda s: -s.score)

    def select(self, question: str, hits: Sequence[Hit], *, question_vector: np.ndarray | None = None) -> list[Sentence]:
        """The best 1 to ``max_sentences`` sentences for ``question``, best first."""
        return self.rank(question, hits, question_vector=question_vector)[: self.max_sentences]

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
