"""The extractive generator: best sentences of the retrieved chunks, cited, with the real MiniLM."""

from __future__ import annotations

import re

import pytest

from rag.generate.extractive import EXTRACT_PREFIX, ExtractiveGenerator, answer_type, matches_type
from rag.protocols import Extractor, Generator, is_extractor
from rag.types import Chunk, Hit, chunk_id

# Real text: the first paragraphs of SQuAD's "Super Bowl 50" and "Normans" articles.
SUPER_BOWL = (
    "Super Bowl 50 was an American football game to determine the champion of the National Football League (NFL) "
    "for the 2015 season. The American Football Conference (AFC) champion Denver Broncos defeated the National "
    "Football Conference (NFC) champion Carolina Panthers 24–10 to earn their third Super Bowl title. The game was "
    "played on February 7, 2016, at Levi's Stadium in the San Francisco Bay Area at Santa Clara, California. As "
    "this was the 50th Super Bowl, the league emphasized the \"golden anniversary\" with various gold-themed "
    "initiatives."
)
BROADCAST = (
    "CBS broadcast Super Bowl 50 in the U.S., and charged an average of $5 million for a 30-second commercial "
    "during the game. The Super Bowl 50 halftime show was headlined by the British rock group Coldplay with special "
    "guest performers Beyoncé and Bruno Mars."
)
NORMANS = (
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region in "
    "France. They were descended from Norse raiders and pirates from Denmark, Iceland and Norway who, under their "
    "leader Rollo, agreed to swear fealty to King Charles III of West Francia."
)


def hit(text: str, title: str, score: float) -> Hit:
    return Hit(Chunk(id=chunk_id(title, None, None, 0, text), source=f"wikipedia:{title}", text=text,
                     kind="wikipedia", title=title, start=0, end=len(text), tokens=0), score)


HITS = [hit(SUPER_BOWL, "Super Bowl 50", 0.55), hit(NORMANS, "Normans", 0.2), hit(BROADCAST, "Super Bowl 50", 0.45)]


@pytest.fixture(scope="module")
def gen(embedder) -> ExtractiveGenerator:
    return ExtractiveGenerator(embedder)


def test_is_an_extractor_named_extractive(gen) -> None:
    # Handed the hits, never a prompt: an Extractor, not a Generator (no stream to parse a prompt back).
    assert isinstance(gen, Extractor) and is_extractor(gen) and not isinstance(gen, Generator)
    assert gen.name == "extractive" and gen.prompt_format is None


@pytest.mark.parametrize(("question", "answer", "source"), [
    ("Who headlined the Super Bowl 50 halftime show?", "Coldplay", 2),
    ("In which stadium was Super Bowl 50 played?", "Levi's Stadium", 0),
    ("Which network broadcast Super Bowl 50 in the U.S.?", "CBS", 2),
    ("Who was the leader of the Norse raiders?", "Rollo", 1),
])
def test_best_sentence_holds_the_answer(gen, question: str, answer: str, source: int) -> None:
    best = gen.select(question, HITS)[0]
    assert answer in best.text and best.hit == source


def test_compose_quotes_up_to_three_sentences_each_cited(gen) -> None:
    sentences = gen.select("Who won Super Bowl 50 and what was the score?", HITS)
    assert 1 <= len(sentences) <= 3
    assert [s.score for s in sentences] == sorted((s.score for s in sentences), reverse=True)
    text = gen.compose(sentences)
    assert text.startswith(EXTRACT_PREFIX + " ")
    for s in sentences:
        assert f"{s.text} [{s.hit + 1}]" in text
    assert "24–10" in text


def test_the_answer_to_a_known_question_is_the_one_sentence_that_holds_it(gen) -> None:
    # The best sentence is sure enough that nothing joins it.
    sentences = gen.select("Which network broadcast Super Bowl 50 in the U.S.?", HITS)
    assert len(sentences) == 1 and "CBS" in sentences[0].text and sentences[0].hit == 2
    assert sentences[0].probability > 0.5


def test_a_runner_up_joins_only_while_it_is_probable(embedder) -> None:
    question = "Who won Super Bowl 50 and what was the score?"
    ranked = ExtractiveGenerator(embedder).rank(question, HITS)
    assert abs(sum(s.probability for s in ranked) - 1) < 1e-6
    assert [s.probability for s in ranked] == sorted((s.probability for s in ranked), reverse=True)
    assert len(ExtractiveGenerator(embedder, add_sentence=0.0).select(question, HITS)) == 3
    # (short_answer=0: the runner-up rule alone, without completing a short answer)
    assert len(ExtractiveGenerator(embedder, add_sentence=1.01, short_answer=0).select(question, HITS)) == 1
    second = ranked[1].probability
    picked = ExtractiveGenerator(embedder, add_sentence=second, short_answer=0).select(question, HITS)
    assert [s.text for s in picked][:2] == [s.text for s in ranked[:2]]


