"""The Store contract: one suite of tests that every rag.protocols.Store must pass.

Modelled on haystack's ``testing/document_store.py``: a class of tests over a ``store``
fixture; tests/rag/test_store.py subclasses it once per store (Chroma embedded, Chroma behind
a real ``chroma run`` server, both with and without the keyword index, and the in-memory fake).
A new backend passes this suite before anything else is tried on it.
"""

from __future__ import annotations

import numpy as np
import pytest

from rag.errors import StoreError
from rag.protocols import Store
from rag.types import Chunk, chunk_id

DIM = 32


def unit(seed: int, dim: int = DIM) -> np.ndarray:
    """A deterministic random unit vector."""
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def make_chunk(source: str, text: str, *, start: int = 0, kind: str = "text", title: str | None = None,
               url: str | None = None, section: str | None = None, page: int | None = None) -> Chunk:
    return Chunk(id=chunk_id(source, section, page, start, text), source=source, text=text, kind=kind,
                 title=title or source, start=start, end=start + len(text), tokens=len(text.split()),
                 url=url, section=section, page=page)


PUMPS = make_chunk("pumps.txt", "The XJ-9000 pump needs a new gasket every 400 hours of service.")
VALVES = make_chunk("pumps.txt", "Valves are checked weekly; a sticking valve is cleaned, not replaced.", start=70)
TURING = make_chunk("wikipedia:Alan Turing", "Turing was born in Maida Vale, London, in 1912.", kind="wikipedia",
                    title="Alan Turing", url="https://en.wikipedia.org/wiki/Alan_Turing#Early_life",
                    section="Early life")
PAPER = make_chunk("paper.pdf", "We train a linear classifier on the frozen features.", kind="pdf", page=3)
CHUNKS = [PUMPS, VALVES, TURING, PAPER]
# Orthonormal, so the expected ranking of a query mixed from two of them is exact.
VECTORS = np.linalg.qr(np.random.default_rng(7).normal(size=(DIM, len(CHUNKS))))[0].T.astype(np.float32)


