"""The BM25 keyword index beside Chroma: same chunk ids always, and hybrid retrieval over both."""

from __future__ import annotations

import shutil

import pytest

from rag import RAG
from rag.keyword import KeywordIndex, query_terms, search_terms
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

    index = KeywordIndex(tmp_path / "kw")
    chunk = Chunk(id="1", source="a", text='He said "NEAR(x y)" AND OR NOT * ^', kind="text", title="a",
                  start=0, end=10, tokens=5)
    index.add([chunk, Chunk(**{**chunk.__dict__, "id": "2", "source": "b"})])
    assert [i for i, _ in index.search('"NEAR(x y)" AND', 5)] in (["1", "2"], ["2", "1"])
    assert [i for i, _ in index.search("said", 5, sources=["b"])] == ["2"]
    assert index.search("   ", 5) == [] and query_terms("?!") == [] and index.search("?!", 5) == []


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


def _chunk(id_: str, source: str, text: str, **extra):
    from rag.types import Chunk

    return Chunk(id=id_, source=source, text=text, kind="text", title=extra.pop("title", source), start=0,
                 end=len(text), tokens=5, **extra)


def test_title_and_section_are_indexed_stemmed_and_accent_folded(tmp_path) -> None:
    index = KeywordIndex(tmp_path / "kw")
    index.add([_chunk("1", "manual.pdf", "Replace the gaskets every year.", title="Centrifugal pumps",
                      section="Maintenance"),
               _chunk("2", "menu.txt", "The café serves naïve coffee.")])
    assert [i for i, _ in index.search("gasket", 5)] == ["1"]  # gaskets -> gasket
    assert [i for i, _ in index.search("pumping maintenance", 5)] == ["1"]  # from title and section
    assert [i for i, _ in index.search("cafe naive", 5)] == ["2"]
    # Stop words alone still search; mixed with other words they are dropped.
    assert query_terms("what is the pumps") == ["pumps"] and query_terms("the of") == ["the", "of"]
    assert search_terms("what is the pumps") == ["pump"]
    index.add([_chunk("1", "manual.pdf", "Replace the gaskets every year.")])  # same id again: replaced
    assert index.count() == 2 and index.ids_for("manual.pdf") == {"1"}
    index.close()


