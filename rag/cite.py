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
    sentences: list[tuple[str, list[int]]] = []
    for s, e in sentence_spans(text):
        span = text[s:e]
        lead = re.match(r"(?:\s*" + MARKER.pattern + r")+", span)
        if lead and sentences:
            sentences[-1][1].extend(_numbers(lead.group()))
            span = span[lead.end():]
        numbers = _numbers(span)
        plain = " ".join(MARKER.sub(" ", span).split())
        plain = re.sub(r"\s+([.,;:!?])", r"\1", plain)
        if plain:
            sentences.append((plain, numbers))
    return [(t, tuple(dict.fromkeys(n))) for t, n in sentences]


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
        sentence = " ".join(text[s:e].split())
        if len(sentence) >= min_chars:
            out.append(sentence)
    return out


def support_scores(sentence_vector: np.ndarray, hit: Hit, passages: PassageVectors) -> float:
    """Best cosine between a sentence vector and a passage of ``hit`` (a sentence or two adjacent ones)."""
    vectors = passages.pair_vectors(hit)
    if len(vectors) == 0:
        return 0.0
    return float(np.max(vectors @ sentence_vector))


def cite(
    text: str,
    hits: Sequence[Hit],
    *,
    embedder: Embedder | None = None,
    passages: PassageVectors | None = None,
    threshold: float = SUPPORT_BELOW,
) -> CitedText:
    """Renumber an answer's citations and check that each cited source supports its sentence.

    Args:
        text: the answer with ``[n]`` markers into ``hits``.
        hits: the sources shown to the generator, in prompt order.
        embedder: MiniLM, for the support check (skipped when None and ``passages`` is None).
        passages: a passage-vector cache to reuse (built from ``embedder`` when None).
        threshold: support below this marks a pair unsupported (``settings.support_below``).

    Returns:
        The renumbered text, one Citation per cited source (numbered 1..n in order of first
        use), and the answer's sentences with their support.
    """
    new_text, cited = renumber(text, hits)
    sentences = split_sentences(new_text)
    if passages is None and embedder is not None:
        passages = PassageVectors(embedder)
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
