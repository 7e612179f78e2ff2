"""Refusals end to end: real MiniLM, real Chroma and BM25, SQuAD text, with and without distractors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag import RAG
from rag.eval.distractors import beir_documents, wikitext_documents
from rag.prompt import NO_ANSWER
from rag.refuse import (ANSWER_CANDIDATES, ANSWERABLE_WEIGHT, CHUNK_COVERAGE_WEIGHT, CHUNK_WEIGHT, COVERAGE_WEIGHT,
                         EVIDENCE_DEPTH, PHRASE_WEIGHT, SENTENCE_WEIGHT, answerability, assess, closest_sentences,
                         frequencies_for, phrase_share, question_words, score_of, sentence_cosines)
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
        cosines = sentence_cosines(answerer.passages, hits, answerer.vector(q))
        return assess(q, hits, freq, cosines, phrase_share(q, hits, answerer.passages, answerer.vector(q)),
                      answerability(q, hits, answerer.passages, cosines, answerer.reader))

    assert evidence(hits) == evidence(hits[:EVIDENCE_DEPTH])
    assert evidence(hits) != evidence(hits[1:])  # the best chunk does count
    assert evidence([]).score == float("-inf")
    best = evidence(hits)
    assert -1 <= best.sentence <= 1 and 0 <= best.coverage <= best.chunk_coverage <= 1
    assert best.score == pytest.approx(SENTENCE_WEIGHT * best.sentence + CHUNK_WEIGHT * best.chunk
                                       + COVERAGE_WEIGHT * best.coverage + CHUNK_COVERAGE_WEIGHT * best.chunk_coverage
                                       + PHRASE_WEIGHT * best.phrases + ANSWERABLE_WEIGHT * best.answerable)
    assert answerer.assess(answerer.retrieve(q)) == best


def test_closest_sentences_are_the_distinct_nearest_with_their_titles() -> None:
    texts = [["a.", "b.", "c."], ["b.", "d."], ["e."]]
    cosines = [[0.1, 0.9, 0.3], [0.8, 0.7], [0.5, 0.6]]  # the third hit's cosines do not match: skipped
    assert closest_sentences(texts, ["T1", "T2", "T3"], cosines, most=3) == [("T1", "b."), ("T2", "d."), ("T1", "c.")]
    assert closest_sentences(texts, ["T1", "T2", "T3"], cosines)[-1] == ("T1", "a.")  # every distinct one, under 8
    assert closest_sentences([], [], []) == []


def test_the_answerability_reader_tells_an_answer_from_on_topic_text(distracted: RAG) -> None:
    """The reader's best logit is high when a sentence says what was asked, low for text on the topic that does not.

    With the Super Bowl article left out, the question still lands on sports and American text
    (nothing in the store says who the Broncos beat); the reader, not the cosines, marks it.
    """
    answerer = distracted.answerer
    everything = [s.source for s in distracted.sources()]
    q = "Who did the Denver Broncos defeat in Super Bowl 50?"
    own = answerer.assess(answerer.retrieve(q))
    others = [s for s in everything if s != "wikipedia:Super Bowl 50"]
    without = answerer.assess(answerer.retrieve(q, sources=others), sources=others)
    assert own.answerable > 0 > without.answerable, (own, without)


def test_the_answerer_reads_with_the_reader_it_is_given(squad_rag: RAG) -> None:
    """The reader is a CrossEncoder like any other: the evidence holds its best logit, weighted in the score."""
    from rag.answer import Answerer

    class Constant:
        def __init__(self, logit: float) -> None:
            self.logit, self.read = logit, []

        def score(self, question: str, candidates):
            self.read.append(list(candidates))
            return np.full(len(candidates), self.logit)

    base = squad_rag.answerer
    q = "Who was the leader of the Norse raiders?"
    found = base.retrieve(q)
    scores = {}
    for logit in (-4.0, 4.0):
        reader = Constant(logit)
        e = Answerer(base.retriever, base.generator, base.settings, base.embedder, reader=reader).assess(found)
        assert e.answerable == logit and 0 < len(reader.read[0]) <= ANSWER_CANDIDATES
        assert all(title and text for title, text in reader.read[0])
        scores[logit] = e.score
    assert scores[4.0] - scores[-4.0] == pytest.approx(8 * ANSWERABLE_WEIGHT)


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



def test_phrases_are_the_extract_rankers_word_pairs_and_the_dump_rescores(distracted: RAG, squad_file: Path,
                                                                         corpus: list[Document]) -> None:  # noqa: F811
    """In a store with distractors: the phrase share is the ranker's ``bigrams``, and dumped fields give the score back.

    ``bench.refusal_table`` refits the rule on ``rag eval refusals --dump`` rows by recomputing
    :func:`rag.refuse.score_of` from them, so the dump must hold every number the score reads.
    """
    from rag.generate.sentence_features import FEATURES, candidate_features
    from rag.generate.sentence_features import sentence_cosines as chunk_cosines

    everything = [s.source for s in distracted.sources()]
    answerer = distracted.answerer
    column = FEATURES.index("bigrams")
    seen = []
    for q, src in _questions(squad_file, corpus)[::ASKED // 2]:
        for sources in (None, [s for s in everything if s != src]):
            found = answerer.retrieve(q, sources=sources)
            e = answerer.assess(found, sources=sources)
            assert e.score == pytest.approx(score_of(e))
            assert score_of(Evidence(**e.as_dict())) == pytest.approx(e.score)
            hits = found.hits[:EVIDENCE_DEPTH]
            chunks = [(t, *chunk_cosines(v, answerer.vector(q))) for t, v in answerer.passages.many(hits)]
            ranked = candidate_features(q, chunks, [h.score for h in hits])
            assert e.phrases == max(c.features[column] for c in ranked)
            seen.append(e.phrases)
    assert all(0 <= x <= 1 for x in seen) and max(seen) > min(seen)
    # Of its 7 word pairs, its own article holds "Denver Broncos", "Super Bowl" and "Bowl 50" in
    # one sentence or another; Wikipedia and SciFact text on other things holds at most one.
    q = "Who did the Denver Broncos defeat in Super Bowl 50?"
    own = answerer.assess(answerer.retrieve(q), sources=None)
    others = [s for s in everything if not s.startswith("wikipedia:")]
    elsewhere = answerer.assess(answerer.retrieve(q, sources=others), sources=others)
    assert own.phrases >= 2 / 7 > elsewhere.phrases