class StoreContract:
    """Subclass with a ``store`` fixture returning an empty store; every test starts from it."""

    @pytest.fixture
    def store(self) -> Store:  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.fixture
    def filled(self, store: Store) -> Store:
        store.add(CHUNKS, VECTORS)
        return store

    def test_follows_the_protocol(self, store: Store) -> None:
        assert isinstance(store, Store)
        assert store.keyword_query is None or callable(store.keyword_query)

    def test_an_empty_store_has_nothing(self, store: Store) -> None:
        assert store.count() == 0 and store.sources() == [] and store.ids_for("pumps.txt") == set()
        assert store.query(unit(0), 5) == [] and store.get_with_vectors([PUMPS.id]) == []
        if store.keyword_query is not None:
            assert store.keyword_query("gasket", 5) == []

    def test_chunks_and_vectors_come_back_as_they_went_in(self, filled: Store) -> None:
        assert filled.count() == 4
        got = filled.get_with_vectors([PAPER.id, "no-such-id", TURING.id, PUMPS.id])
        assert [c for c, _ in got] == [PAPER, TURING, PUMPS]  # every field, in the order asked
        np.testing.assert_allclose(np.stack([v for _, v in got]), VECTORS[[3, 2, 0]], atol=1e-6)
        assert [v for _, v in filled.get_with_vectors([VALVES.id], vectors=False)] == [None]
        assert filled.get_with_vectors([]) == []

    def test_adding_an_id_again_overwrites_it(self, filled: Store) -> None:
        filled.add([PUMPS], unit(99)[None, :])
        assert filled.count() == 4
        (chunk, vector), = filled.get_with_vectors([PUMPS.id])
        assert chunk == PUMPS and vector == pytest.approx(unit(99), abs=1e-6)

    def test_query_ranks_by_cosine_best_first(self, filled: Store) -> None:
        query = VECTORS[2] * 0.8 + VECTORS[0] * 0.2
        query /= np.linalg.norm(query)
        hits = filled.query(query, 3)
        assert [h.chunk.id for h in hits][:2] == [TURING.id, PUMPS.id]
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        for h in hits:
            assert h.score == pytest.approx(float(VECTORS[CHUNKS.index(h.chunk)] @ query), abs=1e-4)
        assert hits[0].chunk == TURING
        assert len(filled.query(query, 50)) == 4  # fewer hits when fewer chunks

    def test_query_filters_by_source(self, filled: Store) -> None:
        assert {h.source for h in filled.query(unit(0), 10, sources=["pumps.txt"])} == {"pumps.txt"}
        assert len(filled.query(unit(0), 10, sources=["pumps.txt"])) == 2
        both = filled.query(unit(0), 10, sources=["paper.pdf", "wikipedia:Alan Turing"])
        assert {h.source for h in both} == {"paper.pdf", "wikipedia:Alan Turing"}
        assert filled.query(unit(0), 10, sources=["unknown.pdf"]) == []

    def test_ids_for_a_source(self, filled: Store) -> None:
        assert filled.ids_for("pumps.txt") == {PUMPS.id, VALVES.id}
        assert filled.ids_for("pumps.txt", complete=False) == {PUMPS.id, VALVES.id}
        assert filled.ids_for("unknown.pdf") == set()

    def test_delete_ids_and_sources(self, filled: Store) -> None:
        filled.delete_ids([VALVES.id, "no-such-id"])
        assert filled.ids_for("pumps.txt") == {PUMPS.id} and filled.count() == 3
        assert filled.delete_source("wikipedia:Alan Turing") == 1 and filled.delete_source("unknown.pdf") == 0
        assert {s.source for s in filled.sources()} == {"pumps.txt", "paper.pdf"}
        assert [h.source for h in filled.query(VECTORS[2], 10)].count("wikipedia:Alan Turing") == 0
        filled.delete_ids([])
        assert filled.count() == 2

    def test_sources_list_counts_titles_and_page_urls(self, filled: Store) -> None:
        infos = {s.source: s for s in filled.sources()}
        assert {s: i.chunks for s, i in infos.items()} == {"pumps.txt": 2, "wikipedia:Alan Turing": 1, "paper.pdf": 1}
        turing = infos["wikipedia:Alan Turing"]
        assert (turing.kind, turing.title, turing.url) == ("wikipedia", "Alan Turing",
                                                           "https://en.wikipedia.org/wiki/Alan_Turing")
        assert (infos["paper.pdf"].kind, infos["paper.pdf"].url) == ("pdf", None)
        assert all(i.added_at for i in infos.values())
        order = [(s.added_at, s.source) for s in filled.sources()]
        assert order == sorted(order, reverse=True)  # newest first

    def test_chunks_and_vectors_must_pair_up(self, store: Store) -> None:
        with pytest.raises(StoreError, match="2 chunks but 1 vectors"):
            store.add([PUMPS, VALVES], VECTORS[:1])
        assert store.count() == 0

    def test_keyword_query_ranks_by_bm25(self, filled: Store) -> None:
        if filled.keyword_query is None:
            assert filled.get_with_vectors([PUMPS.id])  # a vector-only store: dense retrieval only
            return
        found = filled.keyword_query("which gasket does the XJ-9000 pump need", 5)
        assert found[0][0] == PUMPS.id and all(score > 0 for _, score in found)
        assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
        assert [i for i, _ in filled.keyword_query("Maida Vale", 5)] == [TURING.id]
        assert [i for i, _ in filled.keyword_query("Early life", 5)] == [TURING.id]  # the section counts
        assert filled.keyword_query("gasket valve", 5, sources=["paper.pdf"]) == []
        assert filled.keyword_query('"NEAR(x y)" AND OR *', 5) == [] and filled.keyword_query("?!", 5) == []
        filled.delete_source("pumps.txt")
        assert filled.keyword_query("gasket", 5) == []
