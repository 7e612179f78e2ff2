"""Whether the retrieved chunks answer a question: the evidence score and the refusal decision.

:func:`assess` measures how strongly the best retrieved chunks bear on a question and
returns an :class:`~rag.types.Evidence`; :func:`should_refuse` compares its score with
``settings.refuse_below``. :class:`rag.answer.Answerer` refuses (answers exactly
:data:`rag.prompt.NO_ANSWER`) below it, before any generation.

The score, over the first :data:`EVIDENCE_DEPTH` hits::

    evidence = best chunk cosine + COVERAGE_WEIGHT * coverage

*coverage* is the share of the question's content words that the best single sentence
holds, each word weighted by its BM25 IDF **over the whole searched scope** (every chunk of
the store, or of the sources the question is restricted to), read from the keyword index
(:meth:`rag.protocols.KeywordIndex.document_frequencies`). A question about something the
documents never mention still finds chunks on its topic; what it misses are its rare words
("Huguenots", "Dioscorides"), which weigh most because the whole store seldom or never
holds them. Taking the IDF from the store rather than from the few candidate sentences
keeps a word's weight the same whichever chunks happened to be retrieved, and the score
needs no sentence embeddings. The weight and ``settings.refuse_below`` were fitted on
SQuAD half-a with and without distractor text (``rag eval refusals --distractors``,
``bench.fit_refusals``). A store without a keyword index falls back to IDF over the
candidate sentences.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Sequence

from rag.settings import Settings
from rag.text import IdfOverlap, content_words, stem, words
from rag.types import Evidence, Hit

if TYPE_CHECKING:
    from rag.protocols import Store

# Evidence is judged on the best chunks only, whatever k is, so one threshold fits all.
EVIDENCE_DEPTH = 5
# (chunks in scope, {word: chunks holding it}) for the question's words; see KeywordIndex.
# The weight of the word coverage against the chunk cosine (bench.fit_refusals, README Answers).
COVERAGE_WEIGHT = 0.5
Frequencies = Callable[[Sequence[str]], "tuple[int, dict[str, int]]"]

def question_words(question: str) -> dict[str, str]:
    """The question's :func:`rag.text.content_words` -> a word as written (what the keyword index is asked)."""
    stems = content_words(question)
    out: dict[str, str] = {}
    for word in words(question):
        if stem(word) in stems:
            out.setdefault(stem(word), word)
    return out


def frequencies_for(store: Store, sources: Sequence[str] | None = None,
                    collections: Sequence[str] | None = None) -> Frequencies | None:
    """Document frequencies from the store's keyword index, if it has one, over the asked scope only
    (``sources`` within ``collections``, when given: another collection's texts never weigh a word)."""
    counter = store.document_frequencies
    if counter is None:
        return None
    return lambda words: counter(words, sources, collections)


# Below this many chunks, document frequencies say little about how rare a word is: in a
# one-document library every word of it is in "every chunk", so BM25's IDF would give the
# question's matching words almost no weight against the ones the text lacks, and refuse
# almost everything. The scope counts as at least this large (the calibration stores are
# larger, so their evidence does not change).
MIN_IDF_SCOPE = 1000


def _idf(chunks: int, df: int) -> float:
    # BM25's IDF: positive however common the word; a word the scope lacks gets the most weight.
    chunks = max(chunks, MIN_IDF_SCOPE)
    return math.log((chunks - df + 0.5) / (df + 0.5) + 1.0)


def assess(question: str, hits: Sequence[Hit], frequencies: Frequencies | None = None) -> Evidence:
    """How strongly the best retrieved chunks bear on ``question`` (see the module docstring).

    Args:
        question: the retrieval query.
        hits: retrieved chunks, best first; only the first :data:`EVIDENCE_DEPTH` count.
        frequencies: document frequencies of words in the searched scope (the keyword
            index's); without them, IDF is taken over the candidate sentences.

    Returns:
        The evidence; ``score`` is ``-inf`` without hits.
    """
    from rag.cite import chunk_sentences

    hits = list(hits)[:EVIDENCE_DEPTH]
    if not hits:
        return Evidence(score=float("-inf"), chunk=0.0, coverage=0.0)
    qwords = question_words(question)
    sentences = [content_words(t) & qwords.keys() for h in hits for t in chunk_sentences(h.text)]
    if frequencies is not None and qwords:
        chunks, df = frequencies(list(qwords.values()))
        idf = {x: _idf(chunks, df.get(raw, 0)) for x, raw in qwords.items()}
    else:
        idf = IdfOverlap(set(qwords), sentences).idf
    total = sum(idf.values()) or 1.0
    coverage = max((sum(idf[x] for x in s) / total for s in sentences), default=0.0) if qwords else 1.0
    top = max(h.score for h in hits)
    return Evidence(score=top + COVERAGE_WEIGHT * coverage, chunk=top, coverage=coverage)


def should_refuse(evidence: Evidence, settings: Settings) -> bool:
    """Whether to refuse: the evidence score is below ``settings.refuse_below``."""
    return evidence.score < settings.refuse_below
