"""The ranking metrics against values computed by hand (trec_eval / BEIR definitions)."""

from __future__ import annotations

import math

import pytest

from rag.eval.metrics import (
    dcg_at_k,
    hit_at_k,
    mean_over_queries,
    mrr_at_k,
    ndcg_at_k,
    ranking_scores,
    recall_at_k,
    reciprocal_rank,
)

# Graded qrels: a is highly relevant, b relevant, c judged not relevant.
QRELS = {"a": 2, "b": 1, "c": 0}
RANKING = ["x", "b", "a", "c"]
LOG2_3 = math.log2(3)


def test_dcg_uses_log2_of_rank_plus_one() -> None:
    # 3/log2(2) + 0/log2(3) + 1/log2(4)
    assert dcg_at_k([3, 0, 1], 3) == pytest.approx(3 + 0 + 0.5)
    assert dcg_at_k([3, 0, 1], 1) == pytest.approx(3)


def test_ndcg_graded_gains_and_ideal_from_qrels() -> None:
    # DCG@3 = 0/1 + 1/log2(3) + 2/log2(4); IDCG@3 = 2/1 + 1/log2(3) (c has gain 0).
    expected = (1 / LOG2_3 + 1.0) / (2 + 1 / LOG2_3)
    assert ndcg_at_k(QRELS, RANKING, 3) == pytest.approx(expected)
    assert ndcg_at_k(QRELS, RANKING, 3) == pytest.approx(0.6199, abs=1e-4)
    # @2: DCG = 1/log2(3), IDCG@2 = 2 + 1/log2(3).
    assert ndcg_at_k(QRELS, RANKING, 2) == pytest.approx((1 / LOG2_3) / (2 + 1 / LOG2_3))
    assert ndcg_at_k(QRELS, RANKING, 1) == 0.0


def test_ndcg_perfect_ranking_is_one_and_relevance_order_matters() -> None:
    assert ndcg_at_k(QRELS, ["a", "b"], 10) == pytest.approx(1.0)
    # Swapping the grades' order costs: DCG = 1 + 2/log2(3) against IDCG = 2 + 1/log2(3).
    assert ndcg_at_k(QRELS, ["b", "a"], 10) == pytest.approx((1 + 2 / LOG2_3) / (2 + 1 / LOG2_3))


def test_ndcg_counts_relevant_documents_never_retrieved() -> None:
    # Ideal DCG comes from the qrels, not from what was retrieved: b's absence costs.
    assert ndcg_at_k({"a": 1, "b": 1}, ["a"], 10) == pytest.approx(1 / (1 + 1 / LOG2_3))
    assert ndcg_at_k({"a": 1, "b": 1}, ["a"], 10) == pytest.approx(0.6131, abs=1e-4)


def test_ndcg_with_more_relevant_than_k_caps_the_ideal_at_k() -> None:
    qrels = {d: 1 for d in "abcdef"}
    assert ndcg_at_k(qrels, ["a", "b"], 2) == pytest.approx(1.0)


def test_no_relevant_document_scores_zero() -> None:
    assert ndcg_at_k({"a": 0}, ["a"], 10) == 0.0
    assert recall_at_k({"a": 0}, ["a"], 10) == 0.0
    assert mrr_at_k({"a": 0}, ["a"], 10) == 0.0


def test_recall_at_k() -> None:
    assert recall_at_k(QRELS, RANKING, 1) == 0.0
    assert recall_at_k(QRELS, RANKING, 2) == 0.5
    assert recall_at_k(QRELS, RANKING, 3) == 1.0
    assert recall_at_k({"a": 1, "b": 1, "c": 1}, ["c", "z"], 100) == pytest.approx(1 / 3)


def test_mrr_at_k_is_first_relevant_within_cutoff() -> None:
    assert mrr_at_k(QRELS, RANKING, 1) == 0.0
    assert mrr_at_k(QRELS, RANKING, 2) == 0.5
    assert mrr_at_k(QRELS, RANKING, 10) == 0.5
    assert mrr_at_k({"z": 1}, ["a", "b", "c", "z"], 3) == 0.0
    assert mrr_at_k({"z": 1}, ["a", "b", "c", "z"], 4) == 0.25


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ndcg_at_k(QRELS, RANKING, 0)


def test_hit_and_reciprocal_rank() -> None:
    flags = [False, False, True, True]
    assert hit_at_k(flags, 2) == 0.0
    assert hit_at_k(flags, 3) == 1.0
    assert reciprocal_rank(flags) == pytest.approx(1 / 3)
    assert reciprocal_rank(flags, 2) == 0.0
    assert reciprocal_rank([]) == 0.0


def test_mean_over_queries_counts_queries_without_results_as_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    assert mean_over_queries(qrels, {"q1": ["a"]}, mrr_at_k, 10) == 0.5


def test_ranking_scores_keys_and_values() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}}
    rankings = {"q1": ["x", "a"], "q2": ["c"]}
    scores = ranking_scores(qrels, rankings, (10, 1))
    assert list(scores) == ["ndcg@1", "ndcg@10", "recall@1", "recall@10", "mrr@1", "mrr@10"]
    assert scores["recall@1"] == pytest.approx((0 + 0.5) / 2)
    assert scores["recall@10"] == pytest.approx((1 + 0.5) / 2)
    assert scores["mrr@10"] == pytest.approx((0.5 + 1) / 2)
    assert scores["ndcg@10"] == pytest.approx((1 / LOG2_3 + 1 / (1 + 1 / LOG2_3)) / 2)


def test_squad_f1_and_em_as_the_official_script() -> None:
    from rag.eval.metrics import normalize_answer, squad_em, squad_f1

    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert squad_em("the Denver Broncos.", ["Denver Broncos", "Broncos"]) == 1.0
    assert squad_em("Denver", ["Denver Broncos"]) == 0.0
    # pred "denver broncos won" vs gold "denver broncos": precision 2/3, recall 1 -> F1 0.8
    assert squad_f1("Denver Broncos won", ["Denver Broncos"]) == pytest.approx(0.8)
    assert squad_f1("Denver Broncos won", ["Carolina", "Broncos"]) == pytest.approx(0.5)  # max over golds
    assert squad_f1("", ["x"]) == 0.0 and squad_f1("nothing shared", ["x"]) == 0.0
