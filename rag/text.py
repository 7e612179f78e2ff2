"""Words and sentences: the one copy used by chunking, BM25, extracts, citations and evidence.

* :func:`sentence_spans` cuts text into sentences (chunk boundaries, the sentences an
  extract quotes, the sentences a citation is checked against);
* :data:`STOP_WORDS` and :func:`content_words` are the words that carry meaning, crudely
  stemmed (:func:`stem`), which the extractive generator and the evidence score compare;
* :data:`QUERY_STOP_WORDS` is the smaller set the BM25 query leaves out;
* :class:`IdfOverlap` is the IDF-weighted share of a question's content words that a
  candidate sentence holds, IDF taken over the candidates themselves.

Pure Python, no dependencies: importable from ``ingest`` and ``rag`` alike.
"""

from __future__ import annotations

import math
import re
from typing import Iterable

# Words that end with a period without ending a sentence.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e cf al fig figs no nos vol eq eqs approx ca inc ltd co corp "
    "jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k a.m p.m ph.d".split()
)
_SENTENCE_END = re.compile(r"[.!?…。！？]+[\"'”’)\]]*(?=\s+)|\n\s*\n")
_WORD_BEFORE = re.compile(r"([\w.]+)[.]$")
_WORD = re.compile(r"[a-z0-9]+")

STOP_WORDS = frozenset(
    "a an the of in on at to for by with from and or but is are was were be been being do does did what which who "
    "whom whose when where why how that this these those it its as into than then there their they he she his her "
    "him them i you we our your not no yes can could would should may might will shall has have had about after "
    "before during over under between also one".split()
)
"""Function words and question words: what a sentence shares with any question."""

QUERY_STOP_WORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was were what when "
    "where which who whom why how with did does do".split()
)
"""The subset of :data:`STOP_WORDS` so common that OR-ing them into a BM25 query only slows it down.

Smaller than :data:`STOP_WORDS` on purpose: BM25 weighs the rest by their own rarity, and
the retrieval figures were measured with exactly this set.
"""
assert QUERY_STOP_WORDS <= STOP_WORDS


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Split text into sentence spans (start, end), whitespace excluded.

    A period after a single letter ("J. Smith") or a known abbreviation ("Dr.", "e.g.")
    does not end a sentence; a blank line always does.

    Args:
        text: the text to split.

    Returns:
        Character spans that cover every non-space character of ``text`` in order.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        end = m.end()
        if m.group().startswith(".") and _is_abbreviation(text[start:end]):
            continue
        spans.append((start, end))
        start = end
    spans.append((start, len(text)))
    return [span for span in (trim_span(text, s, e) for s, e in spans) if span[1] > span[0]]


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` narrowed past the whitespace at both ends of ``text[start:end]``."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _is_abbreviation(sentence: str) -> bool:
    m = _WORD_BEFORE.search(sentence.rstrip("\"'”’)]"))
    if not m:
        return False
    word = m.group(1).lower()
    return len(word) == 1 and word.isalpha() or word.rstrip(".") in _ABBREVIATIONS


def words(text: str) -> list[str]:
    """The lower-cased ASCII letter/digit runs of ``text``, in order."""
    return _WORD.findall(text.lower())


def stem(word: str) -> str:
    """Strip one of -ing, -ed, -es, -s from a word long enough to keep a stem of four letters or more."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    """Lower-cased, crudely stemmed words of ``text`` that are not :data:`STOP_WORDS`."""
    return {stem(w) for w in words(text) if w not in STOP_WORDS}


class IdfOverlap:
    """The IDF-weighted share of a query's content words that a candidate holds.

    IDF is taken over the candidates themselves: a query word that every candidate
    contains tells them apart no better than a stop word.
    """

    def __init__(self, query: set[str], candidates: Iterable[set[str]]) -> None:
        """Count document frequencies.

        Args:
            query: the query's :func:`content_words`.
            candidates: each candidate's :func:`content_words` (e.g. every retrieved sentence).
        """
        df: dict[str, int] = {}
        n = 0
        for words_ in candidates:
            n += 1
            for word in words_ & query:
                df[word] = df.get(word, 0) + 1
        self.query = query
        self.idf = {word: math.log((n + 1) / (df.get(word, 0) + 1)) + 1 for word in query}
        self.total = sum(self.idf.values()) or 1.0

    def __call__(self, candidate: set[str]) -> float:
        """The share, in [0, 1], of the query's IDF mass that ``candidate`` holds."""
        return sum(self.idf[x] for x in self.query & candidate) / self.total