def test_two_indexes_on_one_folder_in_one_process_share_it(tmp_path) -> None:
    import threading

    a, b = KeywordIndex(tmp_path / "kw"), KeywordIndex(tmp_path / "kw")
    a.add([_chunk("1", "a", "pumps")])
    b.add([_chunk("2", "b", "pumps")])
    assert a.all_ids() == b.all_ids() == {"1", "2"}

    def write(index, prefix):
        for n in range(10):
            index.add([_chunk(f"{prefix}{n}", prefix, "valves and pumps")])

    threads = [threading.Thread(target=write, args=(ix, p)) for ix, p in ((a, "x"), (b, "y"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert a.count() == b.count() == 22
    a.close()
    b.delete_ids(["1", "x0"])
    assert b.count() == 20 and [i for i, _ in b.search("pumps", 5, sources=["b"])] == ["2"]
    b.close()


_CHILD = """
import sys
from rag.errors import StoreError
from rag.keyword import KeywordIndex
from rag.types import Chunk
index = KeywordIndex(sys.argv[1], lock_timeout=float(sys.argv[2]))
print("sees", sorted(i for i, _ in index.search("pumps", 10)), flush=True)
try:
    index.add([Chunk(id="child", source="c", text="pumps from the child", kind="text", title="c", start=0, end=5,
                     tokens=5)])
    print("wrote", index.count(), flush=True)
except StoreError as exc:
    print("refused", exc, flush=True)
"""


def test_another_process_reads_and_writes_in_turn_and_waits_for_a_busy_writer(tmp_path) -> None:
    import os
    import subprocess
    import sys

    def child(timeout: float) -> str:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        run = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path / "kw"), str(timeout)], env=env,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        return run.stdout

    index = KeywordIndex(tmp_path / "kw")
    index.add([_chunk("parent", "p", "pumps from the parent")])
    # No writer is held between writes: the other process reads this commit and writes its own.
    out = child(10)
    assert "sees ['parent']" in out and "wrote 2" in out
    assert [i for i, _ in index.search("child", 5)] == ["child"]  # its commit shows here at once
    # While a write is under way here, the other process waits its timeout, then says why.
    index.delete_ids(["child"])
    held = index._s.index.writer(heap_size=15 * 2**20, num_threads=1)
    out = child(0.5)
    assert "refused The keyword index at" in out and "being written by another process" in out
    del held
    assert "wrote 2" in child(10)
    index.close()


def test_a_store_made_with_the_fts5_index_is_rebuilt_on_tantivy_once(embedder, _isolated_data_dir, capsys) -> None:
    from rag.keyword import index_exists
    from rag.keyword_fts5 import Fts5KeywordIndex
    from rag.store import ChromaStore, CombinedStore

    old = RAG(_isolated_data_dir)
    s = old.settings
    legacy = s.data_dir / "keyword" / f"{s.collection}.sqlite3"
    fts5 = Fts5KeywordIndex(legacy)
    # The store exactly as earlier versions opened it: Chroma plus the SQLite FTS5 index.
    old.__dict__["store"] = CombinedStore(ChromaStore(s.store_dir, collection=s.collection), fts5)
    for name, text in NOTES:
        old.add_text(text * 8, name=name)
    ids = fts5.all_ids()
    assert ids == set(old.store.vectors.dump()) and len(ids) > 3
    fts5_top = [i for i, _ in fts5.search("gasket boxes", 3)]
    fts5.close()
    capsys.readouterr()

    new = RAG(_isolated_data_dir)
    assert new.store.keywords.all_ids() == ids
    assert "Rebuilding the keyword index" in capsys.readouterr().err
    assert not legacy.exists() and index_exists(s.data_dir / "keyword" / f"{s.collection}.tantivy")
    assert [i for i, _ in new.store.keywords.search("gasket boxes", 3)][0] == fts5_top[0]
    assert new.search("XJ-9000 gasket", k=1)[0].source == "pumps.txt"
    _consistent(new)
    new.store.keywords.close()

    again = RAG(_isolated_data_dir)
    assert again.store.keywords.all_ids() == ids and "Rebuilding" not in capsys.readouterr().err
    again.delete("valves.txt")
    _consistent(again)


def test_document_frequencies_count_chunks_as_bm25_matches_words(tmp_path) -> None:
    from rag.types import Chunk

    index = KeywordIndex(tmp_path / "kw")
    texts = [("pumps.txt", "Pumps need gaskets."), ("pumps.txt", "A pump is serviced yearly."),
             ("valves.txt", "Valves leak; a pump does not.")]
    index.add([Chunk(id=f"c{i}", source=src, text=t, kind="text", title=src, start=0, end=len(t), tokens=5)
               for i, (src, t) in enumerate(texts)])
    # Stemmed as the index stems ("pumps" and "pump" are one word), titles included ("valves.txt").
    assert index.document_frequencies(["pump", "valves", "gasket", "turbine", "?!"]) == (
        3, {"pump": 3, "valves": 1, "gasket": 1, "turbine": 0, "?!": 0})
    assert index.document_frequencies(["pump", "valves"], sources=["pumps.txt"]) == (2, {"pump": 2, "valves": 0})
    index.close()


def test_search_scores_are_classic_bm25_so_words_in_most_chunks_weigh_next_to_nothing(tmp_path) -> None:
    import math

    from rag.keyword import idf_ratio

    # Short chunks (tantivy stores lengths exactly below 40 words) without titles, so each
    # score can be computed by hand: BM25 with k1 1.2, b 0.75 and the Robertson/Spärck Jones IDF.
    texts = ["pump gasket seal", "pump motor", "pump valve valve", "pump fan belt cover", "gasket box", "turbine"]
    index = KeywordIndex(tmp_path / "kw")
    index.add([_chunk(f"c{i}", f"s{i}.txt", t, title="") for i, t in enumerate(texts)])
    docs = [t.split() for t in texts]
    avgdl = sum(map(len, docs)) / len(docs)

    def bm25(query: list[str], doc: list[str]) -> float:
        total = 0.0
        for word in query:
            n, tf = sum(word in d for d in docs), doc.count(word)
            if tf:
                idf = max(math.log((len(docs) - n + 0.5) / (n + 0.5)), 1e-6)
                total += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(doc) / avgdl))
        return total

    for query in ("pump gasket", "valve pump", "gasket turbine box"):
        got = dict(index.search(query, 10))
        want = {f"c{i}": bm25(query.split(), d) for i, d in enumerate(docs) if set(query.split()) & set(d)}
        assert got.keys() == want.keys()
        for id_, score in want.items():
            assert got[id_] == pytest.approx(score, rel=1e-3, abs=1e-6), (query, id_)
    # "pump" is in 4 of 6 chunks: its weight is FTS5's floor, so the one chunk with "gasket"
    # and "seal" outranks every chunk with "pump" alone by far (tantivy's own IDF gives such
    # a word about a third of a rare one's weight).
    ranked = index.search("pump seal", 10)
    assert ranked[0][0] == "c0" and all(score < 1e-5 for _, score in ranked[1:])
    assert idf_ratio(6, 4) < 1e-5 < idf_ratio(6, 1) < 1.0 and idf_ratio(6, 0) == 1.0
    index.close()


