"""Citations in an answer: parse ``[n]`` markers, renumber them, and check that each cited source supports its sentence.

An answer cites its sources as ``[1]``, ``[1, 2]`` or ``[1][2]``, where ``n`` is the
1-based position of a retrieved chunk in the prompt. :func:`cite`:

* drops every number that points to no source (``[7]`` with five sources), and a marker
  left with no number at all (with the space before it);
* renumbers the rest in order of first use, so the answer's first citation is ``[1]``;
* returns one :class:`~rag.types.Citation` per cited source, numbered as in the new text;
* checks support: each sentence is compared with every source it cites. The support score
  is the best MiniLM cosine between the sentence (markers removed) and a passage of the
  cited chunk (one of its sentences, or two adjacent ones). A pair below
  ``settings.support_below`` is unsupported. A citation's ``support`` is its weakest pair
  (the least supported sentence that cites it) and ``supported`` says whether that pair
  clears the threshold.

Calibration (``rag eval support`` on SQuAD half-a, 1,374 questions): an answer-like sentence
(the question followed by its gold answer) scores below 0.50 against the chunk that holds
the answer for 3.4% of questions (a right citation flagged), and below 0.50 against the
nearest chunk of another article for 93% (a wrong citation caught); so ``support_below`` is
0.50 (earlier sample: 1.8% / 87% at 0.45, 7.3% / 98% at 0.55). A chunk of the right article
that lacks the answer is flagged 36% of the time: the check catches citations of the wrong
source, not every unsupported detail.

A marker right after a sentence's final punctuation (``It rained. [2] Then ...``) belongs
to that sentence, as in ``It rained [2].``.

Only the generator cites. Document text can hold bracketed numbers of its own (an interval
``[0, 1]``, footnotes ``[2][3]``); :func:`neutralize_brackets` puts a WORD JOINER (U+2060,
invisible, and dropped by MiniLM's tokenizer) after their ``[`` before such text reaches a
prompt or an extract, so they read the same but are never parsed as markers.

A model often writes no markers, or only ones that point nowhere: with ``attach=True``, a
sentence left without a marker is given the source that supports it best by the same check,
when one clears the threshold; otherwise it stays uncited (:attr:`CitedText.uncited`).
Support is never invented: an attached source passed the check, and a model's own marker
to a source that does not support its sentence stays, flagged unsupported.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rag.protocols import Embedder
from rag.settings import SUPPORT_BELOW
from rag.text import sentence_spans
from rag.types import Citation, Hit

# "[3]", "[1, 2]", "[1,2; 4]". Years in brackets ("[1999]") are markers too and get dropped
# when they point to no source, which is what a reader wants from an answer text.
MARKER = re.compile(r"\[\s*(\d{1,4}(?:\s*[,;]\s*\d{1,4})*)\s*\]")
_SPACE_BEFORE = re.compile(r"[ \t]+$")
# Invisible; keeps "[" from being read as the start of a marker (see neutralize_brackets).
WORD_JOINER = "\u2060"
_END_PUNCT = re.compile(r"[.!?…。！？:;]+[\"'”’)]*$")


def neutralize_brackets(text: str) -> str:
    """Make bracketed numbers in document text unreadable as citation markers, visibly unchanged.

    Args:
        text: source text (a chunk, a title, an extracted sentence).

    Returns:
        The text with a WORD JOINER after the ``[`` of every ``[n]``-like group
        (``[0, 1]``, ``[2][3]``); idempotent.
    """
    return MARKER.sub(lambda m: "[" + WORD_JOINER + m.group()[1:], text)


@dataclass(frozen=True)
class CitedSentence:
    """One sentence of an answer with the (renumbered) sources it cites and how well they support it.

    ``support`` and ``supported`` are per cited number, in the order of ``numbers``;
    empty when the sentence cites nothing or no embedder was given.
    """

    text: str
    numbers: tuple[int, ...]
    support: tuple[float, ...] = ()
    supported: tuple[bool, ...] = ()


@dataclass(frozen=True)
class CitedText:
    """An answer text with markers renumbered, its citations, and its sentences."""

    text: str
    citations: list[Citation]
    sentences: list[CitedSentence]

    @property
    def unsupported(self) -> list[CitedSentence]:
        """Sentences that cite a source which does not support them."""
        return [s for s in self.sentences if not all(s.supported)]

    @property
    def uncited(self) -> list[CitedSentence]:
        """Sentences that cite nothing (with ``attach``: no source supports them)."""
        return [s for s in self.sentences if not s.numbers]


def renumber(text: str, hits: Sequence[Hit]) -> tuple[str, list[Hit]]:
    """Drop markers that point to no source and renumber the rest in order of first use.

    Args:
        text: the answer with ``[n]`` markers; ``n`` is 1-based into ``hits``.
        hits: the sources the answer could cite, in prompt order.

    Returns:
        The rewritten text and the cited hits, where ``[i]`` in the new text is ``cited[i - 1]``.
    """
    new_of: dict[int, int] = {}
    cited: list[Hit] = []
    out: list[str] = []
    pos = 0
    for m in MARKER.finditer(text):
        numbers = [int(p) for p in re.split(r"\s*[,;]\s*", m.group(1).strip())]
        valid = list(dict.fromkeys(n for n in numbers if 1 <= n <= len(hits)))
        before = text[pos:m.start()]
        if not valid:
            # "and [12][4]": the space before belongs to the next marker when one follows.
            out.append(before if text.startswith("[", m.end()) else _SPACE_BEFORE.sub("", before))
            pos = m.end()
            continue
        for n in valid:
            if n not in new_of:
                new_of[n] = len(cited) + 1
                cited.append(hits[n - 1])
        sep = ", " if "," in m.group(1) or ";" in m.group(1) else "]["
        out.append(before + "[" + sep.join(str(new_of[n]) for n in valid) + "]")
        pos = m.end()
    out.append(text[pos:])
    return "".join(out), cited


def split_sentences(text: str) -> list[tuple[str, tuple[int, ...]]]:
    """An answer's sentences, each without markers, with the numbers it cites (in order, no repeats).

    A marker that opens a sentence span (``Done. [2] Next``) is given to the sentence before it.
    """
    return [(plain, numbers) for _, plain, numbers in _sentences(text)]


def _sentences(text: str) -> list[tuple[int, str, tuple[int, ...]]]:
    """(end offset in ``text``, plain sentence, cited numbers) of each sentence; see :func:`split_sentences`."""
    sentences: list[tuple[int, str, list[int]]] = []
    for s, e in sentence_spans(text):
        span = text[s:e]
        lead = re.match(r"(?:\s*" + MARKER.pattern + r")+", span)
        if lead and sentences:
            sentences[-1][2].extend(_numbers(lead.group()))
            span = span[lead.end():]
        numbers = _numbers(span)
        plain = " ".join(MARKER.sub(" ", span).split())
        plain = re.sub(r"\s+([.,;:!?])", r"\1", plain)
        if plain:
            sentences.append((e, plain, numbers))
    return [(e, t, tuple(dict.fromkeys(n))) for e, t, n in sentences]


def _numbers(text: str) -> list[int]:
    return [int(p) for m in MARKER.finditer(text) for p in re.split(r"\s*[,;]\s*", m.group(1).strip())]


class PassageVectors:
    """MiniLM vectors of each chunk's passages (sentences and adjacent pairs), cached by chunk id.

    Chunk ids derive from content, so a cached entry never goes stale. Shared by the
    support check and the extractive generator, which score the same sentences.
    """

    def __init__(self, embedder: Embedder, *, capacity: int = 4096) -> None:
        self.embedder = embedder
        self.capacity = capacity
        self._cache: OrderedDict[str, tuple[list[str], np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def sentences(self, hit: Hit) -> tuple[list[str], np.ndarray]:
        """The chunk's sentences and their unit vectors (n, dim)."""
        key = hit.chunk.id
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        texts = chunk_sentences(hit.text)
        vectors = self.embedder.embed(texts) if texts else np.zeros((0, self.embedder.dimension), np.float32)
        with self._lock:
            self._cache[key] = (texts, vectors)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return texts, vectors

    def many(self, hits: Sequence[Hit]) -> list[tuple[list[str], np.ndarray]]:
        """:meth:`sentences` for several hits, embedding the uncached ones in one batch."""
        with self._lock:
            missing = [h for h in dict((h.chunk.id, h) for h in hits).values() if h.chunk.id not in self._cache]
        if missing:
            texts = [chunk_sentences(h.text) for h in missing]
            flat = [t for ts in texts for t in ts]
            vectors = self.embedder.embed(flat) if flat else np.zeros((0, self.embedder.dimension), np.float32)
            i = 0
            with self._lock:
                for h, ts in zip(missing, texts):
                    self._cache[h.chunk.id] = (ts, vectors[i:i + len(ts)])
                    i += len(ts)
                while len(self._cache) > self.capacity:
                    self._cache.popitem(last=False)
        return [self.sentences(h) for h in hits]

    def pair_vectors(self, hit: Hit) -> np.ndarray:
        """Unit vectors of the chunk's sentences and of each adjacent pair (mean, renormalised)."""
        _, v = self.sentences(hit)
        if len(v) < 2:
            return v
        pairs = v[:-1] + v[1:]
        pairs /= np.linalg.norm(pairs, axis=1, keepdims=True) + 1e-12
        return np.vstack([v, pairs])


def chunk_sentences(text: str, *, min_chars: int = 3) -> list[str]:
    """A chunk's sentences, whitespace-normalised, without fragments shorter than ``min_chars``."""
    out = []
    for s, e in sentence_spans(text):
        for sentence in table_rows(text[s:e]) or [" ".join(text[s:e].split())]:
            if len(sentence) >= min_chars:
                out.append(sentence)
    return out


def table_rows(span: str) -> list[str]:
    """A table's rows, each with its header line (``"Country Capital ...: Denmark ... Copenhagen"``).

    A span is a table when it has at least three lines, none ends a sentence, and at least
    two hold two or more numbers (its rows); the header is the last line before the first line with a number, and
    lines before it (a caption) come first on their own. Empty for anything else, which is
    quoted as one sentence.
    """
    lines = [" ".join(line.split()) for line in span.splitlines() if line.strip()]
    numbered = [i for i, line in enumerate(lines) if len(re.findall(r"(?<!\S)\d[\d,.]*(?!\S)", line)) >= 2]
    if len(lines) < 3 or len(numbered) < 2 or any(re.search(r"[.!?]$", line) for line in lines):
        return []
    first = numbered[0]
    if first == 0:
        return []
    header = lines[first - 1]
    return [*lines[: first - 1], *(f"{header}: {row}" for row in lines[first:])]


def support_scores(sentence_vector: np.ndarray, hit: Hit, passages: PassageVectors) -> float:
    """Best cosine between a sentence vector and a passage of ``hit`` (a sentence or two adjacent ones)."""
    vectors = passages.pair_vectors(hit)
    if len(vectors) == 0:
        return 0.0
    return float(np.max(vectors @ sentence_vector))


def attach_sources(text: str, cited: Sequence[Hit], hits: Sequence[Hit], passages: PassageVectors, *,
                   threshold: float = SUPPORT_BELOW) -> tuple[str, list[Hit]]:
    """Give each sentence that cites nothing the source of ``hits`` that supports it best, if one passes.

    Args:
        text: an answer whose markers are already renumbered into ``cited``.
        cited: the sources ``text`` cites, ``[i]`` being ``cited[i - 1]``.
        hits: every source the generator saw.
        passages: the passage-vector cache (its embedder embeds the sentences).
        threshold: the support a source must reach to be attached.

    Returns:
        The text with a marker added before the final punctuation of each such sentence, and
        its cited sources, renumbered in order of first use.
    """
    bare = [(end, plain) for end, plain, numbers in _sentences(text) if not numbers]
    if not bare or not hits:
        return text, list(cited)
    vectors = passages.embedder.embed([plain for _, plain in bare])
    passages.many(hits)
    pool = list(cited)
    inserts: list[tuple[int, int]] = []
    for (end, _), vector in zip(bare, vectors):
        scores = [support_scores(vector, h, passages) for h in hits]
        best = int(np.argmax(scores))
        if scores[best] < threshold:
            continue
        ids = [h.chunk.id for h in pool]
        if hits[best].chunk.id in ids:
            number = ids.index(hits[best].chunk.id) + 1
        else:
            pool.append(hits[best])
            number = len(pool)
        inserts.append((end, number))
    if not inserts:
        return text, list(cited)
    out = text
    for end, number in sorted(inserts, reverse=True):
        head = out[:end]
        punct = _END_PUNCT.search(head)
        at = punct.start() if punct else end
        out = f"{out[:at].rstrip()} [{number}]{out[at:]}"
    return renumber(out, pool)


def cite(
    text: str,
    hits: Sequence[Hit],
    *,
    embedder: Embedder | None = None,
    passages: PassageVectors | None = None,
    threshold: float = SUPPORT_BELOW,
    attach: bool = False,
) -> CitedText:
    """Renumber an answer's citations and check that each cited source supports its sentence.

    Args:
        text: the answer with ``[n]`` markers into ``hits``.
        hits: the sources shown to the generator, in prompt order.
        embedder: MiniLM, for the support check (skipped when None and ``passages`` is None).
        passages: a passage-vector cache to reuse (built from ``embedder`` when None).
        threshold: support below this marks a pair unsupported (``settings.support_below``).
        attach: give a sentence without a (valid) marker the best-supporting source of
            ``hits``, when one passes (see :func:`attach_sources`); needs an embedder.

    Returns:
        The renumbered text, one Citation per cited source (numbered 1..n in order of first
        use), and the answer's sentences with their support.
    """
    new_text, cited = renumber(text, hits)
    if passages is None and embedder is not None:
        passages = PassageVectors(embedder)
    if attach and passages is not None:
        new_text, cited = attach_sources(new_text, cited, hits, passages, threshold=threshold)
    sentences = split_sentences(new_text)
    checked: list[CitedSentence] = []
    worst: dict[int, float] = {}
    if passages is not None:
        citing = [(t, ns) for t, ns in sentences if ns]
        vectors = passages.embedder.embed([t for t, _ in citing]) if citing else None
        passages.many(cited)
        scores = {}
        for i, (t, ns) in enumerate(citing):
            scores[t, ns] = tuple(round(support_scores(vectors[i], cited[n - 1], passages), 6) for n in ns)
        for t, ns in sentences:
            sup = scores.get((t, ns), ())
            checked.append(CitedSentence(t, ns, sup, tuple(s >= threshold for s in sup)))
            for n, s in zip(ns, sup):
                worst[n] = min(worst.get(n, s), s)
    else:
        checked = [CitedSentence(t, ns) for t, ns in sentences]
    citations = [
        Citation(number=i, hit=hit, supported=(worst[i] >= threshold) if i in worst else None,
                 support=worst.get(i))
        for i, hit in enumerate(cited, 1)
    ]
    return CitedText(new_text, citations, checked)


def source_link(hit: Hit) -> str | None:
    """Where a citation points: ``URL#Section`` for a Wikipedia section, the URL, or None.

    Wikipedia anchors are the section heading with spaces as underscores.
    """
    if not hit.url:
        return None
    if hit.section and "#" not in hit.url:
        return f"{hit.url}#{hit.section.strip().replace(' ', '_')}"
    return hit.url


def source_label(hit: Hit) -> str:
    """How a citation reads: ``Title § Section``, ``file.pdf, page 3``, or the title."""
    if hit.page is not None:
        name = hit.title if hit.title and hit.title != hit.source else hit.source
        return f"{name} ({hit.source}), page {hit.page}" if name != hit.source else f"{hit.source}, page {hit.page}"
    if hit.section:
        return f"{hit.title} § {hit.section}"
    return hit.title
