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
    result = evaluate_extract(small_squad, max_questions=50)  # of 102, spread over the 9 paragraphs
    print(result)
    assert result["n"] == 50 and result["articles"] == ARTICLES and result["k"] == 10
    assert result["extract_contains_answer"] >= 0.8  # few paragraphs: retrieval is easy here
    assert result["retrieved_contains_answer"] >= result["extract_contains_answer"]
    assert result["answer_contains_answer"] <= result["extract_contains_answer"]
    assert 0 <= result["refused"] < 0.2
    # Answer-text metrics: an extract quotes whole sentences, so F1 is low but positive, EM ~0.
    assert 0 < result["f1"] < 1 and 0 <= result["em"] <= result["f1"]
    assert 10 <= result["answer_words"] <= 150 and 0 < result["sentence_precision"] <= 1
    assert result["generator"] == "extractive"
    assert result["sentences_cited"] == 1.0 and result["sentences_supported"] == 1.0  # quoted, each cited
    few = evaluate_extract(small_squad, max_questions=5)
    assert few["n"] == 5


def test_a_language_model_is_scored_through_the_whole_answer_with_its_citations(embedder, small_squad: Path,
                                                                                 server) -> None:
    """Over an OpenAI-compatible server: a quoted sentence cited right, one cited to a source that
    does not say it, one unmarked that no source supports (so it stays uncited)."""
    import re

    from rag.cite import chunk_sentences
    from rag.settings import Settings
    from tests.fakes.openai_server import completion

    def reply(body: dict) -> tuple[int, str, bytes]:
        user = body["messages"][-1]["content"]
        blocks = re.findall(r"^\[(\d+)\] [^\n]*\n<<<(\w+)\n(.*?)\n\2>>>", user, re.S | re.M)
        number, _, text = blocks[0]
        first = chunk_sentences(text)[0].rstrip(".")  # a sentence as the support check splits them
        wrong = 2 if len(blocks) > 1 else 1
        words = f"{first} [{number}]. Bananas are yellow and sweet in every season [{wrong}]. Kiwis are brown inside."
        return 200, "text/event-stream", completion([w + " " for w in words.split(" ")])

    server.reply = reply
    result = evaluate_extract(small_squad, settings=Settings(llm=f"openai:{server.url}#tiny"), max_questions=6)
    print(result)
    assert result["generator"] == f"openai:tiny@{server.url}" and result["n"] == 6
    answered = 1 - result["refused"]
    assert answered > 0
    # three sentences per answer: two carry a marker, and only the quoted one is supported (per
    # sentence: with one source packed, both markers name it, and its citation is flagged)
    assert result["sentences_cited"] == pytest.approx(2 / 3) and result["sentences_supported"] == pytest.approx(1 / 3)


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
