"""Refusals on SQuAD: does the product refuse what the store cannot answer, and answer what it can?

Every question is asked twice through the product's :class:`rag.answer.Answerer`:

* *answerable*: over the whole store;
* *unanswerable*: with its own article left out (retrieval restricted to the other sources,
  which for dense retrieval ranks exactly as a store without that article would, and the
  evidence's document frequencies are counted over those sources only).

The store holds every article of the SQuAD file and, with ``distractors``, more real text that
answers none of the questions (:mod:`rag.eval.distractors`: Wikipedia wikitext, SciFact
abstracts), so the same defaults can be checked as the store grows and its content changes.

Reported: the share refused in each case at the product's rule (``refused_unanswerable``,
``refused_answerable``), and the threshold that refuses the most unanswerable questions while
refusing at most 5% of answerable ones, fitted on the even-numbered articles and scored on the
odd ones, and the other way round (``crossfit_*``: the mean of both held-out halves).
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from rag.eval.common import (EvalDataError, extractive_answerer, iter_progress, resolve_settings,
                              spread_questions, temporary_rag)
from rag.eval.distractors import load_distractors
from rag.eval.squad import is_hit, load_squad
from rag.settings import Settings
from rag.types import Document

MAX_FALSE_REFUSALS = 0.05


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
        ``refused_unanswerable``, ``refused_answerable`` under the product's rule;
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
    rows: list[tuple[str, float, float, bool]] = []  # (source, answerable ev, unanswerable ev, retrievable)
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
                rows.append((q.source, ev_found.score, ev_missing.score, retrievable))
                if out is not None:
                    out.write(json.dumps({"source": q.source, "question": q.text, "retrievable": retrievable,
                                          "answerable": ev_found.as_dict(), "unanswerable": ev_missing.as_dict()})
                              + "\n")
    finally:
        if out is not None:
            out.close()
    t = s.refuse_below
    n = len(rows)
    pos = [a for _, a, _, _ in rows]
    neg = [b for _, _, b, _ in rows]
    retrievable = [a for _, a, _, ok in rows if ok]
    order = {src: i for i, src in enumerate(sources)}
    # Two-fold cross-fit by article: fit the threshold on one half, score it on the other, both ways.
    folds = []
    for fit_parity in (0, 1):
        fit = [row for row in rows if order[row[0]] % 2 == fit_parity]
        held = [row for row in rows if order[row[0]] % 2 != fit_parity]
        fitted, _, _ = best_threshold([a for _, a, _, _ in fit], [b for _, _, b, _ in fit])
        folds.append((fitted, sum(b < fitted for _, _, b, _ in held) / max(len(held), 1),
                      sum(a < fitted for _, a, _, _ in held) / max(len(held), 1)))
    overall, overall_unans, overall_ans = best_threshold(pos, neg)
    return {
        "eval": "refusals",
        "dataset": data.name,
        "distractors": extra.label if extra else "",
        "refused_unanswerable": sum(v < t for v in neg) / n,
        "refused_answerable": sum(v < t for v in pos) / n,
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
