"""Whether the retrieved chunks answer a question: the evidence score and the refusal decision.

:func:`assess` measures how strongly the best retrieved chunks bear on a question and
returns an :class:`~rag.types.Evidence`; :func:`should_refuse` compares its score with
``settings.refuse_below``. :class:`rag.answer.Answerer` refuses (answers exactly
:data:`rag.prompt.NO_ANSWER`) below it, before any generation.

The score, over the first :data:`EVIDENCE_DEPTH` hits::

    evidence = SENTENCE_WEIGHT * best sentence cosine + CHUNK_WEIGHT * best chunk cosine
               + COVERAGE_WEIGHT * coverage + CHUNK_COVERAGE_WEIGHT * chunk coverage
               + PHRASE_WEIGHT * phrases + ANSWERABLE_WEIGHT * answerable

*best sentence cosine* is the highest MiniLM cosine between the question and any single
sentence of those chunks (:func:`sentence_cosines`; the vectors are the extractive
generator's cache, so an extract embeds nothing twice). A question whose own document is
missing still finds chunks on its topic (a Scottish Parliament question lands on the United
Kingdom article), and whole chunks on the topic score nearly as high as the right one; what
such chunks lack is one sentence that says what was asked.

*coverage* is the share of the question's content words that the best single sentence
holds, each word weighted by its BM25 IDF **over the whole searched scope** (every chunk of
the store, or of the sources the question is restricted to), read from the keyword index
(:meth:`rag.protocols.KeywordIndex.document_frequencies`): what an off-topic match misses are
the question's rare words ("Huguenots", "Dioscorides"), which weigh most because the whole
store seldom or never holds them. Taking the IDF from the store rather than from the few
candidate sentences keeps a word's weight the same whichever chunks happened to be
retrieved, so the threshold does not drift as the store grows. A store without a keyword
index falls back to IDF over the candidate sentences.

*chunk coverage* is the same share for the best single chunk (its text, title and section, as
the keyword index sees them): the question's words found together in one chunk, not spread
over several.

*phrases* is the largest share of the question's adjacent word pairs ("Tower Theatre",
"clinical pharmacists", "in 1756") that one sentence holds as adjacent pairs: text on the
question's topic often holds its words, less often its phrases. It is the extract's own
sentence-ranker feature ``bigrams`` (:mod:`rag.generate.sentence_features`), read in one place,
:func:`phrase_share`.

*answerable* is the best logit of a cross-encoder, the answerability reader
(:func:`answerability`), over the :data:`ANSWER_CANDIDATES` sentences closest to the question
(:func:`closest_sentences`): MiniLM reading question and sentence together, trained pointwise
(``bench.train_answerability``) to say whether the sentence states what was asked, with every
sentence of a store lacking the question's article as a negative. The other measurements are
word counts and cosines, which text on the question's topic scores nearly as well as the
answer ("Where is the airport located?" against a city's airport sentence); the reader is
what tells them apart.

The weights and ``settings.refuse_below`` were chosen by measurement on SQuAD half-a alone and
with distractor text (Wikipedia wikitext, SciFact abstracts): ``python -m
bench.refusal_features`` dumps the features, ``python -m bench.fit_refusals`` compares rules
and fits one threshold for every store configuration; ``rag eval refusals --distractors``
checks the product end to end, and ``python -m bench.refusal_table`` re-scores its ``--dump``
files with :func:`score_of` (joint, held out by article and by store).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from rag.settings import Settings
from rag.text import IdfOverlap, content_words, stem, words
from rag.types import Evidence, Hit

if TYPE_CHECKING:
    from rag.cite import PassageVectors
    from rag.protocols import CrossEncoder, Store

# Evidence is judged on the best chunks only, whatever k is, so one threshold fits all.
EVIDENCE_DEPTH = 5
# The weights of the best sentence's cosine, the best chunk's cosine, the word coverages and the
# phrases (fitted with bench.fit_refusals on SQuAD half-a with and without distractors; docs/answers.md).
SENTENCE_WEIGHT = 1.0
CHUNK_WEIGHT = 0.5
COVERAGE_WEIGHT = 0.5
CHUNK_COVERAGE_WEIGHT = 0.25
PHRASE_WEIGHT = 0.1
ANSWERABLE_WEIGHT = 0.035
# The answerability reader reads the question against this many of its closest sentences.
ANSWER_CANDIDATES = 8
# (chunks in scope, {word: chunks holding it}) for the question's words; see KeywordIndex.
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


def word_weights(qwords: dict[str, str], frequencies: Frequencies | None,
                 sentences: Sequence[set[str]] = ()) -> dict[str, float]:
    """Each question word's weight: its BM25 IDF over the searched scope.

    Args:
        qwords: :func:`question_words` of the question.
        frequencies: document frequencies of the searched scope; without them, IDF is taken
            over ``sentences`` (each a candidate sentence's content words).
        sentences: the candidate sentences' content words (used only without ``frequencies``).

    Returns:
        ``{stem: weight}`` for every question word.
    """
    if frequencies is not None and qwords:
        chunks, df = frequencies(list(qwords.values()))
        return {x: _idf(chunks, df.get(raw, 0)) for x, raw in qwords.items()}
    return IdfOverlap(set(qwords), sentences).idf


def sentence_cosines(passages: PassageVectors, hits: Sequence[Hit], question_vector: np.ndarray) -> list[np.ndarray]:
    """Each of the first :data:`EVIDENCE_DEPTH` hits' sentence cosines to the question (what :func:`assess` reads).

    Args:
        passages: the sentence-vector cache (the extractive generator's own, so nothing is embedded twice).
        hits: retrieved chunks, best first.
        question_vector: the question's unit MiniLM vector.

    Returns:
        One array per hit, in :func:`rag.cite.chunk_sentences` order.
    """
    return [vectors @ question_vector for _, vectors in passages.many(list(hits)[:EVIDENCE_DEPTH])]


def phrase_share(question: str, hits: Sequence[Hit], passages: PassageVectors, question_vector: np.ndarray) -> float:
    """The largest share of the question's word pairs one sentence of the first :data:`EVIDENCE_DEPTH` hits holds.

    The one place the refusal reads the extract's sentence ranker: its ``bigrams`` feature, as
    :func:`rag.generate.sentence_features.candidate_features` computes it for these hits.

    Args:
        question: the question.
        hits: retrieved chunks, best first.
        passages: the sentence-vector cache (the extract's own: nothing is embedded twice).
        question_vector: the question's unit MiniLM vector.

    Returns:
        0..1; 0 without sentences.
    """
    from rag.generate.sentence_features import FEATURES, candidate_features
    from rag.generate.sentence_features import sentence_cosines as chunk_cosines

    hits = list(hits)[:EVIDENCE_DEPTH]
    chunks = [(texts, *chunk_cosines(vectors, question_vector)) if texts else ((), (), (), ())
              for texts, vectors in passages.many(hits)]
    column = FEATURES.index("bigrams")
    return max((c.features[column] for c in candidate_features(question, chunks, [h.score for h in hits])),
               default=0.0)


def closest_sentences(sentences: Sequence[Sequence[str]], titles: Sequence[str],
                      cosines: Sequence[Sequence[float]], most: int = ANSWER_CANDIDATES) -> list[tuple[str, str]]:
    """The ``most`` distinct sentences closest to the question, as ``(title, sentence)``, closest first.

    The one choice of what the answerability reader reads, for the product and for
    ``bench.train_answerability`` alike.

    Args:
        sentences: each hit's :func:`rag.cite.chunk_sentences`.
        titles: each hit's title.
        cosines: each hit's sentence cosines to the question (:func:`sentence_cosines`).
        most: how many to keep.

    Returns:
        Up to ``most`` pairs; a hit whose cosines do not match its sentences is skipped.
    """
    scored = [(float(c), title, text) for texts, title, cos in zip(sentences, titles, cosines)
              if len(texts) == len(cos) for text, c in zip(texts, cos)]
    scored.sort(key=lambda x: -x[0])
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for _, title, text in scored:
        if text not in seen and len(out) < most:
            seen.add(text)
            out.append((title, text))
    return out


def answerability(question: str, hits: Sequence[Hit], passages: PassageVectors,
                  cosines: Sequence[Sequence[float]], reader: CrossEncoder) -> float:
    """The answerability reader's best logit over the question's closest sentences (see the module docstring).

    Args:
        question: the question.
        hits: retrieved chunks, best first; only the first :data:`EVIDENCE_DEPTH` count.
        passages: the sentence cache (the texts :func:`sentence_cosines` scored).
        cosines: :func:`sentence_cosines` of these hits.
        reader: the cross-encoder (``rag.generate.rerank.SentenceReranker`` with the
            answerability adapters).

    Returns:
        The highest logit ("this sentence says what was asked"); 0 without sentences.
    """
    hits = list(hits)[:EVIDENCE_DEPTH]
    texts = [t for t, _ in passages.many(hits)]
    pairs = closest_sentences(texts, [h.chunk.title for h in hits], cosines)
    return float(np.max(reader.score(question, pairs))) if pairs else 0.0


def score_of(evidence: Evidence) -> float:
    """The evidence score: the weighted sum of its measurements (see the module docstring)."""
    return (SENTENCE_WEIGHT * evidence.sentence + CHUNK_WEIGHT * evidence.chunk + COVERAGE_WEIGHT * evidence.coverage
            + CHUNK_COVERAGE_WEIGHT * evidence.chunk_coverage + PHRASE_WEIGHT * evidence.phrases
            + ANSWERABLE_WEIGHT * evidence.answerable)


def assess(question: str, hits: Sequence[Hit], frequencies: Frequencies | None,
           cosines: Sequence[Sequence[float]], phrases: float = 0.0, answerable: float = 0.0) -> Evidence:
    """How strongly the best retrieved chunks bear on ``question`` (see the module docstring).

    Args:
        question: the retrieval query.
        hits: retrieved chunks, best first; only the first :data:`EVIDENCE_DEPTH` count.
        frequencies: document frequencies of words in the searched scope (the keyword
            index's); without them, IDF is taken over the candidate sentences.
        cosines: :func:`sentence_cosines` of these hits for ``question``.
        phrases: :func:`phrase_share` of these hits for ``question``.
        answerable: :func:`answerability` of these hits for ``question``.

    Returns:
        The evidence; ``score`` is ``-inf`` without hits.
    """
    from rag.cite import chunk_sentences
    from rag.keyword import keyword_text

    hits = list(hits)[:EVIDENCE_DEPTH]
    if not hits:
        return Evidence(score=float("-inf"), chunk=0.0, coverage=0.0, sentence=0.0, chunk_coverage=0.0)
    qwords = question_words(question)
    sentences = [content_words(t) & qwords.keys() for h in hits for t in chunk_sentences(h.text)]
    idf = word_weights(qwords, frequencies, sentences)
    total = sum(idf.values()) or 1.0

    def share(held: set[str]) -> float:
        return sum(idf[x] for x in held & qwords.keys()) / total if qwords else 1.0

    coverage = max((share(s) for s in sentences), default=0.0)
    chunk_coverage = max(share(content_words(keyword_text(h.chunk))) for h in hits)
    top = max(h.score for h in hits)
    sentence = max((float(c) for per_hit in cosines[:EVIDENCE_DEPTH] for c in per_hit), default=top)
    evidence = Evidence(score=0.0, chunk=top, coverage=coverage, sentence=sentence, chunk_coverage=chunk_coverage,
                        phrases=phrases, answerable=answerable)
    return replace(evidence, score=score_of(evidence))


def should_refuse(evidence: Evidence, settings: Settings) -> bool:
    """Whether to refuse: the evidence score is below ``settings.refuse_below``."""
    return evidence.score < settings.refuse_below
