"""The features the extractive generator ranks candidate sentences by, from plain numbers.

One function, :func:`candidate_features`, turns the retrieved chunks' sentences (and their
MiniLM cosines to the question, computed by the caller) into one feature row per distinct
sentence. The product (:class:`rag.generate.extractive.ExtractiveGenerator`) and the offline
fit (``bench/fit_sentences.py`` over the dump of ``bench/sentence_features.py``) call exactly
this function, so fitted weights apply to the same numbers the product computes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rag.text import STOP_WORDS, IdfOverlap, content_words, words as _words

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

FEATURES = (
    "cosine",          # MiniLM cosine of the sentence to the question
    "pair_cosine",     # ... of the sentence joined with the one before it
    "prev_cosine",     # ... of the sentence before it (0 for a chunk's first)
    "next_cosine",     # ... of the sentence after it (0 for a chunk's last)
    "context",         # how much better the previous sentence matches (it names the subject)
    "centrality",      # cosine to the chunk's mean sentence (topic sentences answer little)
    "overlap",         # IDF share (over the candidates) of the question's words the sentence holds
    "prev_overlap",    # what the previous sentence adds to that share
    "next_overlap",    # what the next sentence adds
    "chunk_overlap",   # the share the whole chunk holds
    "chunk_score",     # retrieval's score of the chunk
    "chunk_gap",       # the best chunk's score minus this one's
    "chunk_rank",      # 1 / (1 + the chunk's rank)
    "first",           # the chunk's first sentence
    "position",        # place in the chunk, 0 (first) to 1 (last)
    "type_match",      # the sentence holds the date, number, name or place a when/how many/who/where asks for
    "date_match",      # ... for a when question
    "number_match",    # ... for a how many/how much question
    "person_match",    # ... for a who question
    "bigrams",         # share of the question's adjacent word pairs (not both stop words) the sentence holds
    "log_words",       # log of the sentence's word count
    "short",           # fewer than six words
    "novelty",         # share of the sentence's content words that are not the question's
    "copies",          # log of how many retrieved chunks hold the sentence
)


@dataclass(frozen=True)
class Candidate:
    """One distinct sentence: its text, the hit it is quoted from and its place there (0-based), cosine, features."""

    text: str
    hit: int
    index: int
    cosine: float
    features: tuple[float, ...]


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


def sentence_cosines(vectors: np.ndarray, question_vector: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A chunk's per-sentence cosines, as :func:`candidate_features` reads them.

    Args:
        vectors: the chunk's sentence vectors, in order (unit length).
        question_vector: the question's vector.

    Returns:
        ``(cos, pair_cos, centrality)``: each sentence's cosine to the question; the cosine of
        each sentence joined with its predecessor (the first sentence alone); each sentence's
        cosine to the chunk's mean sentence.
    """
    cos = vectors @ question_vector
    centre = vectors.mean(axis=0)
    centre /= np.linalg.norm(centre) + 1e-12
    pairs = vectors[:-1] + vectors[1:]
    pairs /= np.linalg.norm(pairs, axis=1, keepdims=True) + 1e-12
    return cos, np.concatenate([cos[:1], pairs @ question_vector]), vectors @ centre


def candidate_features(question: str, chunks: Sequence[tuple[Sequence[str], Sequence[float], Sequence[float],
                                                             Sequence[float]]],
                       scores: Sequence[float]) -> list[Candidate]:
    """One :class:`Candidate` per distinct sentence of the chunks, in chunk then sentence order.

    A sentence repeated in overlapping chunks is kept where it first appears (the better
    ranked chunk), with the number of copies as a feature.

    Args:
        question: the question.
        chunks: per retrieved chunk, best first: its sentences, their cosines to the question,
            the cosines of each sentence joined with its predecessor (the first's own cosine
            for the first), and each sentence's cosine to the chunk's mean sentence.
        scores: the chunks' retrieval scores, in the same order.

    Returns:
        The candidates; ``features`` follow :data:`FEATURES`.
    """
    q_content = content_words(question)
    q_list = _words(question)
    q_words = set(q_list)
    q_pairs = {(a, b) for a, b in zip(q_list, q_list[1:]) if a not in STOP_WORDS or b not in STOP_WORDS}
    kind = answer_type(question)
    per_words = [[content_words(t) for t in texts] for texts, _, _, _ in chunks]
    overlap = IdfOverlap(q_content, (ws for per in per_words for ws in per))
    top = max(scores, default=0.0)
    copies: dict[str, int] = {}
    for texts, *_ in chunks:
        for t in texts:
            key = " ".join(t.lower().split())
            copies[key] = copies.get(key, 0) + 1
    seen: set[str] = set()
    out: list[Candidate] = []
    for index, ((texts, cos, pair, centrality), score) in enumerate(zip(chunks, scores)):
        n = len(texts)
        if not n:
            continue
        chunk_words = set().union(*per_words[index])
        chunk_overlap = overlap(chunk_words)
        for j, text in enumerate(texts):
            key = " ".join(text.lower().split())
            if key in seen:
                continue
            seen.add(key)
            ws = per_words[index][j]
            own = overlap(ws)
            prev = overlap(ws | per_words[index][j - 1]) - own if j > 0 else 0.0
            nxt = overlap(ws | per_words[index][j + 1]) - own if j + 1 < n else 0.0
            prev_cos = float(cos[j - 1]) if j > 0 else 0.0
            s_list = _words(text)
            count = len(s_list)
            matched = float(matches_type(kind, text, q_words))
            pairs = len(q_pairs & set(zip(s_list, s_list[1:]))) / len(q_pairs) if q_pairs else 0.0
            row = (
                float(cos[j]), float(pair[j]), prev_cos, float(cos[j + 1]) if j + 1 < n else 0.0,
                max(prev_cos - float(cos[j]), 0.0), float(centrality[j]),
                own, prev, nxt, chunk_overlap,
                float(score), top - float(score), 1.0 / (1 + index),
                float(j == 0), j / (n - 1) if n > 1 else 0.0,
                matched, matched * (kind == "date"), matched * (kind == "number"), matched * (kind == "person"),
                pairs,
                math.log(1 + count), float(count < 6),
                len(ws - q_content) / max(len(ws), 1),
                math.log(copies[key]),
            )
            out.append(Candidate(text, index, j, float(cos[j]), row))
    return out
