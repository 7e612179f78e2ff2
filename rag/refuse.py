"""Whether the retrieved chunks answer a question: the evidence score and the refusal decision.

:func:`assess` measures how strongly the best retrieved chunks bear on a question and
returns an :class:`~rag.types.Evidence`; :func:`should_refuse` compares its score with
``settings.refuse_below``. :class:`rag.answer.Answerer` refuses (answers exactly
:data:`rag.prompt.NO_ANSWER`) below it, before any generation.

RULE_PLACEHOLDER
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Sequence

from rag.cite import PassageVectors
from rag.settings import Settings
from rag.types import Evidence, Hit

# Evidence is judged on the best chunks only, whatever k is, so one threshold fits all.
EVIDENCE_DEPTH = 5
# (chunks in scope, {word: chunks holding it}) for the question's words; see KeywordIndex.
# Fitted with settings.refuse_below (bench.fit_refusals on rag eval refusals --dump).
EVIDENCE_WEIGHTS = {"chunk": 1.0, "sentence": 0.5, "coverage": 0.5, "names": 0.1}
Frequencies = Callable[[Sequence[str]], "tuple[int, dict[str, int]]"]

_NAME = re.compile(r"\b[A-Z][\w'-]*|\b\d[\d,.]*\b")


def question_names(question: str) -> set[str]:
    """Capitalised words (not the first word) and numbers of a question, lower-cased."""
    from rag.generate.extractive import _STOP

    words = question.split()
    first = words[0] if words else ""
    return {n.lower().rstrip(".,") for n in _NAME.findall(question) if n != first and n.lower() not in _STOP}


def question_words(question: str) -> dict[str, str]:
    """The question's content words (stemmed as the extractive generator stems them) -> a word as written."""
    from rag.generate.extractive import _STOP, _stem

    out: dict[str, str] = {}
    for word in re.findall(r"[a-z0-9]+", question.lower()):
        if word not in _STOP:
            out.setdefault(_stem(word), word)
    return out


def frequencies_for(store: Any, sources: Sequence[str] | None = None) -> Frequencies | None:
    """Document frequencies from the store's keyword index (over ``sources`` only, when given), if it has one."""
    keywords = getattr(store, "keywords", None)
    counter = getattr(keywords, "document_frequencies", None)
    if counter is None:
        return None
    return lambda words: counter(words, sources)


def _idf(chunks: int, df: int) -> float:
    # BM25's IDF: positive however common the word; a word the scope lacks gets the most weight.
    return math.log((chunks - df + 0.5) / (df + 0.5) + 1.0)


def assess(question: str, hits: Sequence[Hit], passages: PassageVectors, question_vector: Any = None,
           frequencies: Frequencies | None = None) -> Evidence:
    """How strongly the best retrieved chunks bear on ``question`` (see the module docstring).

    Args:
        question: the retrieval query.
        hits: retrieved chunks, best first; only the first :data:`EVIDENCE_DEPTH` count.
        passages: the sentence-vector cache.
        question_vector: the query's MiniLM vector, when already computed.
        frequencies: document frequencies of words in the searched scope (the keyword
            index's); without them, IDF is taken over the candidate sentences.

    Returns:
        The evidence; ``score`` is ``-inf`` without hits.
    """
    from rag.generate.extractive import content_words

    hits = list(hits)[:EVIDENCE_DEPTH]
    if not hits:
        return Evidence(score=float("-inf"), chunk=0.0, sentence=0.0, coverage=0.0, names=0.0)
    w = EVIDENCE_WEIGHTS
    qv = question_vector if question_vector is not None else passages.embedder.embed([question])[0]
    per_hit = passages.many(hits)
    words = question_words(question)
    sentences = [content_words(t) & words.keys() for texts, _ in per_hit for t in texts]
    if frequencies is not None and words:
        chunks, df = frequencies(list(words.values()))
        idf = {x: _idf(chunks, df.get(raw, 0)) for x, raw in words.items()}
    else:
        n = len(sentences)
        idf = {x: math.log((n + 1) / (sum(x in s for s in sentences) + 1)) + 1 for x in words}
    total = sum(idf.values()) or 1.0
    coverage = max((sum(idf[x] for x in s) / total for s in sentences), default=0.0) if words else 1.0
    best_cos = max((float((v @ qv).max()) for _, v in per_hit if len(v)), default=0.0)
    names = question_names(question)
    text = " ".join(h.text for h in hits).lower()
    names_found = sum(x in text for x in names) / len(names) if names else 1.0
    top = max(h.score for h in hits)
    score = w["chunk"] * top + w["sentence"] * best_cos + w["coverage"] * coverage + w["names"] * names_found
    return Evidence(score=score, chunk=top, sentence=best_cos, coverage=coverage, names=names_found)


def should_refuse(evidence: Evidence, settings: Settings) -> bool:
    """Whether to refuse: the evidence score is below ``settings.refuse_below``."""
    return evidence.score < settings.refuse_below
