"""rag.protocols states the whole contract: backends written only from it work end to end.

The minimal store and generator below use nothing but what rag/protocols.py declares (the
way a third party would write them); the facade ingests with them, searches and answers.
The built-in backends are checked against the same Protocols.
"""

from __future__ import annotations

import re

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from rag import RAG
from rag.protocols import Embedder, Extractor, Generator, KeywordIndex, Store, is_extractor
from rag.types import Chunk, Hit, SourceInfo
from tests.fakes import HashEmbedder, MemoryStore, ReadingGenerator


class ListStore:
    """The smallest Store: a list, exact cosine, no keyword index (so dense retrieval only)."""

    keyword_query = None
    document_frequencies = None

    def __init__(self) -> None:
        self.rows: dict[str, tuple[Chunk, np.ndarray]] = {}

    def query(self, embedding: np.ndarray, k: int, sources: Sequence[str] | None = None,
              collections: Sequence[str] | None = None) -> list[Hit]:
        hits = [Hit(c, float(v @ embedding)) for c, v in self.rows.values()
                if (not sources or c.source in sources) and (not collections or c.collection in collections)]
        return sorted(hits, key=lambda h: -h.score)[:k]

    def add(self, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None:
        self.rows.update({c.id: (c, np.asarray(v)) for c, v in zip(chunks, embeddings)})

    def delete_ids(self, ids: Sequence[str]) -> None:
        for i in ids:
            self.rows.pop(i, None)

    def delete_source(self, source: str, *, collection: str = "default") -> int:
        ids = self.ids_for(source, collection=collection)
        self.delete_ids(list(ids))
        return len(ids)

    def ids_for(self, source: str, *, complete: bool = True, collection: str = "default") -> set[str]:
        return {i for i, (c, _) in self.rows.items() if c.source == source and c.collection == collection}

    def get_with_vectors(self, ids: Sequence[str], *, vectors: bool = True) -> list[tuple[Chunk, np.ndarray | None]]:
        return [(self.rows[i][0], self.rows[i][1] if vectors else None) for i in ids if i in self.rows]

    def sources(self) -> list[SourceInfo]:
        names = sorted({(c.collection, c.source) for c, _ in self.rows.values()})
        return [SourceInfo(n, "text", n, len(self.ids_for(n, collection=c)), "", collection=c) for c, n in names]

    def count(self) -> int:
        return len(self.rows)


class FirstSourceModel:
    """The smallest Generator: answers with the first source's first line, cited [1]."""

    name = "third-party"
    prompt_format = "llama-2-chat"
    context_window = 2048
    warning = None
    render_chat_template = None

    def count_tokens(self, text: str) -> int:
        return len(text) // 3 + 1

    def stream(self, prompt: str, *, max_new_tokens: int) -> Iterator[str]:
        if "Rewrite the last question" in prompt:
            yield prompt.split("Last question: ", 1)[1].split("\n", 1)[0]
            return
        first = re.search(r"^<<<\w+\n(.*?)\. ", prompt, re.S | re.M).group(1)
        yield first
        yield " [1]."


def test_a_third_party_store_and_generator_work_end_to_end(tmp_path: Path) -> None:
    store, model = ListStore(), FirstSourceModel()
    assert isinstance(store, Store) and isinstance(model, Generator) and not is_extractor(model)
    rag = RAG(tmp_path, retrieval_mode="dense", refuse_below=0.3)
    rag.embedder, rag.store, rag.generator = HashEmbedder(), store, model
    report = rag.add_text("Ada Lovelace wrote the first program. She worked with Charles Babbage.", name="ada.txt")
    assert report.added == {"ada.txt": 1} and store.count() == 1
    assert rag.add_text("Ada Lovelace wrote the first program. She worked with Charles Babbage.",
                        name="ada.txt").unchanged == {"ada.txt": 1}
    assert rag.search("Who wrote the first program?", k=1)[0].source == "ada.txt"
    answer = rag.ask("Who wrote the first program?")
    assert answer.text == "Ada Lovelace wrote the first program [1]." and answer.generator == "third-party"
    assert answer.citations[0].hit.source == "ada.txt" and answer.prompt_format == "llama-2-chat"
    follow_up = rag.ask("Who did she work with?", [("Who wrote the first program?", answer.text)])
    assert follow_up.query == "Who did she work with?" and not follow_up.refused
    assert [s.source for s in rag.sources()] == ["ada.txt"] and rag.delete("ada.txt") == 1 and store.count() == 0


def test_the_fakes_follow_the_protocols() -> None:
    assert isinstance(HashEmbedder(), Embedder)
    assert isinstance(MemoryStore(), Store) and MemoryStore(keywords=False).keyword_query is None
    assert isinstance(ReadingGenerator(), Generator)


def test_the_built_in_backends_follow_the_protocols(embedder, tmp_path: Path) -> None:
    from rag.generate.extractive import ExtractiveGenerator
    from rag.generate.openai_compat import OpenAICompatGenerator
    from rag.keyword import KeywordIndex as Fts5Index
    from rag.store import ChromaStore, CombinedStore

    assert isinstance(embedder, Embedder)
    chroma = ChromaStore(tmp_path / "chroma")
    keywords = Fts5Index(tmp_path / "kw.sqlite3")
    assert isinstance(chroma, Store) and chroma.keyword_query is None
    assert isinstance(keywords, KeywordIndex)
    combined = CombinedStore(chroma, keywords)
    assert isinstance(combined, Store) and combined.keyword_query is not None
    extractive = ExtractiveGenerator(embedder)
    assert isinstance(extractive, Extractor) and is_extractor(extractive) and not isinstance(extractive, Generator)
    openai = OpenAICompatGenerator("http://127.0.0.1:9/v1", "tiny")
    assert isinstance(openai, Generator) and not is_extractor(openai) and openai.render_chat_template is not None
    keywords.close()
