"""Citations: marker parsing, dropping, renumbering, links, and the MiniLM support check."""

from __future__ import annotations

import re

import pytest

from rag.cite import (
    WORD_JOINER,
    PassageVectors,
    cite,
    neutralize_brackets,
    renumber,
    source_label,
    source_link,
    split_sentences,
)
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


# -- document brackets never cite; sentences without markers get the source that supports them ----
def test_neutralized_brackets_read_the_same_and_cite_nothing() -> None:
    quoted = neutralize_brackets("A map γ : [0, 1] → X was approved in 2024 [2][3].")
    assert quoted.replace(WORD_JOINER, "") == "A map γ : [0, 1] → X was approved in 2024 [2][3]."
    assert neutralize_brackets(quoted) == quoted
    result = cite(quoted + " [1]", HITS)
    assert result.text == quoted + " [1]"
    assert [(c.number, c.hit.title) for c in result.citations] == [(1, "T1")]
    assert neutralize_brackets("[x, y] and [a]") == "[x, y] and [a]"  # not marker-like: untouched


def test_a_sentence_without_a_marker_gets_the_source_that_supports_it(embedder) -> None:
    answer = ("The Denver Broncos defeated the Carolina Panthers to win Super Bowl 50. "
              "Oxygen gas makes up 20.8% of the Earth's atmosphere. I hope this helps you!")
    result = cite(answer, [OXYGEN, BRONCOS], embedder=embedder, attach=True)
    assert result.text == ("The Denver Broncos defeated the Carolina Panthers to win Super Bowl 50 [1]. "
                           "Oxygen gas makes up 20.8% of the Earth's atmosphere [2]. I hope this helps you!")
    assert [(c.number, c.hit.title, c.supported) for c in result.citations] == [
        (1, "Super Bowl 50", True), (2, "Oxygen", True)]
    assert [s.text for s in result.uncited] == ["I hope this helps you!"]  # nothing supports it: left uncited
    assert cite(answer, [OXYGEN, BRONCOS], embedder=embedder).citations == []  # attach is asked for


def test_wrong_markers_are_replaced_only_by_support_and_never_invent_it(embedder) -> None:
    answer = ("The Denver Broncos defeated the Carolina Panthers [7]. "
              "Oxygen gas makes up 20.8% of the Earth's atmosphere [1].")
    result = cite(answer, [BRONCOS, OXYGEN], embedder=embedder, attach=True)
    # [7] points nowhere: dropped, and the sentence gets the source that supports it; the model's
    # own [1] under the oxygen sentence stays, flagged as not supported.
    assert result.text == ("The Denver Broncos defeated the Carolina Panthers [1]. "
                           "Oxygen gas makes up 20.8% of the Earth's atmosphere [1].")
    assert [(c.number, c.hit.title, c.supported) for c in result.citations] == [(1, "Super Bowl 50", False)]
    assert [s.supported for s in result.sentences] == [(True,), (False,)]
    unrelated = cite("Bananas are yellow and sweet.", [BRONCOS, OXYGEN], embedder=embedder, attach=True)
    assert unrelated.citations == [] and unrelated.text == "Bananas are yellow and sweet."


HARBOUR = ("In topology, a path in a space X is a continuous map γ : [0, 1] → X from the unit interval. "
           "The harbour council approved the new lighthouse budget in 2024 [2][3] after a long debate. "
           "The budget pays for a new lamp and a granite wall around the lighthouse.")
OTHERS = {
    "glacier.txt": "The Zentara glacier lost forty meters of ice thickness between 1980 and 2020. "
                   "Scientists have measured the Zentara glacier every summer since 1980.",
    "risotto.txt": "Chef Ottavio Brenn invented the saffron pumpkin risotto at his restaurant in Bergamo. "
                   "Brenn opened his Bergamo restaurant in 1975.",
    "tunnel.txt": "The Halvard railway tunnel under the mountain pass is nine kilometers long. "
                  "Construction of the Halvard tunnel took eleven years.",
}


def bracket_store(rag) -> None:
    """A document with an interval and footnote-like brackets, and three sources [2] and [3] could point at."""
    rag.add_text(HARBOUR, name="harbour.txt")
    for name, text in OTHERS.items():
        rag.add_text(text, name=name)


def check_bracket_answers(path_answer: dict, budget_answer: dict) -> None:
    """Shared by every surface: the answers as ``Answer.to_dict()`` for the two bracket questions."""
    for answer in (path_answer, budget_answer):
        assert not answer["refused"], answer
        assert [c["source"] for c in answer["citations"]] == ["harbour.txt"]
        assert set(re.findall(r"\[(\d+)\]", answer["answer"])) == {"1"}  # only the extract's own marker
    assert "γ : [0, 1] → X" in path_answer["answer"].replace(WORD_JOINER, "")
    assert "in 2024 [2][3] after" in budget_answer["answer"].replace(WORD_JOINER, "")


