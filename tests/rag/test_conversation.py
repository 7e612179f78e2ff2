"""Follow-up questions: fusion without a model, condensing with one, on real SQuAD articles and MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.conversation import (
    ANAPHORA,
    clean_condensed,
    condense,
    condense_prompt,
    describe_fused,
    fused_query,
    fused_search,
    needs_history,
    normalize_history,
    rrf,
)
from rag.eval.squad import Question, is_hit, load_squad
from rag.types import Chunk, Hit, chunk_id
from tests.conftest import ROOT

FOLLOWUPS = ROOT / "data" / "eval" / "followups-squad-half-a.json"
# Two city articles: a question about "its population" or "its county" fits either, so the
# question alone often finds the wrong city (1 of their 4 conversations right; fused: 4 of 4).
ARTICLES = ("Fresno, California", "Jacksonville, Florida")


def h(name: str, score: float = 0.5) -> Hit:
    return Hit(Chunk(id=chunk_id(name, None, None, 0, name), source=name, text=name, kind="text", title=name,
                     start=0, end=len(name), tokens=0), score)


def test_rrf_rewards_agreement_and_keeps_the_best_cosine() -> None:
    a = [h("x", 0.9), h("y", 0.8), h("z", 0.7)]
    b = [h("y", 0.95), h("w", 0.6), h("x", 0.5)]
    fused = rrf([a, b], 3)
    assert [x.source for x in fused] == ["y", "x", "w"]
    assert fused[0].score == 0.95 and fused[1].score == 0.9
    assert [x.source for x in rrf([a, b], 4, weights=[1, 0])] == ["x", "y", "z", "w"]


def test_history_shapes() -> None:
    assert normalize_history(None) == []
    assert normalize_history(["Who won?", ("When?", "In 2016."), ["", "ignored"]]) == [("Who won?", ""),
                                                                                        ("When?", "In 2016.")]
    history = [("Q1?", "A1"), ("Q2?", "A2"), ("Q3?", "A3")]
    assert fused_query("Who founded it?", history) == "Q2? Q3? Who founded it?"
    assert describe_fused("Who founded it?", history[-1:]) == "Who founded it? [+ previous turn: Q3?]"


@pytest.mark.parametrize(("question", "refers"), [
    ("Who founded it?", True), ("When did he die?", True), ("What was their capital?", True),
    ("Who founded the University of Chicago?", False), ("What is the boiling point of water?", False),
    # "that" before a verb opens a relative clause inside the question; elsewhere it points back
    ("What is the name of the river that is completely contained inside Jacksonville?", False),
    ("Who founded that city?", True), ("Is that true?", True), ("What is that?", True),
])
def test_anaphora(question: str, refers: bool) -> None:
    assert bool(ANAPHORA.search(question)) is refers


def test_needs_history_rules() -> None:
    alone = [h("Fresno", 0.55), h("Fresno", 0.5), h("Jacksonville", 0.4)]
    farther = [h("Jacksonville", 0.45)]
    closer_elsewhere = [h("Normans", 0.8)]
    closer_here = [h("Jacksonville", 0.8)]
    # An elliptical or very short question always uses the conversation.
    assert needs_history("And in 1990?", farther, alone, 3)
    assert needs_history("Population?", farther, alone, 3)
    # A word that may refer back: fused unless the history makes the best match clearly worse.
    assert needs_history("Who founded it?", [h("Fresno", 0.52)], alone, 3)
    assert not needs_history("Which company held contests for fans to create their own ad?", farther, alone, 3)
    # No such word: only a clearly closer chunk of a source the question alone also finds.
    question = "Which river is contained inside the city limits?"
    assert needs_history(question, closer_here, alone, 3)
    assert not needs_history(question, closer_elsewhere, alone, 3)
    assert not needs_history(question, [h("Jacksonville", 0.6)], alone, 3)


def test_condense_prompt_is_in_the_models_format() -> None:
    prompt = condense_prompt("Who founded it?", [("When was the University of Chicago founded?", "In 1890 [1].")],
                             "llama-2-chat")
    assert prompt.startswith("<s>[INST] <<SYS>>\nYou rewrite the user's last question")
    assert "User: When was the University of Chicago founded?\nAssistant: In 1890 [1]." in prompt
    assert prompt.endswith("Last question: Who founded it?\n\nRewrite the last question as a standalone question. [/INST]")
    beluga = condense_prompt("Who founded it?", [("Q?", "")], "stablebeluga")
    assert beluga.startswith("### System:\n") and beluga.endswith("### Assistant:\n") and "Assistant: " not in beluga


@pytest.mark.parametrize(("reply", "expected"), [
    ("Who founded the University of Chicago?", "Who founded the University of Chicago?"),
    ('  Standalone question: "Who founded the University of Chicago?"\nIt was founded by...',
     "Who founded the University of Chicago?"),
    ("", None), ("\n \n", None), ("?!", None), ("word " * 200, None),
])
def test_clean_condensed(reply: str, expected: str | None) -> None:
    assert clean_condensed(reply, "Who founded it?") == expected


class ScriptedModel:
    name = "scripted"
    prompt_format = "stablebeluga"
    render_chat_template = None

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.prompts: list[str] = []

    def stream(self, prompt: str, *, max_new_tokens: int):
        self.prompts.append(prompt)
        yield from self.reply.split(" ")[:1] + [" " + w for w in self.reply.split(" ")[1:]]


def test_condense_asks_the_model() -> None:
    model = ScriptedModel("Who founded the University of Chicago?")
    assert condense(model, "Who founded it?", [("When was the University of Chicago founded?", "")]) == \
        "Who founded the University of Chicago?"
    assert model.prompts[0].startswith("### System:\nYou rewrite")


@pytest.fixture(scope="module")
def squad_store(embedder, squad_file: Path, tmp_path_factory: pytest.TempPathFactory):
    """Two SQuAD half-a articles in a real Chroma store."""
    from ingest.index import SourceJob
    from rag import RAG

    docs = [d for d in load_squad(squad_file).documents if d.title in ARTICLES]
    assert len(docs) == len(ARTICLES)
    rag = RAG(tmp_path_factory.mktemp("conv") / "data")
    rag.ingest([SourceJob(d.source, lambda d=d: [d]) for d in docs])
    return rag


def _search(store, mode: str):
    from rag.retrieve import Retriever

    return Retriever(store.embedder, store.store, mode=mode).search


def _turn_two_hits(search) -> tuple[int, int, int]:
    convs = [c for c in json.loads(FOLLOWUPS.read_text()) if c["article"] in ARTICLES]
    assert len(convs) == 4
    alone = fused = 0
    for c in convs:
        q = Question("", c["question"], tuple(c["answers"]), f"wikipedia:{c['article']}")
        alone += any(is_hit(x, q) for x in search(q.text, 5))
        found = fused_search(search, q.text, [(t, "") for t in c["history"]], 5)
        fused += any(is_hit(x, q) for x in found.hits)
        assert found.method == "fused" and found.query.startswith(q.text + " [+ previous turn: ")
    return len(convs), alone, fused


def test_fusion_finds_what_a_pronoun_question_alone_misses(squad_store) -> None:
    # With dense retrieval the question alone finds the wrong city for most of these.
    n, alone, fused = _turn_two_hits(_search(squad_store, "dense"))
    print(f"dense: turn-2 hit@5 over {n} conversations: alone {alone}, fused {fused}")
    assert fused == n and alone < fused
    # The default (hybrid) finds the city's name through BM25 too; fusion must not lose any.
    n, alone, fused = _turn_two_hits(squad_store.retriever.search)
    print(f"hybrid: alone {alone}, fused {fused}")
    assert fused == n


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_a_new_topic_is_not_drowned_by_the_old_one(squad_store, mode: str) -> None:
    search = _search(squad_store, mode)
    # Not a guarantee: over 300 SQuAD questions asked after one about another article, fusion
    # keeps hit@5 at 0.95 against 0.97 for the question alone (hybrid; dense 0.82 / 0.84,
    # concatenation 0.38).
    q = Question("", "In which county does Jacksonville reside?", ("Duval",), "wikipedia:Jacksonville, Florida")
    history = [("What was Fresno's population in 2010?", "494,665 [1].")]
    found = fused_search(search, q.text, history, 5)
    assert is_hit(found.hits[0], q)
    if mode == "dense":  # where the previous turn's words drag plain concatenation off topic
        assert not any(is_hit(x, q) for x in search(fused_query(q.text, history), 5)[:1])


def test_no_history_is_the_question_alone(squad_store) -> None:
    search = squad_store.retriever.search
    question = "What is featured on the city of Fresno's city flag?"
    found = fused_search(search, question, [], 3)
    assert found.method == "question" and found.query == question
    assert [x.chunk.id for x in found.hits] == [x.chunk.id for x in search(question, 3)]


def test_a_question_that_stands_alone_is_retrieved_alone(squad_store) -> None:
    """No word refers back and the history finds nothing clearly closer: the history is not fused."""
    search = squad_store.retriever.search
    question = "In which county does Jacksonville reside?"
    history = [("Wie hoch war die Bevölkerung von Fresno im Jahr 2010?", ""), ("Und die Fläche von Fresno?", "")]
    found = fused_search(search, question, history, 5)
    assert found.method == "question" and found.query == question
    assert [x.chunk.id for x in found.hits] == [x.chunk.id for x in search(question, 5)]
    # A word that points inside the question ("the river that ...") is no reason to fuse an
    # unrelated turn: the history only pulls the query away from the question's subject.
    question = "What is the name of the river that is completely contained inside Jacksonville?"
    found = fused_search(search, question, [("In what year did BankAmericard change its name?", "")], 5)
    assert found.method == "question"
    assert [x.chunk.id for x in found.hits] == [x.chunk.id for x in search(question, 5)]
    # A question that refers back, or is elliptical, still uses the conversation.
    assert fused_search(search, "What was its population in 2010?", history, 5).method == "fused"
    assert fused_search(search, "And in 2000?", history, 5).method == "fused"
