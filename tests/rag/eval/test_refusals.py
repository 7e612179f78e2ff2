"""The refusal evaluation on a small real slice of SQuAD half a, with and without distractors, and its CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag.cli import main
from rag.eval.common import EvalDataError
from rag.eval.distractors import load_distractors, wikitext_to_plain
from rag.eval.refusals import answered_elsewhere, best_threshold, evaluate_refusals
from rag.eval.squad import Question, load_squad
from rag.types import Chunk, Hit
from tests.conftest import require_shared
from tests.rag.eval.test_answers_eval import small_squad  # noqa: F401  (fixture)

WIKITEXT = ("Canton-of-Etaples.txt", "Goryeo-ware.txt")
SCIFACT = 40


@pytest.fixture(scope="module")
def distractor_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two small real wikitext articles (a directory) and a real SciFact corpus file."""
    wiki = tmp_path_factory.mktemp("distractors") / "wikitext"
    wiki.mkdir()
    for name in WIKITEXT:
        shutil.copy(require_shared("wiki", "wikitext", name), wiki / name)
    return [wiki, require_shared("beir", "scifact", "corpus.jsonl")]


def test_refusals_refuse_unanswerable_more_than_answerable(embedder, small_squad: Path) -> None:  # noqa: F811
    result = evaluate_refusals(small_squad, max_questions=24)
    print(result)
    assert result["n"] == 24
    assert result["refused_unanswerable"] >= 0.6 and result["refused_answerable"] <= 0.2
    assert result["refused_unanswerable"] > result["refused_answerable"] + 0.4
    for key in ("fitted_threshold", "heldout_refused_unanswerable", "best_threshold_all", "seconds"):
        assert key in result


def test_best_threshold() -> None:
    answerable = [float(x) for x in range(1, 21)]  # 1..20
    unanswerable = [0.5, 1.5, 2.5, 30.0]
    t, refused_unans, refused_ans = best_threshold(answerable, unanswerable, max_false=0.05)
    assert t == 2.0 and refused_ans == 0.05 and refused_unans == 0.5


def test_refusals_cli_keys(embedder, small_squad: Path) -> None:  # noqa: F811
    out = CliRunner().invoke(main, ["eval", "refusals", str(small_squad), "--max-questions", "6", "--json",
                                    "--no-progress"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    parsed = json.loads(out.stdout)
    assert {"refused_unanswerable", "refused_answerable", "n", "seconds", "refuse_below"} <= set(parsed)
    assert parsed["n"] == 6


def test_refusals_with_distractors_kept_store_and_dump(embedder, small_squad: Path, distractor_paths: list[Path],
                                                       tmp_path: Path) -> None:  # noqa: F811
    """Distractors join the store; a kept store gives the same figures on reuse; the dump has every question."""
    store, dump = tmp_path / "store", tmp_path / "rows.jsonl"
    first = evaluate_refusals(small_squad, max_questions=12, distractors=distractor_paths, distractor_limit=SCIFACT,
                              store=store, dump=dump)
    print(first)
    assert first["distractors"] == f"wikitext(2) + scifact({SCIFACT})"
    assert first["sources"] == 3 + len(WIKITEXT) + 1 and first["n"] == 12
    assert first["refused_unanswerable"] >= 0.6 and first["refused_answerable"] <= 0.2
    rows = [json.loads(line) for line in dump.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 12 and {"answerable", "unanswerable", "source", "question"} <= set(rows[0])
    assert sum(r["unanswerable"]["score"] < first["refuse_below"] for r in rows) / 12 == first["refused_unanswerable_raw"]
    clear = [r for r in rows if not r["answered_elsewhere"]]
    assert len(clear) == 12 - first["answered_elsewhere"]
    assert sum(r["unanswerable"]["score"] < first["refuse_below"] for r in clear) / len(clear) == \
        first["refused_unanswerable"]
    again = evaluate_refusals(small_squad, max_questions=12, distractors=distractor_paths, distractor_limit=SCIFACT,
                              store=store)
    for key in ("refused_unanswerable", "refused_answerable", "best_threshold_all"):
        assert again[key] == first[key]


def test_distractor_loaders_read_real_text(distractor_paths: list[Path]) -> None:
    wiki, scifact = distractor_paths
    loaded = load_distractors([wiki, scifact], limit=2500)
    assert loaded.label == "wikitext(2) + scifact(2500)"
    assert loaded.sources[:2] == ["wikitext:Canton-of-Etaples", "wikitext:Goryeo-ware"]
    assert loaded.sources[2:] == ["beir:scifact/0", "beir:scifact/1000", "beir:scifact/2000"]
    text = " ".join(d.text for d in loaded.documents if d.source.startswith("wikitext:"))
    assert "Goryeo" in text and "{{" not in text and "[[" not in text and "<ref" not in text
    assert wikitext_to_plain("'''Bold''' [[Target|label]] {{cite web|x=1}}<ref>r</ref> end") == "Bold label  end"
    with pytest.raises(EvalDataError, match="neither a directory of wikitext"):
        load_distractors([wiki / "missing"])
    out = CliRunner().invoke(main, ["eval", "refusals", "x.json", "--distractors", str(wiki / "missing")])
    assert out.exit_code != 0 and "Traceback" not in out.output


def test_answered_elsewhere_needs_the_answer_and_the_question_in_one_sentence() -> None:
    """Another article that states the answer answers the question; a bare answer word in passing does not."""
    data = load_squad(require_shared("squad", "squad-dev-v1.1-half-a.json"))
    by_text = {q.text: q for q in data.questions}
    colony = by_text["What is the name of the French colony established in 1564?"]  # Jacksonville's
    normans = by_text["What part of France were the Normans located?"]  # gold "north"
    huguenot = next(d for d in data.documents if d.source == "wikipedia:Huguenot")
    paragraph = next(p for p in huguenot.text.split("\n") if p.startswith("French Huguenots made two attempts"))
    hit = Hit(Chunk("h1", huguenot.source, paragraph, "wikipedia", "Huguenot", 0, len(paragraph), 100), 0.5)
    assert "Fort Caroline" in paragraph and "North America" in paragraph
    assert colony.source != hit.source and answered_elsewhere(colony, [hit], None) is True
    assert answered_elsewhere(normans, [hit], None) is False  # "a haven in North America"
    assert answered_elsewhere(Question("x", colony.text, ("Charlesfort",), colony.source), [hit], None) is False
