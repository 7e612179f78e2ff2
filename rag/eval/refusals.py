"""Refusals on SQuAD: does the product refuse what the store cannot answer, and answer what it can?

Every question is asked twice through the product's :class:`rag.answer.Answerer`:

* *answerable*: over the whole store;
* *unanswerable*: with its own article left out (retrieval restricted to the other sources,
  which for dense retrieval ranks exactly as a store without that article would, and the
  evidence's document frequencies are counted over those sources only).

The store holds every article of the SQuAD file and, with ``distractors``, more real text that
answers none of the questions (:mod:`rag.eval.distractors`: Wikipedia wikitext, SciFact
abstracts), so the same defaults can be checked as the store grows and its content changes.

Some "unanswerable" questions are in truth answered by another source of the store (a
distractor, or another SQuAD article: the Huguenot article says where Fort Caroline was built).
:func:`answered_elsewhere` finds them by a rule judged on clear cases: one of the evidence's
chunks holds a sentence with a gold answer string *and* at least :data:`ANSWERED_SHARE` of the
question's other words (IDF-weighted over the searched scope, as the evidence weighs them).
Answering those is right, refusing them is not wrong, so they are left out of
``refused_unanswerable`` and of the threshold fits; ``refused_unanswerable_raw`` counts every
question, and ``answered_elsewhere`` says how many were set apart.

Reported: the share refused in each case at the product's rule (``refused_unanswerable``,
``refused_answerable``), and the threshold that refuses the most unanswerable questions while
refusing at most 5% of answerable ones, fitted on the even-numbered articles and scored on the
odd ones, and the other way round (``crossfit_*``: the mean of both held-out halves).
"""

from __future__ import annotations

import json
import math
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from rag.eval.common import (EvalDataError, extractive_answerer, iter_progress, resolve_settings,
                              spread_questions, temporary_rag)
from rag.eval.distractors import load_distractors
from rag.eval.squad import Question, is_hit, load_squad
from rag.refuse import EVIDENCE_DEPTH, Frequencies, frequencies_for, question_words, word_weights
from rag.settings import Settings
from rag.text import content_words
from rag.types import Document, Hit

MAX_FALSE_REFUSALS = 0.05
# A sentence with a gold answer answers the question when it also holds this share of the
# question's other words (IDF-weighted): a bare "three" or "the north" in a sentence about
# something else does not.
ANSWERED_SHARE = 0.5


def _normal(text: str) -> str:
    return " " + " ".join(re.sub(r"[^\w]+", " ", text.casefold()).split()) + " "


def answered_elsewhere(question: Question, hits: Sequence[Hit], frequencies: Frequencies | None) -> bool:
    """Whether the evidence's chunks (not the question's own article) in truth answer ``question``.

    True when a sentence of the first :data:`~rag.refuse.EVIDENCE_DEPTH` hits holds a gold
    answer (whole words, case-insensitive) and at least :data:`ANSWERED_SHARE` of the IDF
    weight of the question's content words that are not part of that answer.

    Args:
        question: the SQuAD question with its gold answers.
        hits: what was retrieved with its own article left out.
        frequencies: document frequencies of the searched scope (the evidence's own weights).
    """
    from rag.cite import chunk_sentences

    qwords = question_words(question.text)
    if not qwords:
        return False
    weight = word_weights(qwords, frequencies)
    golds = [(_normal(a), content_words(a)) for a in question.answers if _normal(a).strip()]
    for hit in list(hits)[:EVIDENCE_DEPTH]:
        for sentence in chunk_sentences(hit.text):
            text = _normal(sentence)
            for gold, gold_words in golds:
                if gold not in text:
                    continue
                rest = qwords.keys() - gold_words
                total = sum(weight[x] for x in rest)
                if total and sum(weight[x] for x in rest & content_words(sentence)) >= ANSWERED_SHARE * total:
                    return True
    return False


