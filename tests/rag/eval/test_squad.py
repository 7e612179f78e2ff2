"""SQuAD evaluation: the loader, and answer-bearing retrieval on the first articles of half a."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.eval import EvalDataError, evaluate_squad, load_squad
from rag.eval.squad import Question, is_hit
from rag.settings import Settings
from rag.types import Chunk, Hit
from tests.rag.eval.datasets import article, write_squad

# Measured on articles 1 and 4 of squad-dev-v1.1-half-a.json (Normans, Sky (United Kingdom): 67
# paragraphs, 220 questions, 57 chunks at 200/32), per retrieval mode:
#   dense:                 hit@1 0.6818, hit@5 0.9182, hit@10 0.9682, mrr 0.7825
#   hybrid (minmax, 0.5):  hit@1 0.8773, hit@5 0.9909, hit@10 1.0,    mrr 0.9291
# The floors leave room for numeric noise (one question is 0.0045), not a regression; hybrid's
# floors also sit above dense's measured figures, so a fusion that stops helping fails.
SUBSET_ARTICLES = (1, 4)
SUBSET_QUESTIONS = 220
FLOORS = {  # hit@1, hit@5, mrr
    "dense": (0.66, 0.90, 0.76),
    "hybrid": (0.85, 0.97, 0.90),
}
PINNED = dict(chunk_tokens=200, chunk_overlap=32, fusion="minmax", keyword_weight=0.5)


def test_load_squad_one_wikipedia_document_per_article(tmp_path: Path) -> None:
    path = write_squad(tmp_path / "s.json", [
        article("Super_Bowl_50", [("First paragraph.", [("Q1?", ["First", "first"])]), ("Unasked paragraph.", [])]),
        article("Normans", [("Norman text.", [("Q2?", ["Norman"])])]),
    ])
    data = load_squad(path)
    first = data.documents[0]
    assert (first.source, first.kind, first.title) == ("wikipedia:Super Bowl 50", "wikipedia", "Super Bowl 50")
    assert first.url == "https://en.wikipedia.org/wiki/Super_Bowl_50"
    assert first.text == "First paragraph.\nUnasked paragraph."  # paragraphs without questions are indexed
    assert data.paragraphs == 3
    assert [(q.text, q.answers, q.source) for q in data.questions] == [
        ("Q1?", ("First", "first"), "wikipedia:Super Bowl 50"),
        ("Q2?", ("Norman",), "wikipedia:Normans"),
    ]
    assert len(load_squad(path, limit_articles=1).documents) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "not valid UTF-8 JSON"),
        ('{"data": []}', "no 'data' list"),
        ('{"data": [{"title": "T"}]}', "not in SQuAD's format"),
        ('{"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": []}]}]}', "no answerable questions"),
    ],
)
def test_load_squad_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "squad.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(EvalDataError, match=message):
        load_squad(path)


def _hit(source: str, text: str) -> Hit:
    return Hit(Chunk(id="x", source=source, text=text, kind="wikipedia", title="t", start=0, end=len(text),
                     tokens=3), 0.5)


def test_a_hit_needs_the_gold_article_and_an_answer_string() -> None:
    q = Question("1", "Who won?", ("Denver Broncos",), "wikipedia:Super Bowl 50")
    assert is_hit(_hit("wikipedia:Super Bowl 50", "The DENVER broncos won."), q)
    assert not is_hit(_hit("wikipedia:Normans", "The Denver Broncos won."), q)
    assert not is_hit(_hit("wikipedia:Super Bowl 50", "The Carolina Panthers lost."), q)


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_squad_subset_retrieves_answer_bearing_chunks(mode: str, squad_file: Path, tmp_path: Path, embedder) -> None:
    articles = json.loads(squad_file.read_text(encoding="utf-8"))["data"]
    subset = write_squad(tmp_path / "squad-subset.json", [articles[i] for i in SUBSET_ARTICLES])
    hit1_floor, hit5_floor, mrr_floor = FLOORS[mode]

    result = evaluate_squad(subset, settings=Settings.from_env(retrieval_mode=mode, **PINNED))

    for key in ("hit@1", "hit@5", "hit@10", "mrr", "n", "seconds", "chunk_tokens", "chunk_overlap"):
        assert key in result
    assert result["n"] == SUBSET_QUESTIONS
    assert (result["articles"], result["paragraphs"]) == (2, 67)
    assert result["retrieval_mode"] == mode
    assert result["hit@1"] >= hit1_floor, result
    assert result["hit@5"] >= hit5_floor, result
    assert result["mrr"] >= mrr_floor, result
    assert result["hit@1"] <= result["mrr"] <= result["hit@10"]
    assert result["hit@5"] <= result["hit@10"]