def test_an_unknown_weight_is_refused(embedder) -> None:
    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown sentence features"):
        ExtractiveGenerator(embedder, weights={"cosnie": 1.0})


def test_a_sentence_repeated_in_overlapping_chunks_counts_once(gen) -> None:
    overlap = hit(BROADCAST.split(". ")[1], "Super Bowl 50", 0.44)  # the halftime sentence again
    texts = [s.text for s in gen.rank("Who headlined the halftime show?", [*HITS, overlap])]
    assert len(texts) == len({t.lower() for t in texts})


def test_no_hits_no_sentences(gen) -> None:
    assert gen.select("Anything?", []) == [] and gen.compose([]) == ""


def test_answer_is_the_composed_extract_of_the_hits(gen) -> None:
    text = gen.answer("Who headlined the Super Bowl 50 halftime show?", HITS)
    assert text.startswith(EXTRACT_PREFIX) and "Coldplay" in text and "[3]" in text


@pytest.mark.parametrize(("question", "kind"), [
    ("When was the game played?", "date"),
    ("In what year did the Normans invade?", "date"),
    ("How many people live in Fresno?", "number"),
    ("Who won Super Bowl 50?", "person"),
    ("Where is Normandy?", "place"),
    ("What is the mace made of?", None),
])
def test_answer_type(question: str, kind: str | None) -> None:
    assert answer_type(question) == kind


def test_matches_type() -> None:
    assert matches_type("date", "It opened on February 9, 1832.", set())
    assert not matches_type("date", "It opened long ago.", set())
    assert matches_type("number", "Three cathedrals stand there.", set())
    assert matches_type("person", "The prize went to Rollo.", {"who", "won"})
    assert matches_type("place", "The game was played at Levi's Stadium.", {"where", "game"})
    assert not matches_type("place", "The game was played by the Broncos.", {"where", "game"})
    assert not matches_type("person", "The prize went to Rollo.", {"rollo"})  # the question already names him


def test_a_table_answers_with_its_matching_row_and_header(embedder, pdf_dir) -> None:
    """"What is the capital of Denmark?" over the two-column table PDF: the row, not the whole table."""
    from ingest.chunk import chunk_documents
    from ingest.pdf import read_pdf
    from rag.types import Hit

    chunks = chunk_documents(read_pdf(next(pdf_dir.rglob("026-*.pdf"))), embedder.token_offsets)
    hits = [Hit(c, 0.5 if c.page == 3 else 0.1) for c in chunks]
    best = ExtractiveGenerator(embedder).select("What is the capital of Denmark?", hits)[0]
    assert best.text == ("Country Population (millions) Area (km2) Capital Official Language: "
                         "Denmark 5.8 42,951 Copenhagen Danish")


def test_a_runner_up_of_the_best_sentence_s_own_chunk_needs_only_a_share_of_the_bar(embedder) -> None:
    from rag.generate.extractive import ADD_SENTENCE, SAME_CHUNK

    assert 0 < SAME_CHUNK < 1 and 0 < ADD_SENTENCE < 1
    question = "Who won Super Bowl 50 and what was the score?"
    ranked = ExtractiveGenerator(embedder).rank(question, HITS)
    best = ranked[0]
    same = next(s for s in ranked[1:] if s.hit == best.hit)
    other = next(s for s in ranked[1:] if s.hit != best.hit)
    # A bar above both runners-up: with no same-chunk discount nothing joins the best sentence.
    bar = max(same.probability, other.probability) * 1.01
    alone = ExtractiveGenerator(embedder, add_sentence=bar, same_chunk=1.0, short_answer=0).select(question, HITS)
    assert [s.text for s in alone] == [best.text]
    # Discounted for its own chunk, the same-chunk runner-up clears it; the other chunk's does not.
    share = same.probability / bar
    picked = ExtractiveGenerator(embedder, add_sentence=bar, same_chunk=share, short_answer=0).select(question, HITS)
    assert same.text in [s.text for s in picked] and all(s.hit == best.hit for s in picked)
    assert other.text not in [s.text for s in picked]


@pytest.fixture(scope="module")
def super_bowl_rag(embedder, tmp_path_factory):
    """A real on-disk store holding SQuAD half-a's "Super Bowl 50" article, as `rag ingest` indexes it."""
    from ingest.index import SourceJob
    from rag import RAG
    from rag.eval.squad import load_squad
    from tests.conftest import require_shared

    data = load_squad(require_shared("squad", "squad-dev-v1.1-half-a.json"), limit_articles=1)
    rag = RAG(tmp_path_factory.mktemp("super-bowl-store"))
    rag.ingest([SourceJob(d.source, lambda d=d: [d]) for d in data.documents])
    return rag


