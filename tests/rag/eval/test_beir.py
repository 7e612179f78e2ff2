"""BEIR evaluation: the loader's errors, a fast SciFact subset, and the full MTEB reproduction (slow)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from rag.errors import ConfigError
from rag.eval import EvalDataError, evaluate_beir, load_beir
from rag.settings import Settings
from tests.conftest import require_shared
from tests.rag.eval.datasets import write_beir

# Published all-MiniLM-L6-v2 SciFact test nDCG@10 (MTEB result file in ../shared/data/beir/reference).
MTEB_SCIFACT_NDCG10 = 0.6451
# Measured on the subset below (the first 30 test queries, the abstracts relevant to them and 150
# distractors: 182 abstracts, 419 chunks at 200/32): nDCG@10 0.9408, recall@10 1.0, MRR@10 0.9264.
# The floors leave room for numeric noise, not for a regression; a broken retriever scores near 0.
# Most of the test's time is embedding the chunks (about 30 s on 2 cores; RAG_TORCH_THREADS=1 helps
# when other work shares them).
SUBSET_QUERIES = 30
SUBSET_DISTRACTORS = 150
SUBSET_NDCG10_FLOOR = 0.91
SUBSET_RECALL10_FLOOR = 0.95
PINNED = dict(chunk_tokens=200, chunk_overlap=32, retrieval_mode="dense")


def scifact_subset(src: Path, dst: Path, n_queries: int, n_distractors: int) -> Path:
    """The first ``n_queries`` test queries, every abstract relevant to them, and every 10th other abstract."""
    with (src / "qrels" / "test.tsv").open(encoding="utf-8", newline="") as f:
        rows = [r for r in csv.reader(f, delimiter="\t")][1:]
    wanted = list(dict.fromkeys(r[0] for r in rows))[:n_queries]
    qrels = [(r[0], r[1], int(r[2])) for r in rows if r[0] in wanted]
    relevant = {d for _, d, _ in qrels}
    corpus = [json.loads(line) for line in (src / "corpus.jsonl").open(encoding="utf-8")]
    distractors = [d for d in corpus[::10] if d["_id"] not in relevant][:n_distractors]
    queries = [json.loads(line) for line in (src / "queries.jsonl").open(encoding="utf-8")]
    return write_beir(dst, [d for d in corpus if d["_id"] in relevant] + distractors,
                      [q for q in queries if q["_id"] in wanted], qrels)


# -- loader ------------------------------------------------------------------------------------
def test_load_beir_reads_corpus_queries_and_graded_qrels(tmp_path: Path) -> None:
    root = write_beir(
        tmp_path / "ds",
        [{"_id": "d1", "title": "T", "text": "x"}, {"_id": "d2", "title": "", "text": "y"}],
        [{"_id": "q1", "text": "a?"}, {"_id": "q2", "text": "b?"}],
        [("q1", "d1", 2), ("q1", "d2", 0)],
    )
    data = load_beir(root)
    assert data.corpus == {"d1": ("T", "x"), "d2": ("", "y")}
    assert data.queries == {"q1": "a?"}  # only queries with qrels are evaluated
    assert data.qrels == {"q1": {"d1": 2, "d2": 0}}


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda r: (r / "corpus.jsonl").unlink(), "corpus.jsonl' does not exist"),
        (lambda r: (r / "qrels" / "test.tsv").unlink(), "test.tsv' does not exist"),
        (lambda r: (r / "corpus.jsonl").write_text('{"_id": "d1"\n'), "Line 1 of"),
        (lambda r: (r / "queries.jsonl").write_text('{"text": "no id"}\n'), "has no '_id'"),
        (lambda r: (r / "qrels" / "test.tsv").write_text("q\td\tscore\nq1\td1\thigh\n"), "must be an integer"),
        (lambda r: (r / "qrels" / "test.tsv").write_text("q\td\tscore\nq9\td1\t1\n"), "not in queries.jsonl"),
    ],
)
def test_load_beir_errors_are_one_clear_sentence(tmp_path: Path, breakage, message: str) -> None:
    root = write_beir(tmp_path / "ds", [{"_id": "d1", "title": "T", "text": "x"}],
                      [{"_id": "q1", "text": "a?"}], [("q1", "d1", 1)])
    breakage(root)
    with pytest.raises(EvalDataError, match=message):
        load_beir(root)


def test_missing_folder_and_bad_units(tmp_path: Path) -> None:
    with pytest.raises(EvalDataError, match="does not exist"):
        load_beir(tmp_path / "nope")
    with pytest.raises(ConfigError, match="units='pages'"):
        evaluate_beir(tmp_path, units="pages")  # type: ignore[arg-type]


# -- retrieval ---------------------------------------------------------------------------------
def test_scifact_subset_with_default_chunking(tmp_path: Path, embedder) -> None:
    src = require_shared("beir", "scifact")
    root = scifact_subset(src, tmp_path / "scifact-subset", SUBSET_QUERIES, SUBSET_DISTRACTORS)

    result = evaluate_beir(root, settings=Settings.from_env(**PINNED), units="chunks")

    assert result["n"] == SUBSET_QUERIES
    assert result["units"] == "chunks"
    assert (result["chunk_tokens"], result["chunk_overlap"]) == (200, 32)
    assert result["indexed"] > result["documents"]  # long abstracts were cut into several chunks
    assert result["ndcg@10"] >= SUBSET_NDCG10_FLOOR, result
    assert result["recall@10"] >= SUBSET_RECALL10_FLOOR, result
    assert result["recall@10"] <= result["recall@100"]


@pytest.mark.slow
def test_scifact_whole_units_reproduce_mteb(embedder) -> None:
    root = require_shared("beir", "scifact")
    reference = json.loads(require_shared("beir", "reference", "mteb_all-MiniLM-L6-v2_SciFact.json").read_text())
    published = reference["scores"]["test"][0]
    assert round(published["ndcg_at_10"], 4) == MTEB_SCIFACT_NDCG10

    result = evaluate_beir(root, settings=Settings.from_env(retrieval_mode="dense"), units="whole")

    assert result["n"] == 300
    assert result["indexed"] == 5183
    assert abs(result["ndcg@10"] - MTEB_SCIFACT_NDCG10) <= 0.005, result
    assert abs(result["recall@100"] - published["recall_at_100"]) <= 0.01, result
