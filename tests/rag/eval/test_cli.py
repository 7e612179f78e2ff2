"""`rag eval beir|squad` through click: one JSON object on stdout, a table without --json, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from rag.cli import main
from tests.rag.eval.datasets import article, write_beir, write_squad

CORPUS = [
    {"_id": "eiffel", "title": "Eiffel Tower",
     "text": "The Eiffel Tower is a wrought-iron lattice tower in Paris, France."},
    {"_id": "python", "title": "Python",
     "text": "Python is a programming language created by Guido van Rossum."},
    {"_id": "insulin", "title": "Insulin",
     "text": "Insulin is a hormone made by the pancreas that lowers blood sugar."},
    {"_id": "everest", "title": "Mount Everest",
     "text": "Mount Everest is Earth's highest mountain, in the Himalayas."},
    {"_id": "volcano", "title": "Volcano",
     "text": "A volcano is a rupture in the crust through which lava erupts."},
]
QUERIES = [
    {"_id": "q1", "text": "Which city has the Eiffel Tower?"},
    {"_id": "q2", "text": "Who created the Python programming language?"},
    {"_id": "q3", "text": "What hormone lowers blood sugar?"},
]
QRELS = [("q1", "eiffel", 1), ("q2", "python", 1), ("q3", "insulin", 2)]


def test_eval_beir_json_is_one_object_with_the_metric_keys(tmp_path: Path, embedder) -> None:
    root = write_beir(tmp_path / "tiny", CORPUS, QUERIES, QRELS)

    result = CliRunner().invoke(main, ["eval", "beir", str(root), "--json", "--units", "whole", "--k", "1,3"])

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)  # progress bars went to stderr: stdout is exactly one object
    for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10", "n", "seconds", "units", "k",
                "ndcg@1", "recall@3"):
        assert key in out, key
    assert out["n"] == 3
    assert out["units"] == "whole"
    assert out["k"] == [1, 3, 10, 100]
    # Five unrelated topics: every query's document must come first.
    assert out["ndcg@10"] == 1.0
    assert out["mrr@1"] == 1.0
    assert "Querying" in result.stderr


def test_eval_beir_table_and_chunk_options(tmp_path: Path, embedder) -> None:
    root = write_beir(tmp_path / "tiny", CORPUS, QUERIES, QRELS)

    result = CliRunner().invoke(main, ["eval", "beir", str(root), "--chunk-tokens", "64", "--chunk-overlap", "8",
                                       "--no-progress"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "BEIR tiny (chunks)"
    assert any(line.split() == ["ndcg@10", "1.0000"] for line in lines), result.stdout
    assert any(line.split() == ["chunk_tokens", "64"] for line in lines), result.stdout
    assert result.stderr == ""


def test_eval_beir_keyword_mode_goes_through_the_retriever(tmp_path: Path, embedder) -> None:
    root = write_beir(tmp_path / "tiny", CORPUS, QUERIES, QRELS)

    result = CliRunner().invoke(main, ["eval", "beir", str(root), "--json", "--retrieval-mode", "keyword",
                                       "--no-progress"])

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["retrieval_mode"], out["units"]) == ("keyword", "chunks")
    # Each query shares words only with its own document ("Eiffel Tower", "Python", "blood sugar").
    assert out["ndcg@10"] == 1.0


def test_eval_squad_json(tmp_path: Path, embedder) -> None:
    path = write_squad(tmp_path / "tiny-squad.json", [
        article("Eiffel_Tower", [("The Eiffel Tower was completed in 1889 for the World's Fair.",
                                  [("When was the Eiffel Tower completed?", ["1889"])])]),
        article("Insulin", [("Insulin is produced by beta cells of the pancreatic islets.",
                             [("Which cells produce insulin?", ["beta cells"])]),
                            ("An unasked paragraph about diabetes treatment.", [])]),
    ])

    result = CliRunner().invoke(main, ["eval", "squad", str(path), "--json", "--chunk-tokens", "128"])

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    for key in ("hit@1", "hit@5", "hit@10", "mrr", "n", "seconds", "chunk_tokens", "chunk_overlap"):
        assert key in out, key
    assert (out["n"], out["chunk_tokens"], out["articles"]) == (2, 128, 2)
    assert out["hit@1"] == out["mrr"] == 1.0


def test_eval_errors_are_one_line_and_exit_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["eval", "beir", str(tmp_path / "missing"), "--json"])
    assert result.exit_code == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.output
    assert result.stdout == ""

    result = CliRunner().invoke(main, ["eval", "squad", str(tmp_path / "missing.json")])
    assert result.exit_code == 1
    assert "The SQuAD file" in result.stderr

    result = CliRunner().invoke(main, ["eval", "beir", str(tmp_path), "--chunk-tokens", "999"])
    assert result.exit_code == 1
    assert "chunk_tokens=999 is out of range" in result.stderr

    result = CliRunner().invoke(main, ["eval", "beir", str(tmp_path), "--k", "0"])
    assert result.exit_code == 2
    assert "--k" in result.stderr
