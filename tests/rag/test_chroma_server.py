"""Client-server mode: RAG_CHROMA_URL switches the store to a real Chroma server started from the wheel."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import RAG
from tests.conftest import free_port


def test_ingest_and_search_through_a_chroma_server(embedder, chroma_server: str, tmp_path: Path) -> None:
    rag = RAG(tmp_path / "app", chroma_url=chroma_server, collection="rag-test-collection")
    report = rag.add_text("The Thames flows through Oxford and London. Its source is in the Cotswolds.", name="thames.txt")
    assert report.added == {"thames.txt": 1}
    hit = rag.search("Where does the Thames rise?", k=1)[0]
    assert hit.source == "thames.txt" and hit.score > 0.3
    # A second client, e.g. another app instance, sees the same data through the server.
    other = RAG(tmp_path / "other", chroma_url=chroma_server, collection="rag-test-collection")
    assert [s.source for s in other.store.vectors.sources()] == ["thames.txt"]
    assert not (tmp_path / "app" / "chroma").exists(), "nothing may be written to the embedded store path"
    assert rag.delete("thames.txt") == 1 and other.store.vectors.count() == 0


def test_an_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    from rag.errors import StoreError

    rag = RAG(tmp_path, chroma_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreError, match=r"Could not open the Chroma store at http://127\.0\.0\.1:\d+"):
        rag.store