def test_over_a_real_store_the_answer_s_own_passage_completes_an_unsure_extract(super_bowl_rag) -> None:
    """The best sentence names WBT's sister station; its neighbour in the same chunk holds the frequency."""
    from rag.eval.answers import answer_text

    question = "What is the frequency of the radio station WBT in North Carolina?"
    answer = super_bowl_rag.ask(question)
    assert not answer.refused and "1110 AM" in answer.text
    markers = re.findall(r"\[(\d+)\]", answer.text)
    assert len(markers) >= 2 and set(markers) == {"1"}  # every sentence quotes the one passage
    assert [c.number for c in answer.citations] == [1] and answer.citations[0].supported
    # Without the same-chunk discount (nor the short-answer neighbour) the runner-up stays out and
    # the answer is lost.
    rag = super_bowl_rag
    strict = ExtractiveGenerator(rag.embedder, same_chunk=1.0, short_answer=0)
    found = rag.answerer.retrieve(question)
    text = answer_text(strict.compose(strict.select(question, found.hits)))
    assert "1110 AM" not in text and "WBT-FM" in text


def test_completed_adds_the_best_sentence_s_next_neighbour_in_its_chunk_to_a_short_answer() -> None:
    from rag.generate.extractive import completed

    # Positions 0-2 are one chunk's sentences, 3-4 another's.
    words, chunks = {0: 6, 1: 9, 2: 12, 3: 5, 4: 30}, {0: 0, 1: 0, 2: 0, 3: 1, 4: 1}
    assert completed([1], words, chunks, short=20) == [1, 2]      # the next sentence first
    assert completed([2], words, chunks, short=20) == [2, 1]      # the chunk's last: the one before
    assert completed([3], words, chunks, short=20) == [3, 4]
    assert completed([1, 2], words, chunks, short=22) == [1, 2, 0]  # 21 words: 2 is in, so the one before
    assert completed([1, 2], words, chunks, short=21) == [1, 2]     # 21 words are not short of 21
    assert completed([4], words, chunks, short=20) == [4]          # long enough already
    assert completed([1], {1: 9, 0: 6}, {1: 0, 0: 0}, short=20) == [1, 0]  # 2 said earlier: absent
    assert completed([1], words, chunks, short=20, most=1) == [1]
    assert completed([], words, chunks) == []
    assert completed([1], words, chunks, short=0) == [1]


def test_a_short_best_sentence_is_completed_by_its_neighbour_in_the_chunk(embedder) -> None:
    """The two sentences of the broadcast chunk: each one's neighbour is the other."""
    cbs, halftime = (s.strip() + ("." if not s.endswith(".") else "") for s in BROADCAST.split(". "))
    for question, best, near in [("Which network broadcast Super Bowl 50 in the U.S.?", cbs, halftime),
                                 ("Who headlined the Super Bowl 50 halftime show?", halftime, cbs)]:
        alone = ExtractiveGenerator(embedder, add_sentence=1.01, short_answer=0).select(question, HITS)
        assert [s.text for s in alone] == [best]
        words = len(best.split())
        kept = ExtractiveGenerator(embedder, add_sentence=1.01, short_answer=words).select(question, HITS)
        assert [s.text for s in kept] == [best]  # not shorter than the bar: alone
        completed = ExtractiveGenerator(embedder, add_sentence=1.01, short_answer=words + 1).select(question, HITS)
        assert [s.text for s in completed] == [best, near] and {s.hit for s in completed} == {2}


def test_a_follow_up_skips_what_an_earlier_answer_answered_with_but_not_what_completed_it(embedder) -> None:
    """An earlier answer's first sentence is not said again; the neighbour that completed it may be."""
    cbs, halftime = (s.strip() + ("." if not s.endswith(".") else "") for s in BROADCAST.split(". "))
    gen = ExtractiveGenerator(embedder, add_sentence=1.01, short_answer=0)
    question = "Who headlined the Super Bowl 50 halftime show?"
    assert [s.text for s in gen.select(question, HITS)] == [halftime]
    completed_before = f"{EXTRACT_PREFIX} {cbs} [3] {halftime} [3]"
    assert [s.text for s in gen.select(question, HITS, exclude=[completed_before])] == [halftime]
    answered_before = f"{EXTRACT_PREFIX} {halftime} [3] {cbs} [3]"
    again = gen.select(question, HITS, exclude=[answered_before])
    assert again and halftime not in [s.text for s in again]
