"""RAG.ask end to end: real MiniLM, real Chroma, SQuAD text; extractive, an OpenAI-compatible server, and GPTQ."""

from __future__ import annotations

import json
import re
from importlib.util import find_spec
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag import RAG
from rag.answer import Answerer, is_refusal
from rag.cli import main
from rag.eval.squad import load_squad
from rag.generate.extractive import EXTRACT_PREFIX
from rag.prompt import NO_ANSWER
from rag.service import EXTRACTIVE_NOTICE
from rag.types import Answer, Document
from tests.fakes.openai_server import FakeServer, completion

PARAGRAPHS = 10  # the first paragraphs of the first three articles of SQuAD half a
UNRELATED = [
    "What is the recommended daily dose of vitamin C for adults?",
    "How do I reset the password of my home router?",
    "Which programming language is best for writing a compiler?",
]


@pytest.fixture(scope="module")
def corpus(squad_file: Path) -> list[Document]:
    docs = load_squad(squad_file, limit_articles=3).documents
    return [Document(source=d.source, text="\n".join(d.text.split("\n")[:PARAGRAPHS]), kind=d.kind, title=d.title,
                     url=d.url) for d in docs]


@pytest.fixture(scope="module")
def store_dir(embedder, corpus: list[Document], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ingest.index import SourceJob

    data_dir = tmp_path_factory.mktemp("answers") / "data"
    rag = RAG(data_dir)
    rag.ingest([SourceJob(d.source, lambda d=d: [d]) for d in corpus])
    return data_dir


@pytest.fixture
def squad_rag(store_dir: Path) -> RAG:
    return RAG(store_dir)


# -- extractive ------------------------------------------------------------------------------------
def test_extractive_answer_quotes_and_cites_the_right_article(squad_rag: RAG) -> None:
    answer = squad_rag.ask("Who did the Denver Broncos defeat in Super Bowl 50?")
    assert answer.generator == "extractive" and answer.prompt_format is None and not answer.refused
    assert answer.text.startswith(EXTRACT_PREFIX + " ") and "Carolina Panthers" in answer.text
    assert answer.query == "Who did the Denver Broncos defeat in Super Bowl 50?"
    numbers = [int(n) for n in re.findall(r"\[(\d+)\]", answer.text)]
    assert numbers[0] == 1 and sorted(set(numbers)) == list(range(1, len(answer.citations) + 1))
    first = answer.citations[0]
    assert first.hit.title == "Super Bowl 50" and "Carolina Panthers" in first.hit.text
    assert first.hit.url == "https://en.wikipedia.org/wiki/Super_Bowl_50"
    assert (first.supported, first.support) == (True, 1.0)
    # sources: cited ones first, in citation order, then the rest up to k
    assert [s.chunk.id for s in answer.sources[: len(answer.citations)]] == [c.hit.chunk.id for c in answer.citations]
    assert len(answer.sources) == squad_rag.settings.top_k
    assert squad_rag.generator_notice == EXTRACTIVE_NOTICE


def test_stream_yields_the_text_then_the_answer(squad_rag: RAG) -> None:
    items = list(squad_rag.ask_stream("Who was the leader of the Norse raiders?"))
    *pieces, answer = items
    assert isinstance(answer, Answer) and pieces and all(isinstance(p, str) for p in pieces)
    assert "".join(pieces) == answer.text and "Rollo" in answer.text
    assert answer.citations[0].hit.title == "Normans"


def test_a_follow_up_is_fused_with_the_previous_turn(squad_rag: RAG) -> None:
    history = [("Who were the Normans?", "From the documents: The Normans were the people ... [1]")]
    answer = squad_rag.ask("Who was their leader?", history)
    assert answer.query == "Who was their leader? [+ previous turn: Who were the Normans?]"
    assert "Rollo" in answer.text and answer.citations[0].hit.title == "Normans"


def test_restricting_sources(squad_rag: RAG) -> None:
    answer = squad_rag.ask("Who was the leader of the Norse raiders?", sources=["wikipedia:Super Bowl 50"])
    assert all(h.source == "wikipedia:Super Bowl 50" for h in answer.sources)
    assert "Rollo" not in answer.text


def test_empty_question(squad_rag: RAG) -> None:
    from rag.retrieve import EmptyQueryError

    with pytest.raises(EmptyQueryError):
        squad_rag.ask("   ")


@pytest.mark.parametrize(("text", "refused"), [
    (NO_ANSWER, True), ('"The indexed documents don\'t answer this."', True),
    ("The indexed documents dont answer this", True), ("the indexed documents don't answer this.\n", True),
    ("Rollo led them [1].", False), (NO_ANSWER + " But Rollo led the Normans, who settled in Normandy [1].", False),
])
def test_is_refusal(text: str, refused: bool) -> None:
    assert is_refusal(text) is refused


# -- CLI -------------------------------------------------------------------------------------------
def test_cli_ask_json(store_dir: Path) -> None:
    result = CliRunner().invoke(main, ["--data-dir", str(store_dir), "ask", "Who was the leader of the Norse raiders?",
                                       "--json", "-k", "3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"answer", "citations", "sources", "query", "generator", "prompt_format", "refused"}
    assert out["generator"] == "extractive" and out["refused"] is False and "Rollo" in out["answer"]
    assert len(out["sources"]) == 3
    c = out["citations"][0]
    assert {"number", "supported", "support", "title", "url", "section", "page", "text", "score"} <= set(c)
    assert (c["number"], c["title"], c["supported"]) == (1, "Normans", True)


def test_cli_ask_human_and_chat(store_dir: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--data-dir", str(store_dir), "ask", UNRELATED[0]], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stdout.startswith(NO_ANSWER + "\n") and "Closest sources (they do not answer it):" in result.stdout

    result = runner.invoke(main, ["--data-dir", str(store_dir), "chat"],
                           input="Who were the Normans?\n\nWho was their leader?\nexit\nnot asked\n",
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.count(EXTRACT_PREFIX) == 2 and "not asked" not in out
    assert "Retrieval query: Who was their leader? [+ previous turn: Who were the Normans?]" in out
    assert re.search(r"Sources:\n  \[1\] Normans  <https://en.wikipedia.org/wiki/Normans>", out)
    assert EXTRACTIVE_NOTICE in result.stderr


def test_cli_rejects_an_unknown_llm(store_dir: Path) -> None:
    result = CliRunner().invoke(main, ["--data-dir", str(store_dir), "ask", "x?", "--llm", "gpt5"])
    assert result.exit_code == 1 and "llm='gpt5' is not a valid generator; use one of: extractive;" in result.output


# -- a language model behind an OpenAI-compatible server ------------------------------------------
def _scripted(server: FakeServer, reply_for) -> None:
    def reply(body: dict) -> tuple[int, str, bytes]:
        system = body["messages"][0]["content"]
        user = body["messages"][-1]["content"]
        text = reply_for(system, user, body)
        return 200, "text/event-stream", completion([w + " " for w in text.split(" ")[:-1]] + [text.split(" ")[-1]])
    server.reply = reply


def _number_of(user: str, needle: str) -> int:
    for m in re.finditer(r"^\[(\d+)\] [^\n]*\n<<<(\w+)\n(.*?)\n\2>>>", user, re.S | re.M):
        if needle in m.group(3):
            return int(m.group(1))
    raise AssertionError(f"{needle!r} is in no source of the prompt")


def test_llm_answer_is_cited_renumbered_and_support_checked(store_dir: Path, server: FakeServer) -> None:  # noqa: F811
    def reply_for(system: str, user: str, body: dict) -> str:
        if "rewrite the user's last question" in system:
            return "Who was the leader of the Normans?"
        n = _number_of(user, "Rollo")
        return f"Their leader was Rollo [{n}][9]. Super Bowl 50 was played in California [{n}]."

    _scripted(server, reply_for)
    rag = RAG(store_dir, llm=f"openai:{server.url}#tiny")
    answer = rag.ask("Who was their leader?", [("Who were the Normans?", "Norse people [1].")])
    assert answer.generator == f"openai:tiny@{server.url}" and answer.prompt_format == "chat-template"
    assert answer.query == "Who was the leader of the Normans?"  # the condensed standalone question
    assert answer.text == "Their leader was Rollo [1]. Super Bowl 50 was played in California [1]."
    (citation,) = answer.citations
    assert citation.number == 1 and "Rollo" in citation.hit.text and answer.sources[0] is citation.hit
    assert citation.supported is False  # the California sentence is not in the Normans chunk
    condense_req, answer_req = server.requests
    assert answer_req["json"]["messages"][0]["role"] == "system"
    assert "Question: Who was their leader?" in answer_req["json"]["messages"][-1]["content"]
    assert [m["role"] for m in answer_req["json"]["messages"]] == ["system", "user", "assistant", "user"]
    assert rag.generator_notice is None


def test_cli_shows_a_streamed_answer_again_only_when_citing_changed_it(store_dir: Path, server: FakeServer) -> None:  # noqa: F811
    question = "Who did the Denver Broncos defeat in Super Bowl 50?"
    runner = CliRunner()

    def ask(reply: str) -> str:
        _scripted(server, lambda system, user, body: reply)
        result = runner.invoke(main, ["--data-dir", str(store_dir), "ask", question, "--llm",
                                      f"openai:{server.url}#tiny"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    out = ask("The Broncos beat  the Carolina Panthers [1].")  # spacing aside, citing keeps it as written
    assert out.count("Carolina Panthers [1]") == 1 and "With citations renumbered" not in out
    out = ask("The Broncos beat the Carolina Panthers [1][7].")  # [7] points to no source: dropped
    assert "The Broncos beat the Carolina Panthers [1][7].\n" in out
    assert "With citations renumbered:\nThe Broncos beat the Carolina Panthers [1].\n" in out


def test_llm_refusal_is_the_exact_sentence(store_dir: Path, server: FakeServer) -> None:  # noqa: F811
    _scripted(server, lambda system, user, body: "The indexed documents don't answer this.")
    answer = RAG(store_dir, llm=f"openai:{server.url}#tiny").ask("Who was the leader of the Norse raiders?")
    assert answer.refused is True and answer.text == NO_ANSWER and answer.citations == []


def test_llm_is_not_called_when_retrieval_finds_nothing_relevant(store_dir: Path, server: FakeServer) -> None:  # noqa: F811
    answer = RAG(store_dir, llm=f"openai:{server.url}#tiny").ask(UNRELATED[1])
    assert answer.refused is True and answer.text == NO_ANSWER and server.requests == []


def test_llm_prompt_packs_only_sources_near_the_best(store_dir: Path, server: FakeServer) -> None:  # noqa: F811
    question = "Who did the Denver Broncos defeat in Super Bowl 50?"
    _scripted(server, lambda system, user, body: "The Carolina Panthers [1].")
    hits = RAG(store_dir).search(question, k=5)
    best = max(h.score for h in hits)
    near = [h for h in hits if h.score >= best - 0.2]
    assert 1 <= len(near) < len(hits)  # the other articles' chunks are far below the Super Bowl one

    def packed(**settings) -> list[str]:
        server.requests.clear()
        answer = RAG(store_dir, llm=f"openai:{server.url}#tiny", **settings).ask(question)
        assert not answer.refused and answer.text.startswith("The Carolina Panthers")
        user = server.requests[-1]["json"]["messages"][-1]["content"]
        return re.findall(r"^<<<\w+\n(.*?)\n\w+>>>", user, re.S | re.M)

    assert packed() == [h.text for h in near]  # the default margin, 0.2 of cosine
    assert packed(source_margin=2) == [h.text for h in hits]  # every retrieved source
    # hybrid ranks by fused scores, the margin reads cosines: 0 keeps the closest chunk alone
    assert packed(source_margin=0) == [max(hits, key=lambda h: h.score).text]


# -- GPTQ (tiny random Llama, CPU) ----------------------------------------------------------------
HAVE_GPU_EXTRA = find_spec("gptqmodel") is not None and find_spec("optimum") is not None


@pytest.fixture(scope="module")
def tiny_gptq(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HAVE_GPU_EXTRA:
        pytest.skip("needs the gpu extra (gptqmodel, optimum): pip install -e '.[gpu]'")
    from tests.rag.generate import tiny_llama

    return tiny_llama.build(tmp_path_factory.mktemp("tiny-llama")).gptq_dir


def test_gptq_answer_end_to_end(embedder, tiny_gptq: Path, tmp_path: Path) -> None:
    rag = RAG(tmp_path / "gptq-data", llm=f"gptq:{tiny_gptq}", max_new_tokens=12, top_k=2)
    rag.add_text("The Normans were descended from Norse raiders led by Rollo. They gave their name to Normandy.",
                 name="normans.txt", title="Normans")
    rag.add_text("Super Bowl 50 was played at Levi's Stadium in Santa Clara, California.", name="sb50.txt")
    assert "1 token/s" in (rag.generator_notice or "")  # known before the model loads
    items = list(rag.ask_stream("Who led the Norse raiders who became the Normans?"))
    *pieces, answer = items
    assert isinstance(answer, Answer) and all(isinstance(p, str) for p in pieces)
    assert answer.generator == f"gptq:{tiny_gptq}"
    assert answer.prompt_format == rag.generator.prompt_format == "llama-2-chat"  # detected from the name
    assert answer.refused is False and answer.query == "Who led the Norse raiders who became the Normans?"
    assert answer.sources and answer.sources[0].title == "Normans"
    # Random weights write gibberish; whatever it is, the answer is that text with its markers cleaned up.
    unmarked = re.compile(r"\s*\[[\d,; ]+\]")
    assert unmarked.sub("", answer.text) == unmarked.sub("", "".join(pieces).strip())
    assert {int(n) for n in re.findall(r"\[(\d+)", answer.text)} <= set(range(1, len(answer.citations) + 1))
    assert "1 token/s" in (rag.generator_notice or "")
    assert isinstance(rag.answerer, Answerer) and rag.answerer.generator is rag.generator