def best_threshold(answerable: Sequence[float], unanswerable: Sequence[float],
                   max_false: float = MAX_FALSE_REFUSALS) -> tuple[float, float, float]:
    """The threshold that refuses the most unanswerable questions with at most ``max_false`` answerable refused.

    A question is refused when its evidence is below the threshold.

    Returns:
        ``(threshold, refused_unanswerable, refused_answerable)``.
    """
    pos = sorted(answerable)
    if not pos:
        return float("-inf"), 0.0, 0.0
    allowed = math.floor(max_false * len(pos))
    threshold = pos[allowed]  # refusing below it refuses exactly the `allowed` weakest (ties aside)
    return (threshold, sum(v < threshold for v in unanswerable) / max(len(unanswerable), 1),
            sum(v < threshold for v in pos) / len(pos))


@contextmanager
def refusal_rag(documents: Sequence[Document], settings: Settings, *, store: str | Path | None = None,
                progress: bool = False, rag: Any = None) -> Iterator[Any]:
    """A facade whose store holds ``documents``: ``rag`` as given, a kept store, or a fresh temporary one.

    A kept ``store`` directory is ingested incrementally (sources already there with the same
    chunks are not embedded again), so several configurations can share one store.
    """
    from ingest.index import SourceJob

    by_source: dict[str, list[Document]] = {}
    for d in documents:
        by_source.setdefault(d.source, []).append(d)
    jobs = [SourceJob(src, lambda ds=ds: ds) for src, ds in by_source.items()]
    if rag is not None:
        yield rag
        return
    if store is not None:
        from rag.eval.common import _close_store
        from rag.service import RAG

        kept = RAG(settings=settings.replace(data_dir=Path(store)))
        try:
            kept.ingest(jobs, progress=progress)
            yield kept
        finally:
            _close_store(kept)
        return
    with temporary_rag(settings) as fresh:
        fresh.ingest(jobs, progress=progress)
        yield fresh


