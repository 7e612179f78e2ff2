"""The one place that turns a question into a cited answer: retrieve -> (refuse) -> prompt -> generate -> cite.

``Answerer(retriever, generator, settings, embedder)`` is what ``RAG.ask`` and
``RAG.ask_stream`` use:

1. **Retrieve.** Without history, the question alone. With history: a language model
   condenses the conversation into a standalone question; the extractive generator fuses
   the rankings of the question alone and of the question after the previous user turns
   (:mod:`rag.conversation`). ``Answer.query`` is the retrieval query actually used.
2. **Refuse** when the retrieved chunks' :func:`evidence` is below ``settings.refuse_below``
   (calibrated on SQuAD half-a, ``rag eval refusals``): the answer is exactly
   :data:`rag.prompt.NO_ANSWER` with ``refused=True``. A model that replies with NO_ANSWER
   itself is a refusal too.
3. **Generate.** Extractive: the best sentences, cited. A language model: the sources packed
   with :func:`rag.prompt.pack_prompt` in the generator's own prompt format, token counter
   and context window, streamed.
4. **Cite.** :func:`rag.cite.cite` drops markers that point to no source, renumbers the rest
   in order of first use and checks support. ``Answer.sources`` lists the cited sources
   first, in citation order (``sources[n - 1]`` is citation ``[n]``), then the other sources
   the generator saw.

Streaming yields the raw text pieces as the generator writes them, then the complete
:class:`~rag.types.Answer`, whose ``text`` (renumbered citations) replaces what was shown.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Any, Iterator, Sequence

from rag.cite import PassageVectors, cite
from rag.conversation import Retrieved, condense, fused_search, normalize_history
from rag.prompt import NO_ANSWER, pack_prompt
from rag.protocols import Embedder, Generator
from rag.retrieve import EmptyQueryError, Retriever
from rag.settings import Settings
from rag.types import Answer, Hit

log = logging.getLogger(__name__)

History = Sequence[tuple[str, str]]

# The extractive generator picks sentences from this many chunks (SQuAD half-a, measured with
# dense retrieval: the extract holds a gold answer for 0.78 of questions from 5 chunks, 0.83
# from 10; with the hybrid default and 10 chunks, 0.885).
EXTRACT_DEPTH = 10
# Evidence is judged on the best chunks only, whatever k is, so one threshold fits all.
EVIDENCE_DEPTH = 5
# Fitted on SQuAD half-a together with settings.refuse_below (rag.eval.answers.evaluate_refusals).
EVIDENCE_WEIGHTS = {"chunk": 1.0, "sentence": 0.5, "overlap": 0.5, "names": 0.1}
_NAME = re.compile(r"\b[A-Z][\w'-]*|\b\d[\d,.]*\b")


def question_names(question: str) -> set[str]:
    """Capitalised words (not the first word) and numbers of a question, lower-cased."""
    from rag.generate.extractive import _STOP

    words = question.split()
    first = words[0] if words else ""
    return {n.lower().rstrip(".,") for n in _NAME.findall(question) if n != first and n.lower() not in _STOP}


def evidence(question: str, hits: Sequence[Hit], passages: PassageVectors,
             question_vector: Any = None) -> float:
    """How strongly the best retrieved chunks bear on ``question``; below ``refuse_below`` we refuse.

    ``1.0 * best chunk cosine + 0.5 * best sentence cosine + 0.5 * best sentence word overlap
    + 0.1 * share of the question's names found``, over the first :data:`EVIDENCE_DEPTH` hits.
    The word overlap is the IDF-weighted share of the question's content words a sentence
    holds (IDF over the candidate sentences, as the extractive generator scores them); names
    are the question's capitalised words and numbers. A question about something the
    documents never mention matches a chunk on topic alone; its names and rare words are
    missing, which the cosine alone misses.

    Args:
        question: the retrieval query.
        hits: retrieved chunks, best first.
        passages: the sentence-vector cache.
        question_vector: the query's MiniLM vector, when already computed.

    Returns:
        The evidence score (about 0.3 for unrelated text to 3.1 for a verbatim match).
    """
    import math

    from rag.generate.extractive import content_words

    hits = list(hits)[:EVIDENCE_DEPTH]
    if not hits:
        return float("-inf")
    w = EVIDENCE_WEIGHTS
    qv = question_vector if question_vector is not None else passages.embedder.embed([question])[0]
    per_hit = passages.many(hits)
    q_content = content_words(question)
    words = [[content_words(t) for t in texts] for texts, _ in per_hit]
    n = sum(len(ws) for ws in words)
    df: dict[str, int] = {}
    for ws in words:
        for sw in ws:
            for x in sw & q_content:
                df[x] = df.get(x, 0) + 1
    idf = {x: math.log((n + 1) / (df.get(x, 0) + 1)) + 1 for x in q_content}
    total = sum(idf.values()) or 1.0
    best_cos = max((float((v @ qv).max()) for _, v in per_hit if len(v)), default=0.0)
    best_overlap = max((sum(idf[x] for x in q_content & sw) / total for ws in words for sw in ws), default=0.0)
    names = question_names(question)
    text = " ".join(h.text for h in hits).lower()
    names_found = sum(x in text for x in names) / len(names) if names else 1.0
    top = max(h.score for h in hits)
    return (w["chunk"] * top + w["sentence"] * best_cos + w["overlap"] * best_overlap
            + w["names"] * names_found)


def is_extractive(generator: Any) -> bool:
    """Whether ``generator`` answers from hits directly (no prompt, no language model)."""
    return callable(getattr(generator, "select", None)) and getattr(generator, "prompt_format", "") is None


def is_refusal(text: str) -> bool:
    """Whether a model's reply is (essentially) :data:`NO_ANSWER`."""
    norm = " ".join(re.sub(r"[\"'“”‘’`*]", "", text).split()).casefold().rstrip(".")
    target = NO_ANSWER.casefold().rstrip(".")
    target_plain = target.replace("'", "")
    return norm.startswith((target, target_plain)) and len(norm) <= len(target) + 40


