"""Idempotent ingestion with the real MiniLM and a real Chroma store on disk."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rag import RAG
from rag.errors import EncryptedPDFError, NotFoundError
from tests.ingest.store_checks import assert_same_store, pdf_pages, run_and_kill, snapshot

TEXT_V1 = " ".join(f"Paragraph {i} says the river Thames flows through town {i}." for i in range(120))
TEXT_V2 = TEXT_V1.replace("town 7.", "the city of Oxford.") + " A new closing sentence about Reading."


def test_ingesting_twice_adds_nothing(rag: RAG) -> None:
    first = rag.add_text(TEXT_V1, name="thames.txt")
    ids = rag.store.ids_for("thames.txt")
    second = rag.add_text(TEXT_V1, name="thames.txt")
    assert first.added == {"thames.txt": len(ids)} and len(ids) > 3
    assert second.unchanged == {"thames.txt": len(ids)} and second.chunks_written == 0
    assert rag.store.ids_for("thames.txt") == ids and rag.store.count() == len(ids)


def test_a_changed_source_replaces_its_chunks_and_leaves_no_stale_ones(rag: RAG) -> None:
    rag.add_text(TEXT_V1, name="thames.txt")
    rag.add_text("Unrelated text about mountains. It stays.", name="alps.txt")
    report = rag.add_text(TEXT_V2, name="thames.txt")
    expected = {c.id for c in rag.indexer.chunk([_doc(TEXT_V2)])}
    assert report.replaced == {"thames.txt": len(expected)}
    assert rag.store.ids_for("thames.txt") == expected
    assert len(rag.store.ids_for("alps.txt")) == 1
    texts = [c.text for c in rag.store.get(sorted(expected))]
    assert sum("Oxford" in t for t in texts) >= 1
    assert not any("town 7." in t for t in texts)


def test_delete_removes_every_chunk_of_a_source_and_nothing_else(rag: RAG) -> None:
    rag.add_text(TEXT_V1, name="thames.txt")
    rag.add_text("Unrelated text about mountains.", name="alps.txt")
    n = len(rag.store.ids_for("thames.txt"))
    assert rag.delete("thames.txt") == n
    assert rag.store.ids_for("thames.txt") == set()
    assert [s.source for s in rag.sources()] == ["alps.txt"]
    with pytest.raises(NotFoundError, match="No source named 'thames.txt' is indexed; indexed sources: alps.txt"):
        rag.delete("thames.txt")


def test_search_ranks_by_cosine_and_filters_by_source(rag: RAG) -> None:
    rag.add_text("The Eiffel Tower is a wrought-iron lattice tower in Paris, France.", name="paris.txt")
    rag.add_text("Mount Fuji is the highest mountain in Japan.", name="fuji.txt")
    hits = rag.search("tall iron tower in France", k=2)
    assert [h.source for h in hits] == ["paris.txt", "fuji.txt"]
    assert hits[0].score > hits[1].score and 0 < hits[0].score <= 1
    expected = float(rag.embedder.embed(["tall iron tower in France"])[0] @ rag.embedder.embed([hits[0].text])[0])
    assert hits[0].score == pytest.approx(expected, abs=1e-3)
    only = rag.search("tall iron tower in France", k=2, sources=["fuji.txt"])
    assert [h.source for h in only] == ["fuji.txt"]


def test_sources_lists_each_source_with_its_chunk_count(rag: RAG, pdf_dir: Path) -> None:
    report = rag.add_pdfs([pdf_dir / "pypdf-resources" / "crazyones.pdf", pdf_dir / "pypdf-resources" / "encrypted-file.pdf"])
    assert list(report.added) == ["crazyones.pdf"]
    assert "encrypted-file.pdf is encrypted" in report.skipped["encrypted-file.pdf"]
    [info] = rag.sources()
    assert (info.source, info.kind, info.chunks) == ("crazyones.pdf", "pdf", len(rag.store.ids_for("crazyones.pdf")))
    hit = rag.search("Here's to the crazy ones, the misfits, the rebels", k=1)[0]
    assert (hit.source, hit.page, hit.kind if hasattr(hit, "kind") else hit.chunk.kind) == ("crazyones.pdf", 1, "pdf")
    with pytest.raises(EncryptedPDFError):
        rag.add_pdf(pdf_dir / "pypdf-resources" / "encrypted-file.pdf")


def test_a_killed_ingestion_rerun_ends_identical_to_an_uninterrupted_one(rag: RAG, pdf_dir: Path, tmp_path: Path) -> None:
    # The lecture's first 40 pages: a real multi-page PDF, long enough to be killed mid-way.
    lecture = pdf_pages(next(pdf_dir.rglob("009-*.pdf")), slice(40), tmp_path / "lecture.pdf")
    rag.add_pdfs([lecture])
    reference = snapshot(rag)
    assert len(reference) > 100

    killed_dir = tmp_path / "killed"
    kill_after = random.Random(7).randint(40, len(reference) - 40)
    seen = run_and_kill(["ingest", str(lecture)], killed_dir, kill_after)
    assert 0 < seen < len(reference)
    rerun = RAG(killed_dir)
    report = rerun.add_pdfs([lecture])
    assert report.added or report.replaced
    assert_same_store(snapshot(rerun), reference)
    assert rerun.store.keywords.all_ids() == set(reference) == rag.store.keywords.all_ids()


def _doc(text: str):
    from rag.types import Document

    return Document(source="thames.txt", text=text, kind="text", title="thames.txt")


def test_concurrent_writes_to_one_source_leave_exactly_one_version(rag: RAG) -> None:
    """The page and the API may ingest or delete at once: writes are serialized, never mixed."""
    import threading

    rag.add_text(TEXT_V1, name="notes.txt")
    ids_v1 = rag.store.ids_for("notes.txt", complete=False)
    rag.add_text(TEXT_V2, name="notes.txt")
    ids_v2 = rag.store.ids_for("notes.txt", complete=False)
    assert ids_v1 != ids_v2
    for round_ in range(4):
        if round_ % 2:
            rag.delete("notes.txt")  # from nothing, both versions see no chunks to replace
        barrier = threading.Barrier(3)
        errors: list[BaseException] = []

        def write(action) -> None:
            barrier.wait()
            try:
                action()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        actions = [lambda: rag.add_text(TEXT_V1, name="notes.txt"), lambda: rag.add_text(TEXT_V2, name="notes.txt"),
                   lambda: rag.add_text(TEXT_V1 if round_ % 2 else TEXT_V2, name="notes.txt")]
        threads = [threading.Thread(target=write, args=(a,)) for a in actions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        stored = rag.store.ids_for("notes.txt", complete=False)
        assert stored in (ids_v1, ids_v2), f"round {round_}: {len(stored)} chunks, a mix of both versions"
        assert rag.store.ids_for("notes.txt") == stored