def evaluate_refusals(
    squad_file: str | Path,
    *,
    settings: Settings | None = None,
    progress: bool = False,
    limit_articles: int | None = None,
    max_questions: int | None = None,
    distractors: Sequence[str | Path] = (),
    distractor_limit: int | None = None,
    store: str | Path | None = None,
    dump: str | Path | None = None,
    rag: Any = None,
) -> dict[str, Any]:
    """Refusal rates on unanswerable (own article left out) and answerable questions.

    Args:
        squad_file: a SQuAD v1.1 JSON file (at least two articles).
        settings: chunking, embedding and the refusal settings (environment and defaults when None).
        progress: progress bars on stderr.
        limit_articles: only the first N articles and their questions.
        max_questions: ask only this many questions, spread evenly over the file.
        distractors: more documents to index (see :mod:`rag.eval.distractors`).
        distractor_limit: at most this many records of each BEIR corpus among ``distractors``.
        store: keep the store in this directory and reuse it (retrieval is then restricted to
            this run's sources, so one store can serve several configurations).
        dump: write each question's evidence (answerable and unanswerable) to this JSONL file.
        rag: a facade whose store already holds exactly these documents (skips ingestion).

    Returns:
        ``refused_unanswerable`` (over the questions no other source answers, see
        :func:`answered_elsewhere`; ``refused_unanswerable_raw`` over all of them and
        ``answered_elsewhere`` how many were set apart), ``refused_answerable`` under the product's rule;
        ``refused_answerable_retrievable`` (answerable questions whose retrieved chunks hold
        the answer); the fitted threshold and its rates on held-out articles; ``n``, ``seconds``.
    """
    s = resolve_settings(settings)
    started = time.perf_counter()
    data = load_squad(squad_file, limit_articles=limit_articles)
    sources = [d.source for d in data.documents]
    if len(sources) < 2:
        raise EvalDataError(f"{squad_file} has {len(sources)} article(s); refusals need at least two")
    extra = load_distractors(distractors, limit=distractor_limit) if distractors else None
    scope = sources + (extra.sources if extra else [])
    questions = spread_questions(data.questions, max_questions)
    # (source, answerable evidence, unanswerable evidence, retrievable, answered elsewhere)
    rows: list[tuple[str, float, float, bool, bool]] = []
    out = open(dump, "w", encoding="utf-8") if dump else None  # noqa: SIM115 (closed below)
    documents = list(data.documents) + (extra.documents if extra else [])
    try:
        with refusal_rag(documents, s, store=store, progress=progress, rag=rag) as r:
            answerer = extractive_answerer(r, s)
            everywhere = scope if store is not None else None
            for q in iter_progress(questions, total=len(questions), desc="Asking twice", unit="question",
                                   enabled=progress):
                others = [x for x in scope if x != q.source]
                found = answerer.retrieve(q.text, sources=everywhere)
                missing = answerer.retrieve(q.text, sources=others)
                retrievable = any(is_hit(h, q) for h in found.hits)
                ev_found = answerer.assess(found, sources=everywhere)
                ev_missing = answerer.assess(missing, sources=others)
                elsewhere = answered_elsewhere(q, missing.hits, frequencies_for(r.store, others))
                rows.append((q.source, ev_found.score, ev_missing.score, retrievable, elsewhere))
                if out is not None:
                    out.write(json.dumps({"source": q.source, "question": q.text, "retrievable": retrievable,
                                          "answered_elsewhere": elsewhere,
                                          "answerable": ev_found.as_dict(), "unanswerable": ev_missing.as_dict()})
                              + "\n")
    finally:
        if out is not None:
            out.close()
    t = s.refuse_below
    n = len(rows)
    pos = [row[1] for row in rows]
    clear = [row for row in rows if not row[4]]  # unanswerable questions no other source answers
    neg = [row[2] for row in clear]
    retrievable = [row[1] for row in rows if row[3]]
    order = {src: i for i, src in enumerate(sources)}
    # Two-fold cross-fit by article: fit the threshold on one half, score it on the other, both ways.
    folds = []
    for fit_parity in (0, 1):
        fit = [row for row in rows if order[row[0]] % 2 == fit_parity]
        held = [row for row in rows if order[row[0]] % 2 != fit_parity]
        held_clear = [row for row in held if not row[4]]
        fitted, _, _ = best_threshold([row[1] for row in fit], [row[2] for row in fit if not row[4]])
        folds.append((fitted, sum(row[2] < fitted for row in held_clear) / max(len(held_clear), 1),
                      sum(row[1] < fitted for row in held) / max(len(held), 1),
                      sum(row[2] < fitted for row in held) / max(len(held), 1)))
    overall, overall_unans, overall_ans = best_threshold(pos, neg)
    elsewhere = [row for row in rows if row[4]]
    return {
        "eval": "refusals",
        "dataset": data.name,
        "distractors": extra.label if extra else "",
        "refused_unanswerable": sum(v < t for v in neg) / max(len(neg), 1),
        "refused_answerable": sum(v < t for v in pos) / n,
        "refused_unanswerable_raw": sum(row[2] < t for row in rows) / n,
        "answered_elsewhere": len(elsewhere),
        "answered_elsewhere_not_refused": sum(row[2] >= t for row in elsewhere),
        "refused_answerable_retrievable": sum(v < t for v in retrievable) / max(len(retrievable), 1),
        "refuse_below": t,
        # Fitted on even articles, scored on odd ones; then the other way round; then the mean.
        "fitted_threshold": round(folds[0][0], 4),
        "heldout_refused_unanswerable": folds[0][1],
        "heldout_refused_answerable": folds[0][2],
        "fitted_threshold_odd": round(folds[1][0], 4),
        "heldout_even_refused_unanswerable": folds[1][1],
        "heldout_even_refused_answerable": folds[1][2],
        "crossfit_refused_unanswerable": (folds[0][1] + folds[1][1]) / 2,
        "crossfit_refused_answerable": (folds[0][2] + folds[1][2]) / 2,
        "crossfit_refused_unanswerable_raw": (folds[0][3] + folds[1][3]) / 2,
        "best_threshold_all": round(overall, 4),
        "best_refused_unanswerable_all": overall_unans,
        "best_refused_answerable_all": overall_ans,
        "max_false_refusals": MAX_FALSE_REFUSALS,
        "n": n,
        "seconds": round(time.perf_counter() - started, 1),
        "articles": len(sources),
        "sources": len(scope),
        "chunk_tokens": s.chunk_tokens,
        "chunk_overlap": s.chunk_overlap,
    }