PATH_Q = "What is a path in a topological space X?"
BUDGET_Q = "When did the harbour council approve the lighthouse budget?"


def test_document_brackets_never_cite_python_api(rag) -> None:
    from ui.render import answer_markdown

    bracket_store(rag)
    path, budget = rag.ask(PATH_Q), rag.ask(BUDGET_Q)
    check_bracket_answers(path.to_dict(), budget.to_dict())
    shown = answer_markdown(path).replace(WORD_JOINER, "").replace("\\", "")
    assert "γ : [0, 1] → X" in shown and "γ : [1]" not in shown


def test_document_brackets_never_cite_cli_json(rag) -> None:
    import json

    from click.testing import CliRunner

    from rag.cli import main

    bracket_store(rag)
    data_dir = str(rag.settings.data_dir)
    out = []
    for question in (PATH_Q, BUDGET_Q):
        result = CliRunner().invoke(main, ["--data-dir", data_dir, "ask", question, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        out.append(json.loads(result.stdout))
    check_bracket_answers(*out)


class ScriptedModel:
    """A language model that answers with a scripted function of its prompt (stands in for a real one)."""

    name = "scripted"
    prompt_format = "stablebeluga"
    context_window = 4096
    warning = None
    render_chat_template = None  # a fixed prompt format

    def __init__(self, reply) -> None:
        self.reply = reply
        self.prompts: list[str] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(self, prompt: str, *, max_new_tokens: int):
        self.prompts.append(prompt)
        for word in self.reply(prompt).split(" "):
            yield word + " "


def _block(prompt: str, needle: str) -> tuple[int, str]:
    for m in re.finditer(r"^\[(\d+)\] [^\n]*\n<<<(\w+)\n(.*?)\n\2>>>", prompt, re.S | re.M):
        if needle in m.group(3):
            return int(m.group(1)), m.group(3)
    raise AssertionError(f"{needle!r} is in no source of the prompt")


def _answerer(rag, model):
    from dataclasses import replace

    from rag.answer import Answerer

    # Every retrieved source in the prompt (RAG_SOURCE_MARGIN=2), the unrelated ones too: the
    # model's wrong markers and unmarked sentences need other sources to point at.
    return Answerer(rag.retriever, model, replace(rag.settings, source_margin=2), rag.embedder)


def test_a_model_copying_document_brackets_cites_only_with_its_own_markers(rag) -> None:
    bracket_store(rag)

    def reply(prompt: str) -> str:
        n, text = _block(prompt, "lighthouse budget")
        copied = next(s for s in text.split(". ") if "approved" in s)  # verbatim, brackets and all
        return f"{copied} [{n}]."

    answer = _answerer(rag, ScriptedModel(reply)).ask(BUDGET_Q)
    assert [c.hit.source for c in answer.citations] == ["harbour.txt"] and answer.citations[0].supported
    assert answer.text.replace(WORD_JOINER, "") == \
        "The harbour council approved the new lighthouse budget in 2024 [2][3] after a long debate [1]."


def test_a_model_that_writes_no_markers_or_wrong_ones(rag) -> None:
    bracket_store(rag)
    model = ScriptedModel(lambda prompt: (
        "The harbour council approved the new lighthouse budget in 2024. "
        "The Zentara glacier lost forty meters of ice thickness [9]. "
        f"The Halvard railway tunnel is nine kilometers long [{_block(prompt, 'Zentara')[0]}]. "
        "Bananas are yellow and sweet."))
    answer = _answerer(rag, model).ask(BUDGET_Q)
    assert not answer.refused
    sentences = split_sentences(answer.text)
    assert [n for _, n in sentences] == [(1,), (2,), (2,), ()]
    assert [(c.hit.source, c.supported) for c in answer.citations] == [("harbour.txt", True), ("glacier.txt", False)]
    assert answer.text.endswith("Bananas are yellow and sweet.")


def test_a_model_echoing_the_fence_code_shows_none_of_it(rag) -> None:
    bracket_store(rag)

    def reply(prompt: str) -> str:
        n, _ = _block(prompt, "lighthouse budget")
        code = re.search(r"^Fence code: (\w+)$", prompt, re.M).group(1)
        return f"{code} The harbour council approved the new lighthouse budget in 2024 [{n}]. {code}>>>"

    answer = _answerer(rag, ScriptedModel(reply)).ask(BUDGET_Q)
    assert answer.text == "The harbour council approved the new lighthouse budget in 2024 [1]."
    assert [(c.hit.source, c.supported) for c in answer.citations] == [("harbour.txt", True)]
