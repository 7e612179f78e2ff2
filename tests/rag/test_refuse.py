"""Refusals end to end: real MiniLM, real Chroma and BM25, SQuAD text, with and without distractors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag import RAG
from rag.eval.distractors import beir_documents, wikitext_documents
from rag.prompt import NO_ANSWER
from rag.refuse import (CHUNK_COVERAGE_WEIGHT, CHUNK_WEIGHT, COVERAGE_WEIGHT, EVIDENCE_DEPTH, SENTENCE_WEIGHT,
                         assess, frequencies_for, question_names, question_words, score_of, sentence_cosines)
from rag.settings import REFUSE_BELOW
from rag.types import Document, Evidence
from tests.conftest import require_shared
from tests.rag.test_answer import UNRELATED, corpus, store_dir  # noqa: F401  (fixtures)

WIKITEXT = ("Canton-of-Etaples.txt", "Goryeo-ware.txt", "History-of-rugby-union-matches-between-Scotland-and-Wales.txt")
SCIFACT = 150  # abstracts
ASKED = 12  # questions per indexed article, spread over its first paragraphs


@pytest.fixture
def squad_rag(store_dir: Path) -> RAG:  # noqa: F811
    return RAG(store_dir)


@pytest.fixture(scope="module")
def distracted(embedder, corpus: list[Document], tmp_path_factory: pytest.TempPathFactory) -> RAG:  # noqa: F811
    """The three SQuAD articles' first paragraphs, plus real Wikipedia and SciFact text that answers none of them."""
    from ingest.index import SourceJob

    wiki = require_shared("wiki", "wikitext")
    docs = list(corpus) + [d for name in WIKITEXT for d in wikitext_documents(wiki / name)]
    docs += beir_documents(require_shared("beir", "scifact", "corpus.jsonl"), SCIFACT)
    by_source: dict[str, list[Document]] = {}
    for d in docs:
        by_source.setdefault(d.source, []).append(d)
    rag = RAG(tmp_path_factory.mktemp("distracted") / "data")
    rag.ingest([SourceJob(src, lambda ds=ds: ds) for src, ds in by_source.items()])
    return rag


