"""Ranking metrics with the definitions BEIR and MTEB use (pytrec_eval / trec_eval).

Pure functions over plain data, so they can be checked by hand:

* ``qrels``: for one query, ``{doc_id: relevance}`` with graded relevance (0 = judged not relevant).
* ``ranking``: the retrieved doc ids for that query, best first, without duplicates.

Definitions (trec_eval's, as pytrec_eval computes them for BEIR):

* nDCG@k: DCG@k / IDCG@k with gain = the graded relevance from the qrels and discount
  ``log2(rank + 1)`` (rank from 1). The ideal DCG ranks the *qrels* by relevance, so a
  relevant document that was never retrieved still counts against the score. 0 when the
  query has no relevant document.
* recall@k: relevant documents (relevance >= 1) in the top k / all relevant documents.
* MRR@k: 1 / rank of the first relevant document within the top k; 0 when none is there
  (MTEB's ``mrr_at_k``).

``mean_over_queries`` averages a metric over every query that has qrels; a query with no
results scores 0, as in BEIR.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

Qrels = Mapping[str, int]
Ranking = Sequence[str]


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k={k} must be at least 1")


def dcg_at_k(gains: Sequence[float], k: int) -> float:
    """Discounted cumulative gain of the first ``k`` gains: sum of gain_i / log2(i + 1), i from 1."""
    _check_k(k)
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]) if g > 0)


def ndcg_at_k(qrels: Qrels, ranking: Ranking, k: int) -> float:
    """nDCG@k with graded gains from ``qrels`` and the ideal ranking built from ``qrels``.

    Args:
        qrels: relevance per judged doc id for one query.
        ranking: retrieved doc ids, best first.
        k: the cutoff.

    Returns:
        A value in [0, 1]; 0 when no document in ``qrels`` is relevant.
    """
    ideal = dcg_at_k(sorted((r for r in qrels.values() if r > 0), reverse=True), k)
    if ideal == 0:
        return 0.0
    return dcg_at_k([max(qrels.get(d, 0), 0) for d in ranking], k) / ideal


def recall_at_k(qrels: Qrels, ranking: Ranking, k: int) -> float:
    """Share of the relevant documents (relevance >= 1) found in the top ``k``; 0 when none is relevant."""
    _check_k(k)
    relevant = {d for d, r in qrels.items() if r > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def mrr_at_k(qrels: Qrels, ranking: Ranking, k: int) -> float:
    """Reciprocal rank of the first relevant document within the top ``k``; 0 when there is none."""
    _check_k(k)
    for rank, d in enumerate(ranking[:k], 1):
        if qrels.get(d, 0) > 0:
            return 1.0 / rank
    return 0.0


def reciprocal_rank(hits: Sequence[bool], k: int | None = None) -> float:
    """1 / position of the first True in ``hits`` (within the first ``k``); 0 when there is none."""
    for rank, ok in enumerate(hits[:k] if k else hits, 1):
        if ok:
            return 1.0 / rank
    return 0.0


def hit_at_k(hits: Sequence[bool], k: int) -> float:
    """1.0 when any of the first ``k`` results is a hit, else 0.0."""
    _check_k(k)
    return 1.0 if any(hits[:k]) else 0.0


Metric = Callable[[Qrels, Ranking, int], float]
METRICS: dict[str, Metric] = {"ndcg": ndcg_at_k, "recall": recall_at_k, "mrr": mrr_at_k}


def mean_over_queries(
    qrels: Mapping[str, Qrels], rankings: Mapping[str, Ranking], metric: Metric, k: int
) -> float:
    """The mean of ``metric@k`` over every query in ``qrels`` (a query without a ranking scores 0)."""
    if not qrels:
        return 0.0
    return sum(metric(q, rankings.get(qid, ()), k) for qid, q in qrels.items()) / len(qrels)


def ranking_scores(
    qrels: Mapping[str, Qrels], rankings: Mapping[str, Ranking], ks: Sequence[int] = (10, 100)
) -> dict[str, float]:
    """Every metric at every cutoff, keyed like BEIR reports them: ``ndcg@10``, ``recall@100``, ...

    Args:
        qrels: per query id, relevance per doc id.
        rankings: per query id, retrieved doc ids, best first.
        ks: the cutoffs.

    Returns:
        ``{"ndcg@k": ..., "recall@k": ..., "mrr@k": ...}`` for each k, in that order.
    """
    out: dict[str, float] = {}
    for name, fn in METRICS.items():
        for k in sorted(set(ks)):
            out[f"{name}@{k}"] = mean_over_queries(qrels, rankings, fn, k)
    return out


# -- SQuAD v1.1 answer metrics (the official evaluate-v1.1.py definitions) ----------------------

def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower-case, drop punctuation, the articles a/an/the and extra whitespace."""
    import re
    import string

    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def squad_f1(prediction: str, golds: Sequence[str]) -> float:
    """Token F1 of ``prediction`` against the best-matching gold answer (official SQuAD v1.1)."""
    from collections import Counter

    pred = normalize_answer(prediction).split()
    best = 0.0
    for gold in golds:
        ref = normalize_answer(gold).split()
        common = Counter(pred) & Counter(ref)
        same = sum(common.values())
        if same == 0:
            continue
        precision, recall = same / len(pred), same / len(ref)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def squad_em(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when ``prediction`` equals a gold answer after :func:`normalize_answer`, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))
