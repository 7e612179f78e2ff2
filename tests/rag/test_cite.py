"""Citations: marker parsing, dropping, renumbering, links, and the MiniLM support check."""

from __future__ import annotations

import pytest

from rag.cite import PassageVectors, cite, renumber, source_label, source_link, split_sentences
from rag.settings import SUPPORT_BELOW
from rag.types import Chunk, Hit, chunk_id


def hit(text: str, *, title: str = "Doc", source: str | None = None, url: str | None = None,
        section: str | None = None, page: int | None = None, kind: str = "text", score: float = 0.5) -> Hit:
    source = source or title
    return Hit(Chunk(id=chunk_id(source, section, page, 0, text), source=source, text=text, kind=kind,  # type: ignore[arg-type]
                     title=title, start=0, end=len(text), tokens=0, url=url, section=section, page=page), score)


HITS = [hit(f"Source number {i}.", title=f"T{i}") for i in range(1, 6)]


def test_renumbers_in_order_of_first_use_and_keeps_list_style() -> None:
    text, cited = renumber("Alpha [3]. Beta [1, 3]. Gamma [5][3]. Delta [3].", HITS)
    assert text == "Alpha [1]. Beta [2, 1]. Gamma [3][1]. Delta [1]."
    assert [h.title for h in cited] == ["T3", "T1", "T5"]


def test_drops_markers_that_point_to_no_source() -> None:
    text, cited = renumber("Alpha [7]. Beta [0, 2]. Gamma [2; 9] and [12][4].", HITS)
    assert text == "Alpha. Beta [1]. Gamma [1] and [2]."
    assert [h.title for h in cited] == ["T2", "T4"]


def test_no_markers_no_citations() -> None:
    result = cite("The sources do not say much.", HITS)
    assert result.text == "The sources do not say much." and result.citations == []
    assert [(s.text, s.numbers) for s in result.sentences] == [("The sources do not say much.", ())]


def test_marker_after_the_full_stop_belongs_to_the_sentence_before() -> None:
    sentences = split_sentences("It rained in Paris. [2] Then it snowed [1][3]. Nothing else.")
    assert sentences == [("It rained in Paris.", (2,)), ("Then it snowed.", (1, 3)), ("Nothing else.", ())]


def test_citations_carry_hits_and_numbers() -> None:
    result = cite("First [4]. Second [2][4].", HITS)
    assert [(c.number, c.hit.title) for c in result.citations] == [(1, "T4"), (2, "T2")]
    assert all(c.supported is None and c.support is None for c in result.citations)  # no embedder: unchecked


def test_links_and_labels() -> None:
    wiki = hit("x", title="Super Bowl 50", source="wikipedia:Super Bowl 50",
               url="https://en.wikipedia.org/wiki/Super_Bowl_50", section="Broadcasting", kind="wikipedia")
    pdf = hit("x", title="report.pdf", source="report.pdf", page=3, kind="pdf")
    assert source_link(wiki) == "https://en.wikipedia.org/wiki/Super_Bowl_50#Broadcasting"
    assert source_label(wiki) == "Super Bowl 50 § Broadcasting"
    assert source_link(pdf) is None and source_label(pdf) == "report.pdf, page 3"


BRONCOS = hit(
    "Super Bowl 50 was an American football game to determine the champion of the National Football League "
    "for the 2015 season. The Denver Broncos defeated the Carolina Panthers 24–10 to earn their third Super "
    "Bowl title. The game was played on February 7, 2016, at Levi's Stadium in Santa Clara, California.",
    title="Super Bowl 50")
OXYGEN = hit(
    "Oxygen is a chemical element with symbol O and atomic number 8. It is a highly reactive nonmetal and "
    "oxidizing agent that readily forms oxides with most elements. Diatomic oxygen gas constitutes 20.8% of "
    "the Earth's atmosphere.", title="Oxygen")


def test_support_check_flags_a_sentence_its_source_does_not_support(embedder) -> None:
    answer = ("The Denver Broncos won Super Bowl 50 against the Carolina Panthers [1]. "
              "The game took place at Levi's Stadium in Santa Clara [2].")
    result = cite(answer, [BRONCOS, OXYGEN], embedder=embedder)
    first, second = result.citations
    assert first.hit is BRONCOS and first.supported is True and first.support > 0.8
    assert second.hit is OXYGEN and second.supported is False and second.support < SUPPORT_BELOW
    assert [s.supported for s in result.sentences] == [(True,), (False,)]
    assert [s.text for s in result.unsupported] == ["The game took place at Levi's Stadium in Santa Clara."]


def test_a_citation_is_as_supported_as_its_weakest_sentence(embedder) -> None:
    answer = "The Broncos beat the Panthers [1]. Oxygen is 20.8% of the atmosphere [1][2]."
    result = cite(answer, [BRONCOS, OXYGEN], embedder=embedder)
    by_number = {c.number: c for c in result.citations}
    assert by_number[1].supported is False  # it is cited for the oxygen sentence too
    assert by_number[2].supported is True
    assert result.sentences[1].supported == (False, True)


def test_passage_vectors_are_cached_by_chunk(embedder) -> None:
    passages = PassageVectors(embedder, capacity=1)
    texts, vectors = passages.sentences(BRONCOS)
    assert len(texts) == 3 and vectors.shape == (3, embedder.dimension)
    assert passages.sentences(BRONCOS)[1] is vectors
    passages.sentences(OXYGEN)  # evicts BRONCOS
    assert passages.sentences(BRONCOS)[1] is not vectors
    assert passages.pair_vectors(BRONCOS).shape == (5, embedder.dimension)  # 3 sentences + 2 pairs


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_answer(text: str) -> None:
    result = cite(text, HITS)
    assert result.citations == [] and result.sentences == []