def _questions(squad_file: Path, corpus: list[Document]) -> list[tuple[str, str]]:  # noqa: F811
    """(question, article source) for questions whose paragraph is indexed, ASKED per article."""
    data = json.loads(squad_file.read_text(encoding="utf-8"))
    out = []
    for doc, article in zip(corpus, data["data"]):
        indexed = set(doc.text.split("\n"))
        qs = [qa["question"] for p in article["paragraphs"] if p["context"].strip() in indexed for qa in p["qas"]]
        step = max(len(qs) // ASKED, 1)
        out += [(q, doc.source) for q in qs[::step][:ASKED]]
    return out


# -- moved from tests/rag/test_answer.py ---------------------------------------------------------
@pytest.mark.parametrize("question", UNRELATED)
def test_refuses_what_the_documents_do_not_answer(squad_rag: RAG, question: str) -> None:
    answer = squad_rag.ask(question)
    assert answer.refused is True and answer.text == NO_ANSWER
    assert answer.citations == [] and len(answer.sources) == squad_rag.settings.top_k  # what was closest


def test_the_refusal_threshold_separates_these_questions(squad_rag: RAG) -> None:
    """The calibrated threshold has teeth: related questions clear it, unrelated ones do not."""
    answerer = squad_rag.answerer
    related = [answerer.evidence(answerer.retrieve(q)) for q in (
        "Who did the Denver Broncos defeat in Super Bowl 50?", "Who was the leader of the Norse raiders?",
        "What does computational complexity theory classify?")]
    unrelated = [answerer.evidence(answerer.retrieve(q)) for q in UNRELATED]
    assert min(related) > REFUSE_BELOW > max(unrelated), (related, unrelated)
    assert RAG(squad_rag.settings.data_dir, refuse_below=-10.0).ask(UNRELATED[0]).refused is False


def test_evidence_is_judged_on_the_best_chunks_only(squad_rag: RAG) -> None:
    hits = squad_rag.search("Who was the leader of the Norse raiders?", 10)
    q = "Who was the leader of the Norse raiders?"
    freq = frequencies_for(squad_rag.store)
    answerer = squad_rag.answerer

    def evidence(hits: list) -> Evidence:
        return assess(q, hits, freq, sentence_cosines(answerer.passages, hits, answerer.vector(q)))

    assert evidence(hits) == evidence(hits[:EVIDENCE_DEPTH])
    assert evidence(hits) != evidence(hits[1:])  # the best chunk does count
    assert evidence([]).score == float("-inf")
    best = evidence(hits)
    assert -1 <= best.sentence <= 1 and 0 <= best.coverage <= best.chunk_coverage <= 1
    assert best.score == pytest.approx(SENTENCE_WEIGHT * best.sentence + CHUNK_WEIGHT * best.chunk
                                       + COVERAGE_WEIGHT * best.coverage + CHUNK_COVERAGE_WEIGHT * best.chunk_coverage)
    assert answerer.assess(answerer.retrieve(q)) == best


# -- with distractors ------------------------------------------------------------------------------
def test_refusals_hold_in_a_store_with_distractors(distracted: RAG, squad_file: Path,
                                                   corpus: list[Document]) -> None:  # noqa: F811
    """Questions about an indexed article are answered; the same questions with that article left out are refused."""
    everything = [s.source for s in distracted.sources()]
    assert len(everything) > len(corpus) + len(WIKITEXT)  # SciFact blocks too
    asked = _questions(squad_file, corpus)
    assert len(asked) == ASKED * len(corpus)
    answered = [not distracted.ask(q).refused for q, _ in asked]
    refused = [distracted.ask(q, sources=[s for s in everything if s != src]).refused for q, src in asked]
    print(sum(answered), sum(refused), len(asked))
    assert sum(answered) >= len(asked) - 2, [q for (q, _), ok in zip(asked, answered) if not ok]
    assert sum(refused) >= len(asked) - 3, [q for (q, _), ok in zip(asked, refused) if not ok]


def test_document_frequencies_follow_the_searched_sources(distracted: RAG) -> None:
    """The rare-word weights come from the scope searched: a word only the left-out article has counts 0."""
    freq = frequencies_for(distracted.store, ["wikipedia:Normans", "wikipedia:Computational complexity theory"])
    words = question_words("Who did the Denver Broncos defeat in Super Bowl 50?")
    assert set(words) == {"denver", "bronco", "defeat", "super", "bowl", "50"}
    chunks, df = freq(list(words.values()))
    assert chunks > 0 and df["broncos"] == 0 and df["denver"] == 0
    everything, df_all = frequencies_for(distracted.store)(list(words.values()))
    assert everything > chunks and df_all["broncos"] > 0



def test_every_measurement_of_the_evidence_is_real_and_rescores_to_the_score(distracted: RAG, squad_file: Path,
                                                                          corpus: list[Document]) -> None:  # noqa: F811
    """In a store with distractors: each Evidence field is measured, and the dumped fields give back the score.

    ``bench.refusal_table`` refits the rule on ``rag eval refusals --dump`` rows by recomputing
    :func:`rag.refuse.score_of` from them, so the dump must hold every number the score reads.
    """
    from rag.generate.extractive import ExtractiveGenerator

    everything = [s.source for s in distracted.sources()]
    answerer = distracted.answerer
    ranker = ExtractiveGenerator(distracted.embedder)
    for q, src in _questions(squad_file, corpus)[::ASKED // 2]:
        for sources in (None, [s for s in everything if s != src]):
            found = answerer.retrieve(q, sources=sources)
            e = answerer.assess(found, sources=sources)
            assert e.score == pytest.approx(score_of(e))
            assert score_of(Evidence(**e.as_dict())) == pytest.approx(e.score)
            assert 0 <= e.names_missing <= 1 and e.type_missing in (0.0, 1.0) and 0 < e.rarest <= 1
            best = ranker.rank(q, found.hits[:EVIDENCE_DEPTH], question_vector=answerer.vector(q))[0]
            assert e.ranker == pytest.approx(best.score)
    # A name the store never holds is missing; one the evidence holds is not.
    missing = answerer.assess(answerer.retrieve("Who coached the Broncos in Ulaanbaatar?"))
    held = answerer.assess(answerer.retrieve("Who did the Denver Broncos defeat in Super Bowl 50?"))
    assert missing.names_missing == pytest.approx(0.5) and held.names_missing == 0.0


def test_names_and_answer_types_the_evidence_lacks() -> None:
    assert question_names("How many people died of plague in Baghdad in 1,348?") == [["baghdad"], ["1", "348"]]
    assert question_names("Who led New France reinforcements in 1756?") == [["new"], ["france"], ["1756"]]
    assert question_names("When did the game start?") == []
    from rag.types import Chunk, Hit

    def hit(text: str) -> Hit:
        return Hit(Chunk("c", "wikipedia:Super Bowl 50", text, "text", "Super Bowl 50", 0, len(text), 0), 0.6)

    q = "When was Super Bowl 50 played?"
    undated = hit("Super Bowl 50 was an American football game. It was played at Levi's Stadium.")
    dated = hit("Super Bowl 50 was an American football game. It was played on February 7, 2016.")
    # The best sentence (cosine + half its coverage) is the second one in both chunks.
    assert assess(q, [undated], None, [[0.3, 0.6]]).type_missing == 1.0
    assert assess(q, [dated], None, [[0.3, 0.6]]).type_missing == 0.0
    assert assess("Who played in Super Bowl 50?", [undated], None, [[0.3, 0.6]]).type_missing == 0.0
    assert assess(q, [undated], None, [[0.3, 0.6]]).names_missing == 0.0
    # "Super" and "Bowl" are held, "51" and "Houston" are not.
    assert assess("When was Super Bowl 51 played in Houston?", [undated], None, [[0.3, 0.6]]).names_missing == 0.5
