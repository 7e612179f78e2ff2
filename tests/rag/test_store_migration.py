"""A store made before collections migrates once on open: every source into ``default``, no re-embedding.

The old store is built as the code before collections wrote it: the same chunks, ids and
vectors (the default collection's ids are the old ids), metadata without a ``collection`` key,
no migration mark in Chroma, and a tantivy index of the previous schema.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rag import RAG
from rag.settings import DEFAULT_COLLECTION
from rag.store import MIGRATED_MARK

NOTES = [("pumps.txt", "The centrifugal pump moves water through the cooling loop of the plant."),
         ("valves.txt", "A butterfly valve regulates the flow of steam into the turbine hall."),
         ("wiring.txt", "The control room wiring follows the colour code of the 1998 standard.")]


def _old_store(embedder, source: Path, target: Path) -> dict:
    """Fill ``source`` with today's code, then write ``target`` as the code before collections did."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    new = RAG(source)
    for name, text in NOTES:
        new.add_text(text, name=name)
    rows = new.store.vectors.dump()
    s = new.settings
    client = chromadb.PersistentClient(path=str(target / "chroma"), settings=ChromaSettings(anonymized_telemetry=False))
    old = client.get_or_create_collection(s.collection, embedding_function=None,
                                          configuration={"hnsw": {"space": "cosine"}})
    ids = sorted(rows)
    old.upsert(ids=ids, embeddings=np.asarray([rows[i][2] for i in ids], dtype=np.float32),
               documents=[rows[i][0] for i in ids],
               metadatas=[{k: v for k, v in rows[i][1].items() if k != "collection"} for i in ids])
    keyword = target / "keyword" / f"{s.collection}.tantivy"
    keyword.mkdir(parents=True)
    (keyword / "meta.json").write_text("{}")
    (keyword / "rag-schema").write_text("1")
    return rows


def test_an_old_store_is_migrated_once_into_default_without_re_embedding(embedder, tmp_path: Path, capfd) -> None:
    rows = _old_store(embedder, tmp_path / "new", tmp_path / "old")
    rag = RAG(tmp_path / "old")
    rag.__dict__["embedder"] = None  # opening, listing and migrating must never embed anything
    store = rag.store
    err = capfd.readouterr().err
    assert "Migrating into collections" in err and "Rebuilding the keyword index" in err
    assert store.vectors.migrated and store.vectors._collection.metadata[MIGRATED_MARK]
    after = store.vectors.dump()
    assert set(after) == set(rows)  # the same ids
    for i, (text, meta, vector) in after.items():
        assert text == rows[i][0] and np.allclose(vector, rows[i][2])  # the same vectors: nothing re-embedded
        assert meta["collection"] == DEFAULT_COLLECTION
    assert {(s.collection, s.source) for s in rag.sources()} == {(DEFAULT_COLLECTION, n) for n, _ in NOTES}
    assert [(c.name, c.sources, c.chunks) for c in rag.collections()] == [(DEFAULT_COLLECTION, 3, 3)]
    assert store.keywords.ids_for("pumps.txt", collection=DEFAULT_COLLECTION) == \
        store.vectors.ids_for("pumps.txt", collection=DEFAULT_COLLECTION)
    del rag.__dict__["embedder"]
    # The migrated store is a store of this version: ingesting the same text again changes nothing.
    assert rag.add_text(NOTES[0][1], name=NOTES[0][0]).unchanged == {"pumps.txt": 1}
    hit = rag.search("What moves water through the cooling loop?", k=1, collection=DEFAULT_COLLECTION)[0]
    assert hit.source == "pumps.txt" and hit.chunk.collection == DEFAULT_COLLECTION
    assert store.vectors.migrate() == 0  # once: a second open has nothing to do
    capfd.readouterr()
    RAG(tmp_path / "old").store
    assert "Migrating" not in capfd.readouterr().err


def test_a_migration_cut_short_is_finished_by_the_next_open(embedder, tmp_path: Path) -> None:
    rows = _old_store(embedder, tmp_path / "new", tmp_path / "old")
    from rag.store import ChromaStore

    # What a kill midway leaves: some chunks updated, the store not marked.
    vectors = ChromaStore(tmp_path / "old" / "chroma")
    first = sorted(rows)[:1]
    vectors._collection.update(ids=first, metadatas=[{"collection": DEFAULT_COLLECTION}])
    assert not vectors.migrated
    assert vectors.migrate(progress=False) == len(rows) - 1  # only what was left
    assert vectors.migrated
    rag = RAG(tmp_path / "old")
    assert {s.collection for s in rag.sources()} == {DEFAULT_COLLECTION} and rag.store.count() == len(rows)
