"""Answer evaluations (extract, follow-ups) on a small real slice of SQuAD half a, and their CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag.cli import main
from rag.eval.answers import evaluate_extract, evaluate_followups, load_followups
from rag.eval.common import EvalDataError
from tests.conftest import ROOT

ARTICLES = 3
PARAGRAPHS = 3


@pytest.fixture(scope="module")
def small_squad(squad_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 3 paragraphs (and their questions) of the first 3 articles of SQuAD half a."""
    data = json.loads(squad_file.read_text(encoding="utf-8"))
    articles = [{"title": a["title"], "paragraphs": a["paragraphs"][:PARAGRAPHS]} for a in data["data"][:ARTICLES]]
    path = tmp_path_factory.mktemp("squad") / "small.json"
    path.write_text(json.dumps({"version": "1.1", "data": articles}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def small_followups(tmp_path_factory: pytest.TempPathFactory) -> Path:
    convs = [
        {"history": ["Who were the Normans?"], "question": "Who was the leader of the raiders they descended from?",
         "answers": ["Rollo"], "article": "Normans"},
        {"history": ["Which teams played in Super Bowl 50?"], "question": "Where was it played?",
         "answers": ["Levi's Stadium", "Santa Clara, California"], "article": "Super Bowl 50"},
    ]
    path = tmp_path_factory.mktemp("followups") / "f.json"
    path.write_text(json.dumps(convs), encoding="utf-8")
    return path


def test_extract_contains_the_answer_for_most_questions(embedder, small_squad: Path) -> None:
    result = evaluate_extract(small_squad)
    print(result)
    assert result["n"] > 30 and result["articles"] == ARTICLES and result["k"] == 10
    assert result["extract_contains_answer"] >= 0.8  # few paragraphs: retrieval is easy here
    assert result["retrieved_contains_answer"] >= result["extract_contains_answer"]
    assert result["answer_contains_answer"] <= result["extract_contains_answer"]
    assert 0 <= result["refused"] < 0.2
    # Answer-text metrics: an extract quotes whole sentences, so F1 is low but positive, EM ~0.
    assert 0 < result["f1"] < 1 and 0 <= result["em"] <= result["f1"]
    assert 10 <= result["answer_words"] <= 150 and 0 < result["sentence_precision"] <= 1
    assert result["generator"] == "extractive"
    few = evaluate_extract(small_squad, max_questions=5)
    assert few["n"] == 5


def test_answer_text_drops_markers_and_the_prefix() -> None:
    from rag.eval.answers import answer_text

    assert answer_text("From the documents: Denver won [1]. In [0, 1] it rained [2][3].") == \
        "Denver won . In it rained ."
    assert answer_text("Copenhagen [1].") == "Copenhagen ."


def test_followups_fusion_beats_the_question_alone_and_cli_keys(embedder, small_squad: Path,
                                                                small_followups: Path) -> None:
    result = evaluate_followups(small_followups, small_squad)
    print(result)
    assert result["n"] == 2 and result["method"] == "fused" and result["generator"] == "extractive"
    assert result["hit@5"] == 1.0
    assert 0 <= result["hit@5_question_alone"] <= 1 and 0 <= result["hit@5_concatenated"] <= 1
    assert 0 <= result["topic_switch_hit@5"] <= 1 and result["topic_switch_n"] > 0

    out = CliRunner().invoke(main, ["eval", "followups", str(small_followups), "--corpus", str(small_squad),
                                    "--json", "--no-progress"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    parsed = json.loads(out.stdout)
    assert {"hit@5", "hit@5_question_alone", "hit@5_concatenated", "n", "seconds"} <= set(parsed)
    assert parsed["hit@5"] == result["hit@5"]


def test_the_shipped_followups_file_is_valid_and_grounded(squad_file: Path) -> None:
    """≥30 conversations; every gold answer is a real SQuAD answer string of its article and is in its text."""
    convs = load_followups(ROOT / "data" / "eval" / "followups-squad-half-a.json")
    assert len(convs) >= 30
    articles = {a["title"].replace("_", " "): a for a in json.loads(squad_file.read_text(encoding="utf-8"))["data"]}
    for c in convs:
        article = articles[c["article"]]
        text = "\n".join(p["context"] for p in article["paragraphs"])
        gold = {a["text"].strip() for p in article["paragraphs"] for q in p["qas"] for a in q["answers"]}
        assert len(c["history"]) == 1 and c["question"].endswith("?")
        for answer in c["answers"]:
            assert answer in gold and answer in text, (c["question"], answer)


def test_bad_followups_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"question": "Who?"}]))
    with pytest.raises(EvalDataError, match="needs history, question, answers and article"):
        load_followups(bad)
