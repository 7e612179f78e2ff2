"""rag.retrieve: dense, keyword and hybrid ranking over any Store, with the fakes (no MiniLM, no Chroma).

The same rankings on the real MiniLM + Chroma + FTS5 are in tests/rag/test_keyword.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from rag.errors import ConfigError, RagError
from rag.retrieve import EmptyQueryError, Retriever, minmax_fusion, reciprocal_rank_fusion
from rag.types import Document
from tests.fakes import HashEmbedder, MemoryStore

NOTES = {
    "pumps.txt": "The XJ-9000 pump needs a new gasket every 300 hours. Gaskets come in boxes of ten.",
    "valves.txt": "Valves should be inspected monthly for corrosion and leaks.",
    "motors.txt": "Electric motors run hot when their cooling fins are clogged with dust.",
    "pump-history.txt": "Pumps have been used since antiquity to move water out of mines.",
}


@pytest.fixture
def parts() -> tuple[HashEmbedder, MemoryStore]:
    from ingest.index import Indexer, SourceJob

    embedder, store = HashEmbedder(), MemoryStore()
    Indexer(embedder, store).run([SourceJob(n, lambda n=n, t=t: [Document.from_text(n, t)]) for n, t in NOTES.items()])
    return embedder, store


def cosine(embedder: HashEmbedder, query: str, text: str) -> float:
    q, t = embedder.embed([query, text])
    return float(q @ t)


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]], [1.0, 1.0])
    assert fused[0] == "a" and fused.index("c") < fused.index("b") and set(fused) == {"a", "b", "c", "d"}
    assert reciprocal_rank_fusion([["a", "b"], ["b", "a"]], [1.0, 0.1])[0] == "a"


def test_minmax_fusion_weighs_normalised_scores() -> None:
    dense = {"a": 0.90, "b": 0.80, "c": 0.50}
    keyword = {"c": 12.0, "b": 6.0}  # "a" is no keyword candidate: BM25 0
    # Normalised: cosine a 1, b 0.75, c 0; BM25 a 0, b 0.5, c 1.
    assert minmax_fusion(dense, keyword, 0.0) == ["a", "b", "c"]
    assert minmax_fusion(dense, keyword, 1.0) == ["c", "b", "a"]
    assert minmax_fusion(dense, keyword, 0.5) == ["b", "a", "c"]  # 0.625, 0.5, 0.5: ties keep the dense order
    # No keyword matched at all: the dense order stands whatever the weight.
    assert minmax_fusion(dense, {}, 0.9) == ["a", "b", "c"]
    assert minmax_fusion({}, keyword, 0.5) == []


def test_dense_ranks_by_cosine_and_every_hit_carries_it(parts) -> None:
    embedder, store = parts
    hits = Retriever(embedder, store, mode="dense").search("When does the pump gasket need replacing?", k=2)
    assert hits[0].source == "pumps.txt" and len(hits) == 2
    for h in hits:
        assert h.score == pytest.approx(cosine(embedder, "When does the pump gasket need replacing?", h.text), abs=1e-5)


@pytest.mark.parametrize("fusion", ["minmax", "rrf"])
def test_keyword_and_hybrid_hits_carry_the_cosine_too(parts, fusion: str) -> None:
    embedder, store = parts
    for mode in ("keyword", "hybrid"):
        hits = Retriever(embedder, store, mode=mode, fusion=fusion).search("XJ-9000 corrosion", k=4)
        assert {h.source for h in hits[:2]} == {"pumps.txt", "valves.txt"}
        for h in hits:
            assert h.score == pytest.approx(cosine(embedder, "XJ-9000 corrosion", h.text), abs=1e-5)


def test_keyword_mode_ranks_by_bm25(parts) -> None:
    embedder, store = parts
    found = Retriever(embedder, store, mode="keyword").search("gaskets for the XJ-9000", k=4)
    assert [h.source for h in found] == ["pumps.txt"]  # only chunks that hold a query word


def test_sources_restrict_every_mode(parts) -> None:
    embedder, store = parts
    for mode in ("dense", "keyword", "hybrid"):
        hits = Retriever(embedder, store, mode=mode).search("pump gasket corrosion", k=5, sources=["valves.txt"])
        assert {h.source for h in hits} == {"valves.txt"}


def test_bad_queries_and_settings_are_one_clear_error(parts) -> None:
    embedder, store = parts
    retriever = Retriever(embedder, store)
    with pytest.raises(EmptyQueryError, match="The query is empty"):
        retriever.search("  \n ")
    with pytest.raises(RagError, match="k=0 must be at least 1"):
        retriever.search("pump", k=0)
    with pytest.raises(ConfigError, match="retrieval_mode='fuzzy' is not one of dense, keyword, hybrid"):
        Retriever(embedder, store, mode="fuzzy")
    with pytest.raises(ConfigError, match="retrieval mode 'hybrid' needs a keyword index"):
        Retriever(embedder, MemoryStore(keywords=False))
    assert Retriever(embedder, MemoryStore(keywords=False), mode="dense").search("pump") == []


def test_a_huge_or_undecodable_query_is_cut_and_cleaned(parts) -> None:
    embedder, store = parts
    hits = Retriever(embedder, store).search("gasket \udcff " + "x " * 50_000, k=1)
    assert hits[0].source == "pumps.txt"
    assert np.isfinite(hits[0].score)


# -- the real store: fusion over ids and cosines reads only the winners' chunks --------------------
@pytest.fixture(scope="module")
def three_articles(embedder, squad_file, tmp_path_factory):
    """A real store holding three SQuAD articles (ingested once for the module), and their questions."""
    from ingest.index import SourceJob
    from rag import RAG
    from rag.eval.squad import load_squad

    data = load_squad(squad_file, limit_articles=3)
    rag = RAG(tmp_path_factory.mktemp("three_articles"))
    rag.ingest([SourceJob(d.source, lambda d=d: [d]) for d in data.documents])
    return rag, data


@pytest.mark.parametrize("mode,fusion", [("hybrid", "minmax"), ("hybrid", "rrf"), ("keyword", "minmax")])
def test_the_cheaper_reads_rank_and_score_exactly_as_whole_hits(three_articles, monkeypatch, mode: str,
                                                                fusion: str) -> None:
    from bench.query_latency import WholeHits  # the real store minus its cheaper reads

    rag, data = three_articles
    store = rag.store
    reads: list[tuple[str, int]] = []

    def counted(name: str, real):
        def read(*args, **kw):
            got = real(*args, **kw)
            reads.append((name, len(got)))
            return got
        return read

    for name in ("query", "nearest", "vectors_of", "get_with_vectors"):
        monkeypatch.setattr(store, name, counted(name, getattr(store, name)))
    fast = Retriever(rag.embedder, store, mode=mode, fusion=fusion)
    plain = Retriever(rag.embedder, WholeHits(store), mode=mode, fusion=fusion)  # the path any Store takes
    for q in data.questions[:40:4]:
        reads.clear()
        a = fast.search(q.text, k=5)
        if mode == "hybrid":  # no chunk text read for the 50 candidates: only for the 5 returned
            # (rrf ranks without cosines: the keyword side reads no vectors)
            wanted = {"nearest", "vectors_of"} if fusion == "minmax" else {"nearest"}
            assert {n for n, _ in reads[:-1]} == wanted and len(reads) == len(wanted) + 1
            assert reads[-1] == ("get_with_vectors", 5)
        b = plain.search(q.text, k=5)
        assert [h.chunk.id for h in a] == [h.chunk.id for h in b] and len(a) == 5
        assert [h.chunk for h in a] == [h.chunk for h in b]
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-6)
