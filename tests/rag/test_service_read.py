"""The facade's read path (search, ask, stream, follow-ups, sources) over the fakes: fast, no MiniLM, no Chroma.

tests/rag/test_answer.py asks the same questions of the real MiniLM and Chroma; the write path
(ingest, upload, delete under the lock) is tests/rag/test_service.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import RAG
from rag.generate.extractive import EXTRACT_PREFIX, ExtractiveGenerator
from rag.prompt import NO_ANSWER
from rag.types import Answer
from tests.fakes import HashEmbedder, MemoryStore, ReadingGenerator

TURING = ("Alan Turing was an English mathematician and computer scientist. He was born in Maida Vale, London, "
          "in 1912. Turing studied at King's College, Cambridge, where he proved that the halting problem is "
          "undecidable.")
THAMES = ("The Thames flows through Oxford and London. Its source is at Thames Head in the Cotswolds. The river "
          "is 346 kilometres long.")


def fake_rag(data_dir: Path, generator=None) -> RAG:
    """A facade whose embedder, store and generator are the fakes (assigned before first use).

    refuse_below is calibrated for MiniLM's cosines; hashed bags of words score lower (with
    rag.refuse's evidence, a question that names the subject and the fact scores ~0.55, one
    about something the documents never mention 0).
    """
    rag = RAG(data_dir, refuse_below=0.3)
    rag.embedder = HashEmbedder()
    rag.store = MemoryStore()
    rag.generator = generator or ExtractiveGenerator(rag.embedder)
    rag.add_text(TURING, name="turing.txt", title="Alan Turing")
    rag.add_text(THAMES, name="thames.txt")
    return rag


def test_search_and_sources_go_through_the_store(tmp_path: Path) -> None:
    rag = fake_rag(tmp_path)
    hits = rag.search("Where was Alan Turing born?", k=1)
    assert hits[0].source == "turing.txt" and hits[0].title == "Alan Turing" and 0 < hits[0].score <= 1
    assert rag.search("Thames Cotswolds", k=5, sources=["turing.txt"])[0].source == "turing.txt"
    assert {(s.source, s.chunks) for s in rag.sources()} == {("turing.txt", 1), ("thames.txt", 1)}
    assert not (tmp_path / "chroma").exists()  # the fake store, not Chroma


def test_extractive_answer_quotes_and_cites_the_right_sentence(tmp_path: Path) -> None:
    answer = fake_rag(tmp_path).ask("In which town was Alan Turing born?")
    assert answer.text.startswith(EXTRACT_PREFIX) and "Maida Vale" in answer.text and "[1]" in answer.text
    assert not answer.refused and answer.generator == "extractive" and answer.prompt_format is None
    assert answer.citations[0].hit.source == "turing.txt" and answer.citations[0].supported is True
    assert answer.sources[0] == answer.citations[0].hit


def test_a_question_the_documents_do_not_touch_is_refused(tmp_path: Path) -> None:
    answer = fake_rag(tmp_path).ask("What is the boiling point of mercury?")
    assert answer.refused and answer.text == NO_ANSWER and answer.citations == []


def test_a_language_model_gets_the_packed_prompt_and_its_citations_are_checked(tmp_path: Path) -> None:
    model = ReadingGenerator()
    rag = fake_rag(tmp_path, model)
    answer = rag.ask("How long is the river Thames?", k=2)
    assert "346 kilometres" in answer.text and answer.text.endswith("[1].")
    assert answer.generator == "fake:reader" and answer.prompt_format == "stablebeluga"
    assert answer.citations[0].hit.source == "thames.txt"
    assert answer.citations[0].supported is True and answer.citations[0].support == pytest.approx(1.0, abs=1e-5)
    prompt = model.prompts[-1]
    assert prompt.startswith("### System:") and "Question: How long is the river Thames?" in prompt


def test_the_model_refusing_is_a_refusal(tmp_path: Path) -> None:
    class Refuser(ReadingGenerator):
        def reply(self, prompt: str) -> str:
            return f'"{NO_ANSWER}"'

    answer = fake_rag(tmp_path, Refuser()).ask("How long is the river Thames?")
    assert answer.refused and answer.text == NO_ANSWER and answer.prompt_format == "stablebeluga"


def test_streaming_yields_the_pieces_then_the_answer(tmp_path: Path) -> None:
    items = list(fake_rag(tmp_path, ReadingGenerator()).ask_stream("How long is the river Thames?"))
    *pieces, final = items
    assert isinstance(final, Answer) and all(isinstance(p, str) for p in pieces)
    assert "".join(pieces).strip() == final.text


def test_follow_ups_condense_with_a_model_and_fuse_without_one(tmp_path: Path) -> None:
    history = [("Where does the Thames rise?", "At Thames Head [1].")]
    model = ReadingGenerator()
    condensed = fake_rag(tmp_path / "a", model).ask("How long is the river Thames?", history)
    assert condensed.query == "How long is the river Thames?"  # the model's standalone question
    assert "Rewrite the last question" in model.prompts[0]
    fused = fake_rag(tmp_path / "b").ask("How long is it?", history)
    assert fused.query == "How long is it? [+ previous turn: Where does the Thames rise?]"
    assert "346 kilometres" in fused.text
