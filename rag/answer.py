"""The one place that turns a question into a cited answer: retrieve -> (refuse) -> prompt -> generate -> cite.

``Answerer(retriever, generator, settings, embedder)`` is what ``RAG.ask`` and
``RAG.ask_stream`` use:

1. **Retrieve.** Without history, the question alone. With history: a language model
   condenses the conversation into a standalone question; the extractive generator fuses
   the rankings of the question alone and of the question after the previous user turns
   (:mod:`rag.conversation`). ``Answer.query`` is the retrieval query actually used.
2. **Refuse** when :func:`rag.refuse.should_refuse` says the retrieved chunks do not answer
   the question (``rag eval refusals``): the answer is exactly :data:`rag.prompt.NO_ANSWER`
   with ``refused=True``. A model that replies with NO_ANSWER itself is a refusal too.
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

import functools
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Any, Iterator, Sequence

from rag.cite import PassageVectors, cite
from rag.conversation import Retrieved, condense, fused_search, normalize_history
from rag.generate.extractive import EXTRACT_PREFIX
from rag.prompt import NO_ANSWER, pack_prompt
from rag.protocols import Answering, CrossEncoder, Embedder, is_extractor
from rag.refuse import answerability, assess, frequencies_for, phrase_share, sentence_cosines, should_refuse
from rag.retrieve import EmptyQueryError, Retriever
from rag.settings import Settings
from rag.types import Answer, Evidence, Hit

log = logging.getLogger(__name__)

History = Sequence[tuple[str, str]]

# The extractive generator picks sentences from this many chunks (SQuAD half-a, measured with
# dense retrieval: the extract holds a gold answer for 0.78 of questions from 5 chunks, 0.83
# from 10; with the hybrid default and 10 chunks, 0.885).
EXTRACT_DEPTH = 10


def is_refusal(text: str) -> bool:
    """Whether a model's reply is (essentially) :data:`NO_ANSWER`."""
    norm = " ".join(re.sub(r"[\"'“”‘’`*]", "", text).split()).casefold().rstrip(".")
    target = NO_ANSWER.casefold().rstrip(".")
    target_plain = target.replace("'", "")
    return norm.startswith((target, target_plain)) and len(norm) <= len(target) + 40