def test_an_index_of_the_previous_schema_is_rebuilt_once_with_porter_stems(embedder, _isolated_data_dir, capsys) -> None:
    import tantivy

    from rag.keyword import index_exists

    old = RAG(_isolated_data_dir)
    s = old.settings
    old.add_text("Generalization of the pump curves to every impeller size.", name="curves.txt")
    for name, text in NOTES:
        old.add_text(text, name=name)
    rows = old.store.vectors.dump()
    old.store.keywords.close()
    # The index as the previous version wrote it: the same ids, Snowball-stemmed by tantivy, schema 2.
    path = s.data_dir / "keyword" / f"{s.collection}.tantivy"
    shutil.rmtree(path)
    path.mkdir()
    sb = tantivy.SchemaBuilder()
    for field in ("id", "source", "collection"):
        sb.add_text_field(field, stored=field == "id", tokenizer_name="raw", index_option="basic")
    sb.add_text_field("body", stored=False, tokenizer_name="rag_en", index_option="freq")
    previous = tantivy.Index(sb.build(), path=str(path))
    snowball = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).filter(tantivy.Filter.lowercase()) \
        .filter(tantivy.Filter.stemmer("english")).build()
    previous.register_tokenizer("rag_en", snowball)
    writer = previous.writer(heap_size=15 * 2**20, num_threads=1)
    for id_, (text, meta, _) in rows.items():
        writer.add_document(tantivy.Document(id=id_, source=meta["source"], collection=meta["collection"], body=text))
    writer.commit()
    del writer, previous
    (path / "rag-schema").write_text("2")
    assert not index_exists(path)
    capsys.readouterr()

    new = RAG(_isolated_data_dir)
    assert new.store.keywords.all_ids() == set(rows)
    assert "Rebuilding the keyword index" in capsys.readouterr().err and index_exists(path)
    # Porter stems "generalization" to "gener"; Snowball's index held "general": only a rebuilt
    # index finds it.
    assert [i for i, _ in new.store.keywords.search("generalization", 5)] == list(new.store.vectors.ids_for("curves.txt"))
    _consistent(new)
    new.store.keywords.close()
    again = RAG(_isolated_data_dir)
    assert again.store.keywords.count() == len(rows) and "Rebuilding" not in capsys.readouterr().err
