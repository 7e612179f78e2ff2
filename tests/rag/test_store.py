"""The store contract (tests/rag/store_contract.py) on every Store: Chroma embedded, Chroma server, the fake."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from rag.keyword import KeywordIndex
from rag.store import ChromaStore, CombinedStore
from tests.fakes import MemoryStore
from tests.rag.store_contract import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()


class TestMemoryStoreWithoutKeywords(StoreContract):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore(keywords=False)


def fresh_collection() -> str:
    return f"contract-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def chroma_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedded Chroma directory for the module (opening a client is the slow part); a fresh collection per test."""
    return tmp_path_factory.mktemp("chroma")


class TestChromaEmbedded(StoreContract):
    @pytest.fixture
    def store(self, chroma_dir: Path) -> ChromaStore:
        return ChromaStore(chroma_dir, collection=fresh_collection())


class TestChromaEmbeddedWithKeywords(StoreContract):
    """What RAG.store is: Chroma on disk plus the SQLite FTS5 keyword index."""

    @pytest.fixture
    def store(self, chroma_dir: Path, tmp_path: Path):
        keywords = KeywordIndex(tmp_path / "keyword.sqlite3")
        yield CombinedStore(ChromaStore(chroma_dir, collection=fresh_collection()), keywords)
        keywords.close()


class TestChromaServerWithKeywords(StoreContract):
    """RAG_CHROMA_URL: the same store behind a real `chroma run` (one server, a fresh collection per test)."""

    @pytest.fixture
    def store(self, chroma_server: str, tmp_path: Path):
        keywords = KeywordIndex(tmp_path / "keyword.sqlite3")
        yield CombinedStore(ChromaStore(url=chroma_server, collection=fresh_collection()), keywords)
        keywords.close()


def test_a_combined_store_reports_only_chunks_complete_in_both_indexes(tmp_path: Path) -> None:
    from tests.rag.store_contract import CHUNKS, PUMPS, VALVES, VECTORS

    vectors = ChromaStore(tmp_path / "chroma")
    keywords = KeywordIndex(tmp_path / "keyword.sqlite3")
    store = CombinedStore(vectors, keywords)
    vectors.add(CHUNKS[:2], VECTORS[:2])  # a crash between the two writes: vectors only
    keywords.add(CHUNKS[:1])
    assert store.ids_for("pumps.txt") == {PUMPS.id}
    assert store.ids_for("pumps.txt", complete=False) == {PUMPS.id, VALVES.id}
    assert store.delete_source("pumps.txt") == 2 and vectors.count() == 0 and keywords.count() == 0
    keywords.close()
