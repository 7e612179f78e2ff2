"""Retrieval quality on SQuAD: does a top-k chunk from the right article hold the answer?

Each article becomes one Wikipedia-like source (``wikipedia:<title>``, kind ``wikipedia``,
title with underscores as spaces) whose text is its paragraphs one per line, as the
Wikipedia ingester joins a section's paragraphs. It goes through the product's own
ingestion and chunking into a fresh temporary store; paragraphs without questions are
indexed too. Every question is asked through ``RAG.search`` for the top 10 chunks. A chunk
is a hit when it comes from the question's article and contains one of the gold answer
strings (case-insensitive).

Reported: ``hit@1``, ``hit@5``, ``hit@10`` (share of questions with a hit in the top k),
``mrr`` (mean reciprocal rank of the first hit within the top 10), ``n`` and ``seconds``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.eval.common import EvalDataError, iter_progress, read_json, resolve_settings, temporary_rag
from rag.eval.metrics import hit_at_k, reciprocal_rank
from rag.settings import Settings
from rag.types import Document

DEPTH = 10
HIT_KS = (1, 5, 10)
METRIC_KEYS = ("hit@1", "hit@5", "hit@10", "mrr")
WIKI_URL = "https://en.wikipedia.org/wiki/"


@dataclass(frozen=True)
class Question:
    """A SQuAD question with its gold answers and the source name of its article."""

    id: str
    text: str
    answers: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class SquadData:
    """Articles as Documents (one per article) and the questions about them."""

    name: str
    documents: list[Document]
    questions: list[Question]
    paragraphs: int


def load_squad(path: str | Path, *, limit_articles: int | None = None) -> SquadData:
    """Read a SQuAD v1.1 JSON file into one Document per article and its answerable questions.

    Args:
        path: the SQuAD JSON file.
        limit_articles: only the first N articles (all when None).

    Returns:
        The documents and questions.

    Raises:
        EvalDataError: the file is missing or not SQuAD's format.
    """
    path = Path(path)
    raw = read_json(path, "SQuAD")
    articles = raw.get("data") if isinstance(raw, dict) else None
    if not isinstance(articles, list) or not articles:
        raise EvalDataError(f"{path} has no 'data' list of articles; give a SQuAD v1.1 JSON file")
    if limit_articles is not None:
        articles = articles[: max(limit_articles, 0)]
    documents: list[Document] = []
    questions: list[Question] = []
    n_paragraphs = 0
    try:
        for article in articles:
            raw_title = str(article["title"])
            title = raw_title.replace("_", " ")
            source = f"wikipedia:{title}"
            contexts = []
            for paragraph in article["paragraphs"]:
                contexts.append(str(paragraph["context"]).strip())
                for qa in paragraph.get("qas", []):
                    answers = tuple(dict.fromkeys(str(a["text"]).strip() for a in qa.get("answers", [])
                                                  if str(a["text"]).strip()))
                    if answers and str(qa["question"]).strip():  # SQuAD 2.0's unanswerable ones have none
                        questions.append(Question(str(qa.get("id", len(questions))), str(qa["question"]).strip(),
                                                  answers, source))
            n_paragraphs += len(contexts)
            text = "\n".join(c for c in contexts if c)
            if text:
                documents.append(Document(source=source, text=text, kind="wikipedia", title=title,
                                          url=WIKI_URL + raw_title.replace(" ", "_")))
    except (KeyError, TypeError, AttributeError) as exc:
        raise EvalDataError(f"{path} is not in SQuAD's format (missing or wrong field {exc}); "
                            "give a SQuAD v1.1 JSON file") from None
    if not questions:
        raise EvalDataError(f"{path} holds no answerable questions; give a SQuAD v1.1 JSON file")
    return SquadData(path.name, documents, questions, n_paragraphs)


def is_hit(hit: Any, question: Question) -> bool:
    """The chunk comes from the question's article and contains a gold answer (case-insensitive)."""
    if hit.source != question.source:
        return False
    text = hit.text.casefold()
    return any(a.casefold() in text for a in question.answers)


def evaluate_squad(
    file: str | Path,
    *,
    settings: Settings | None = None,
    progress: bool = False,
    limit_articles: int | None = None,
) -> dict[str, Any]:
    """Ingest SQuAD's articles into a fresh store, ask every question, and count answer-bearing hits.

    Args:
        file: a SQuAD v1.1 JSON file.
        settings: chunking and embedding settings (environment and defaults when None).
        progress: show progress bars on stderr.
        limit_articles: only the first N articles and their questions.

    Returns:
        ``hit@1``, ``hit@5``, ``hit@10``, ``mrr``, ``n`` (questions), ``seconds`` (the whole run,
        model load included; ``ingest_seconds`` and ``query_seconds`` split it), and the
        settings and sizes of the run.
    """
    s = resolve_settings(settings)
    started = time.perf_counter()
    data = load_squad(file, limit_articles=limit_articles)
    from ingest.index import SourceJob

    with temporary_rag(s) as rag:
        rag.embedder  # load the model before the clock starts: ingest_seconds is ingestion alone
        t0 = time.perf_counter()
        jobs = [SourceJob(d.source, lambda d=d: [d]) for d in data.documents]
        report = rag.ingest(jobs, progress=progress)
        ingest_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        sums = dict.fromkeys(METRIC_KEYS, 0.0)
        for q in iter_progress(data.questions, total=len(data.questions), desc="Querying", unit="question",
                               enabled=progress):
            flags = [is_hit(h, q) for h in rag.search(q.text, DEPTH)]
            for k in HIT_KS:
                sums[f"hit@{k}"] += hit_at_k(flags, k)
            sums["mrr"] += reciprocal_rank(flags, DEPTH)
        query_s = time.perf_counter() - t0
    n = len(data.questions)
    return {
        "eval": "squad",
        "dataset": data.name,
        **{k: v / n for k, v in sums.items()},
        "n": n,
        "seconds": round(time.perf_counter() - started, 1),
        "retrieval_mode": s.retrieval_mode,
        "fusion": s.fusion if s.retrieval_mode == "hybrid" else None,
        "keyword_weight": s.keyword_weight if s.retrieval_mode == "hybrid" else None,
        "chunk_tokens": s.chunk_tokens,
        "chunk_overlap": s.chunk_overlap,
        "k": DEPTH,
        "articles": len(data.documents),
        "paragraphs": data.paragraphs,
        "chunks": report.chunks_written + sum(report.unchanged.values()),
        "ingest_seconds": round(ingest_s, 1),
        "query_seconds": round(query_s, 1),
    }