class Answerer:
    """Composes retrieval, refusal, generation and citation into an :class:`~rag.types.Answer`."""

    def __init__(self, retriever: Retriever, generator: Answering, settings: Settings, embedder: Embedder,
                 reader: CrossEncoder | None = None) -> None:
        """Wire the parts.

        Args:
            retriever: ranks chunks for a query.
            generator: an :class:`~rag.protocols.Extractor` (the default) or a language model.
            settings: ``top_k``, ``max_new_tokens``, the refusal settings, ``support_below`` are read.
            embedder: MiniLM, for the support check.
            reader: the refusal's answerability reader (:func:`rag.refuse.answerability`); the
                shipped one, loaded on the first assessment, when None.
        """
        self._reader = reader
        self.retriever = retriever
        self.generator = generator
        self.settings = settings
        self.embedder = embedder
        self.extractive = is_extractor(generator)
        # The extractor's own cache: it has embedded the sentences the citation check reads.
        self.passages: PassageVectors = generator.passages if self.extractive else PassageVectors(embedder)
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
                 sources: Sequence[str] | None = None, collections: Sequence[str] | None = None) -> Retrieved:
        """The chunks for this turn, and the query that found them (see the module docstring).

        Every search of the turn (the question, the question after earlier turns, a condensed
        question) is restricted to ``sources`` within ``collections``.
        """
        k = k or self.settings.top_k
        if self.extractive:
            k = max(k, EXTRACT_DEPTH)
        question = question.strip()
        turns = normalize_history(history)
        search = self.retriever.search
        if collections:
            search = functools.partial(search, collections=collections)
        if turns and not self.extractive:
            standalone = condense(self.generator, question, turns)
            if standalone:
                hits = search(standalone, k, sources=sources)
                return Retrieved(standalone, hits, (standalone,), "condensed", (tuple(hits),))
            log.info("the model's standalone question was unusable; fusing rankings instead")
        return fused_search(search, question, turns, k, sources=sources)

    def assess(self, found: Retrieved, *, sources: Sequence[str] | None = None,
               collections: Sequence[str] | None = None) -> Evidence:
        """The :func:`rag.refuse.assess` of a retrieval: the strongest over the queries it embedded.

        Args:
            found: the retrieval.
            sources: the sources it was restricted to (document frequencies count only these).
            collections: the collections it was restricted to (likewise).
        """
        frequencies = frequencies_for(self.retriever.store, sources, collections)
        queries = found.queries or (found.query,)

        def one(query: str) -> Evidence:
            # The sentence vectors are the extractor's cache: an extract after this embeds nothing more.
            vector = self.vector(query)
            cosines = sentence_cosines(self.passages, found.hits, vector)
            return assess(query, found.hits, frequencies, cosines,
                          phrase_share(query, found.hits, self.passages, vector),
                          answerability(query, found.hits, self.passages, cosines, self.reader))

        return max((one(q) for q in queries), key=lambda e: e.score)

    @property
    def reader(self) -> CrossEncoder:
        """The answerability reader (the shipped cross-encoder unless one was given)."""
        if self._reader is None:
            from rag.generate.rerank import ANSWERABILITY_FILE, SentenceReranker

            self._reader = SentenceReranker.shared(ANSWERABILITY_FILE)
        return self._reader

    def evidence(self, found: Retrieved, *, sources: Sequence[str] | None = None,
                 collections: Sequence[str] | None = None) -> float:
        """The evidence score of a retrieval (see :meth:`assess`)."""
        return self.assess(found, sources=sources, collections=collections).score

    def should_refuse(self, found: Retrieved, *, sources: Sequence[str] | None = None,
                      collections: Sequence[str] | None = None) -> bool:
        """No hits, or :func:`rag.refuse.should_refuse` of their evidence."""
        return not found.hits or should_refuse(self.assess(found, sources=sources, collections=collections),
                                               self.settings)

    # -- answering -------------------------------------------------------------------------------
    def ask(self, question: str, history: History | None = None, *, k: int | None = None,
            sources: Sequence[str] | None = None, collections: Sequence[str] | None = None) -> Answer:
        """Answer ``question`` (a follow-up of ``history`` when given) from the indexed documents.

        Args:
            question: the user's question.
            history: earlier (user, assistant) turns, oldest first.
            k: how many chunks to retrieve (``settings.top_k`` when None).
            sources: only use these sources.
            collections: only use these collections (retrieval, follow-ups and the refusal's
                word statistics all stay inside them).

        Returns:
            The complete answer.
        """
        answer = None
        for item in self.stream(question, history, k=k, sources=sources, collections=collections):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None
        return answer

    def stream(self, question: str, history: History | None = None, *, k: int | None = None,
               sources: Sequence[str] | None = None, collections: Sequence[str] | None = None
               ) -> Iterator[str | Answer]:
        """Like :meth:`ask`, but yield text pieces as they are produced, then the complete Answer."""
        question = (question or "").strip()
        if not question:
            raise EmptyQueryError("The question is empty; type a question")
        turns = normalize_history(history)
        found = self.retrieve(question, turns, k=k, sources=sources, collections=collections)
        gen = self.generator
        fmt = gen.prompt_format
        shown = k or self.settings.top_k
        if self.should_refuse(found, sources=sources, collections=collections):
            yield NO_ANSWER
            yield self._refusal(found, found.hits[:shown])
            return
        if self.extractive:
            yield from self._extract(question, found, shown, said=[a for _, a in turns if a])
            return

        packed = pack_prompt(
            question, near_best(found.hits, self.settings.source_margin), fmt=fmt, count_tokens=gen.count_tokens,
            context_window=gen.context_window, max_new_tokens=self.settings.max_new_tokens,
            history=turns, render_chat_template=gen.render_chat_template,
        )
        pieces: list[str] = []
        for piece in gen.stream(packed.text, max_new_tokens=self.settings.max_new_tokens):
            pieces.append(piece)
            yield piece
        text = packed.clean_reply("".join(pieces))
        if is_refusal(text):
            yield self._refusal(found, packed.hits_used)
            return
        # A model's sentence without a marker gets the source that supports it, if one does.
        cited = cite(text, packed.hits_used, passages=self.passages, threshold=self.settings.support_below,
                     attach=True)
        yield Answer(text=cited.text, citations=cited.citations, sources=_ordered(cited.citations, packed.hits_used),
                     query=found.query, generator=gen.name, prompt_format=fmt, refused=False)

    def _extract(self, question: str, found: Retrieved, k: int, *, said: Sequence[str] = ()) -> Iterator[str | Answer]:
        gen = self.generator
        # A fused follow-up ("Who was their leader?") is answered for the question with the
        # previous turns, as it was retrieved: the turns say whose leader. Those turns also pull
        # toward the sentence that answered them, so the sentence each answered with is not said again.
        if found.method == "fused" and len(found.queries) > 1:
            question = found.queries[-1]
        sentences = gen.select(question, found.hits, question_vector=self.vector(question), exclude=said)
        if not sentences:
            yield NO_ANSWER
            yield self._refusal(found, found.hits[:k])
            return
        # Verbatim sentences of the cited chunk: support is 1 by construction, nothing to check.
        cited = cite(gen.compose(sentences), found.hits)
        citations = [replace(c, supported=True, support=1.0) for c in cited.citations]
        parts = re.split(r"(?<=\]) (?=\S)", cited.text)
        # The prefix first, then each cited sentence: a one-sentence extract still streams.
        if parts[0].startswith(EXTRACT_PREFIX + " "):
            parts[:1] = [EXTRACT_PREFIX, parts[0][len(EXTRACT_PREFIX) + 1:]]
        first, *rest = parts
        yield first
        for piece in rest:
            yield " " + piece
        yield Answer(text=cited.text, citations=citations, sources=_ordered(citations, found.hits, k),
                     query=found.query, generator=gen.name, prompt_format=None, refused=False)

    def _refusal(self, found: Retrieved, hits: Sequence[Hit]) -> Answer:
        return Answer(text=NO_ANSWER, citations=[], sources=list(hits), query=found.query,
                      generator=self.generator.name, prompt_format=self.generator.prompt_format,
                      refused=True)


def near_best(hits: Sequence[Hit], margin: float) -> list[Hit]:
    """The hits whose cosine is within ``margin`` of the best one's, in their order.

    Args:
        hits: retrieved chunks.
        margin: the largest cosine difference to the best hit that is kept.

    Returns:
        The kept hits (every hit when ``margin`` is 2, the width of the cosine range).
    """
    if not hits:
        return []
    best = max(h.score for h in hits)
    return [h for h in hits if h.score >= best - margin]


def _ordered(citations: Sequence[Any], hits: Sequence[Hit], k: int | None = None) -> list[Hit]:
    """Cited hits in citation order, then uncited ones in retrieval order (up to ``k`` in all, cited ones always)."""
    cited = [c.hit for c in citations]
    ids = {h.chunk.id for h in cited}
    rest = [h for h in hits if h.chunk.id not in ids]
    if k is not None:
        rest = rest[: max(k - len(cited), 0)]
    return cited + rest