class Answerer:
    """Composes retrieval, refusal, generation and citation into an :class:`~rag.types.Answer`."""

    def __init__(self, retriever: Retriever, generator: Generator, settings: Settings, embedder: Embedder) -> None:
        """Wire the parts.

        Args:
            retriever: ranks chunks for a query.
            generator: the extractive generator or a language model.
            settings: ``top_k``, ``max_new_tokens``, ``refuse_below``, ``support_below`` are read.
            embedder: MiniLM, for the support check.
        """
        self.retriever = retriever
        self.generator = generator
        self.settings = settings
        self.embedder = embedder
        self.passages: PassageVectors = getattr(generator, "passages", None) or PassageVectors(embedder)
        self.extractive = is_extractive(generator)
        self._vectors: OrderedDict[str, Any] = OrderedDict()  # recent query vectors (evidence, extraction)
        self._lock = threading.Lock()  # the UI answers several questions at once

    def vector(self, text: str) -> Any:
        """MiniLM vector of a query, remembered for the last few queries."""
        with self._lock:
            if text in self._vectors:
                self._vectors.move_to_end(text)
                return self._vectors[text]
        vec = self.embedder.embed([text])[0]
        with self._lock:
            self._vectors[text] = vec
            while len(self._vectors) > 64:
                self._vectors.popitem(last=False)
        return vec

    # -- retrieval -------------------------------------------------------------------------------
    def retrieve(self, question: str, history: History | None = None, *, k: int | None = None,
                 sources: Sequence[str] | None = None) -> Retrieved:
        """The chunks for this turn, and the query that found them (see the module docstring)."""
        k = k or self.settings.top_k
        if self.extractive:
            k = max(k, EXTRACT_DEPTH)
        question = question.strip()
        turns = normalize_history(history)
        search = self.retriever.search
        if turns and not self.extractive:
            standalone = condense(self.generator, question, turns)
            if standalone:
                hits = search(standalone, k, sources=sources)
                return Retrieved(standalone, hits, (standalone,), "condensed", (tuple(hits),))
            log.info("the model's standalone question was unusable; fusing rankings instead")
        return fused_search(search, question, turns, k, sources=sources)

    def evidence(self, found: Retrieved) -> float:
        """The :func:`evidence` of a retrieval: the best over the queries it embedded."""
        queries = found.queries or (found.query,)
        return max(evidence(q, found.hits, self.passages, self.vector(q)) for q in queries)

    def should_refuse(self, found: Retrieved) -> bool:
        """No hits, or the evidence is below ``settings.refuse_below``."""
        return not found.hits or self.evidence(found) < self.settings.refuse_below

    # -- answering -------------------------------------------------------------------------------
    def ask(self, question: str, history: History | None = None, *, k: int | None = None,
            sources: Sequence[str] | None = None) -> Answer:
        """Answer ``question`` (a follow-up of ``history`` when given) from the indexed documents.

        Args:
            question: the user's question.
            history: earlier (user, assistant) turns, oldest first.
            k: how many chunks to retrieve (``settings.top_k`` when None).
            sources: only use these sources.

        Returns:
            The complete answer.
        """
        answer = None
        for item in self.stream(question, history, k=k, sources=sources):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None
        return answer

    def stream(self, question: str, history: History | None = None, *, k: int | None = None,
               sources: Sequence[str] | None = None) -> Iterator[str | Answer]:
        """Like :meth:`ask`, but yield text pieces as they are produced, then the complete Answer."""
        question = (question or "").strip()
        if not question:
            raise EmptyQueryError("The question is empty; type a question")
        turns = normalize_history(history)
        found = self.retrieve(question, turns, k=k, sources=sources)
        gen = self.generator
        fmt = getattr(gen, "prompt_format", None)
        shown = k or self.settings.top_k
        if self.should_refuse(found):
            yield NO_ANSWER
            yield self._refusal(found, found.hits[:shown])
            return
        if self.extractive:
            yield from self._extract(question, found, shown)
            return

        packed = pack_prompt(
            question, found.hits, fmt=fmt, count_tokens=gen.count_tokens,
            context_window=getattr(gen, "context_window", 4096), max_new_tokens=self.settings.max_new_tokens,
            history=turns, render_chat_template=getattr(gen, "render_chat_template", None),
        )
        pieces: list[str] = []
        for piece in gen.stream(packed.text, max_new_tokens=self.settings.max_new_tokens):
            pieces.append(piece)
            yield piece
        text = "".join(pieces).strip()
        if is_refusal(text):
            yield self._refusal(found, packed.hits_used)
            return
        # A model's sentence without a marker gets the source that supports it, if one does.
        cited = cite(text, packed.hits_used, passages=self.passages, threshold=self.settings.support_below,
                     attach=True)
        yield Answer(text=cited.text, citations=cited.citations, sources=_ordered(cited.citations, packed.hits_used),
                     query=found.query, generator=gen.name, prompt_format=fmt, refused=False)

    def _extract(self, question: str, found: Retrieved, k: int) -> Iterator[str | Answer]:
        gen = self.generator
        sentences = gen.select(question, found.hits, question_vector=self.vector(question))
        if not sentences:
            yield NO_ANSWER
            yield self._refusal(found, found.hits[:k])
            return
        # Verbatim sentences of the cited chunk: support is 1 by construction, nothing to check.
        cited = cite(gen.compose(sentences), found.hits)
        citations = [replace(c, supported=True, support=1.0) for c in cited.citations]
        first, *rest = re.split(r"(?<=\]) (?=\S)", cited.text)
        yield first
        for piece in rest:
            yield " " + piece
        yield Answer(text=cited.text, citations=citations, sources=_ordered(citations, found.hits, k),
                     query=found.query, generator=gen.name, prompt_format=None, refused=False)

    def _refusal(self, found: Retrieved, hits: Sequence[Hit]) -> Answer:
        return Answer(text=NO_ANSWER, citations=[], sources=list(hits), query=found.query,
                      generator=self.generator.name, prompt_format=getattr(self.generator, "prompt_format", None),
                      refused=True)


def _ordered(citations: Sequence[Any], hits: Sequence[Hit], k: int | None = None) -> list[Hit]:
    """Cited hits in citation order, then uncited ones in retrieval order (up to ``k`` in all, cited ones always)."""
    cited = [c.hit for c in citations]
    ids = {h.chunk.id for h in cited}
    rest = [h for h in hits if h.chunk.id not in ids]
    if k is not None:
        rest = rest[: max(k - len(cited), 0)]
    return cited + rest
