"""The BM25 keyword index beside Chroma: same chunk ids always, and hybrid retrieval over both."""

from __future__ import annotations

import pytest

from rag import RAG
from rag.keyword import KeywordIndex, match_expression
from rag.retrieve import Retriever
from rag.types import Document

NOTES = [
    ("pumps.txt", "The XJ-9000 pump needs a new gasket every 300 hours. Gaskets come in boxes of ten."),
    ("valves.txt", "Valves should be inspected monthly for corrosion and leaks."),
    ("motors.txt", "Electric motors run hot when their cooling fins are clogged with dust."),
]


def _consistent(rag: RAG) -> None:
    vector_ids = set(rag.store.vectors.dump())
    assert rag.store.keywords.all_ids() == vector_ids
    for info in rag.sources():
        assert rag.store.keywords.ids_for(info.source) == rag.store.vectors.ids_for(info.source)


def test_add_reingest_replace_and_delete_keep_both_indexes_identical(rag: RAG) -> None:
    for name, text in NOTES:
        rag.add_text(text, name=name)
    _consistent(rag)
    rag.add_text(NOTES[0][1], name="pumps.txt")  # unchanged
    rag.add_text("The XJ-9000 pump now needs a gasket every 250 hours.", name="pumps.txt")  # replaced
    _consistent(rag)
    rag.delete("valves.txt")
    _consistent(rag)
    assert rag.store.keywords.count() == rag.store.count() == 2


def test_a_crash_between_the_two_writes_is_repaired_by_the_next_ingest(rag: RAG) -> None:
    doc = Document(source="pumps.txt", text=NOTES[0][1] * 20, kind="text", title="pumps.txt")
    chunks = rag.indexer.chunk([doc])
    # Simulate a kill after the vectors were written but before the keyword index was.
    rag.store.vectors.add(chunks, rag.embedder.embed([c.text for c in chunks]))
    assert rag.store.keywords.count() == 0
    rag.add_text(doc.text, name="pumps.txt")
    _consistent(rag)
    # And the other way round: keyword rows left over from an older version of the source.
    rag.store.keywords.add([chunks[0].__class__(**{**chunks[0].__dict__, "id": "stale-id"})])
    rag.add_text(doc.text, name="pumps.txt")
    _consistent(rag)
    assert "stale-id" not in rag.store.keywords.all_ids()


def test_hybrid_finds_a_rare_code_and_still_reports_cosine(rag: RAG, embedder) -> None:
    for name, text in NOTES:
        rag.add_text(text, name=name)
    keyword = Retriever(embedder, rag.store, mode="keyword").search("XJ-9000", k=1)
    assert keyword[0].source == "pumps.txt"
    hybrid = Retriever(embedder, rag.store, mode="hybrid").search("how often does the XJ-9000 need service", k=3)
    assert hybrid[0].source == "pumps.txt"
    q = embedder.embed(["how often does the XJ-9000 need service"])[0]
    for hit in hybrid:
        assert hit.score == pytest.approx(float(q @ embedder.embed([hit.text])[0]), abs=1e-3)


def test_keyword_search_filters_by_source_and_ignores_fts_syntax(tmp_path) -> None:
    from rag.types import Chunk

    index = KeywordIndex(tmp_path / "kw.sqlite3")
    chunk = Chunk(id="1", source="a", text='He said "NEAR(x y)" AND OR NOT * ^', kind="text", title="a",
                  start=0, end=10, tokens=5)
    index.add([chunk, Chunk(**{**chunk.__dict__, "id": "2", "source": "b"})])
    assert [i for i, _ in index.search('"NEAR(x y)" AND', 5)] in (["1", "2"], ["2", "1"])
    assert [i for i, _ in index.search("said", 5, sources=["b"])] == ["2"]
    assert index.search("   ", 5) == [] and match_expression("?!") is None


def test_hybrid_minmax_is_the_default_and_ranks_keyword_only_candidates(rag: RAG, embedder) -> None:
    for name, text in NOTES:
        rag.add_text(text, name=name)
    assert (rag.retriever.mode, rag.retriever.fusion) == ("hybrid", "minmax")
    hits = rag.search("XJ-9000 gasket boxes", k=3)
    assert hits[0].source == "pumps.txt"
    assert [h.score for h in hits] == pytest.approx([float(embedder.embed(["XJ-9000 gasket boxes"])[0]
                                                           @ embedder.embed([h.text])[0]) for h in hits], abs=1e-3)
    rrf = Retriever(embedder, rag.store, mode="hybrid", fusion="rrf", keyword_weight=1.0)
    assert rrf.search("XJ-9000 gasket boxes", k=1)[0].source == "pumps.txt"
    with pytest.raises(Exception, match="fusion='max' is not one of minmax, rrf; e.g. RAG_FUSION=minmax"):
        Retriever(embedder, rag.store, fusion="max")
