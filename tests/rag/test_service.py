"""The facade's write path: upload, add_text and delete with the real MiniLM, Chroma and PDFs."""

from __future__ import annotations

import hashlib
import threading
import time
import zlib
from pathlib import Path

import pytest

from rag import RAG
from rag.errors import InvalidNameError, NameConflictError, UnreadableSourceError
from tests.pdfgen import make_pdf, pdf_file


def text_bomb(path: Path, megabytes: float) -> Path:
    """A one-page PDF whose single FlateDecode content stream holds ``megabytes`` of text operators.

    Repetitive text compresses about a thousand to one, so the file is small while pypdf's
    ``extract_text`` takes minutes over it (the attack of issue 14, finding 3).
    """
    line = b"(All work and no play makes Jack a dull boy, said the page again and again.) Tj T*\n"
    body = b"BT /F1 9 Tf 11 TL 40 800 Td\n" + line * int(megabytes * 2**20 / len(line)) + b"ET\n"
    stream = zlib.compress(body, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Contents 5 0 R "
        b"/Resources << /Font << /F1 4 0 R >> >> >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    path.write_bytes(pdf_file(objects, root=1))
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_pdf_slow_to_read_is_refused_at_the_limit_and_holds_no_other_upload_up(rag: RAG, tmp_path: Path) -> None:
    bomb = text_bomb(tmp_path / "bomb.pdf", 20)
    assert bomb.stat().st_size < 200_000
    small = tmp_path / "small.pdf"
    make_pdf(["A small upload about the harbour of Hamburg."], small)
    limit = 4.0
    rag.settings = rag.settings.replace(max_pdf_seconds=limit, max_pdf_page_bytes=64 * 2**20)
    rag.add_text("Warm-up text so the model is loaded before the clock starts.", name="warm.txt")

    results: dict[str, tuple[float, object]] = {}

    def upload(path: Path) -> None:
        started = time.monotonic()
        report = rag.upload(path)
        results[path.name] = (time.monotonic() - started, report)

    slow = threading.Thread(target=upload, args=(bomb,))
    slow.start()
    time.sleep(0.5)  # the bomb is being read now
    upload(small)
    assert "bomb.pdf" not in results, "the small upload waited for the hostile one"
    slow.join(60)

    small_seconds, small_report = results["small.pdf"]
    assert small_report.added == {"small.pdf": 1} and small_seconds < limit
    bomb_seconds, bomb_report = results["bomb.pdf"]
    message = bomb_report.skipped["bomb.pdf"]
    assert message.startswith(f"bomb.pdf took over {limit:g} s to read") and "RAG_MAX_PDF_SECONDS" in message
    assert "\n" not in message and bomb_seconds < limit + 5
    assert {s.source for s in rag.sources()} == {"small.pdf", "warm.txt"}
    assert not (rag.settings.files_dir / "bomb.pdf").exists()


def test_a_bomb_page_is_refused_by_the_content_limit_before_extraction(rag: RAG, tmp_path: Path) -> None:
    bomb = text_bomb(tmp_path / "bomb.pdf", 20)
    started = time.monotonic()
    report = rag.upload(bomb)
    assert report.skipped["bomb.pdf"].startswith(
        "Page 1 of bomb.pdf holds 20.0 MB of content once decompressed, over the 8 MB per-page limit")
    assert time.monotonic() - started < rag.settings.max_pdf_seconds / 4
    assert rag.sources() == []


@pytest.mark.parametrize("name", ["..", "x.pdf/..", "", "///", "._."])
def test_an_upload_name_with_nothing_usable_is_refused(rag: RAG, tmp_path: Path, name: str) -> None:
    pdf = tmp_path / "in.pdf"
    make_pdf(["Some text."], pdf)
    with pytest.raises(InvalidNameError, match="has no usable base name; rename the file .* and upload it again"):
        rag.upload(pdf, name=name)
    assert rag.sources() == [] and not (rag.settings.files_dir / "upload.pdf").exists()


def test_an_upload_that_is_not_a_pdf_is_refused_whatever_its_name(rag: RAG, tmp_path: Path) -> None:
    fake = tmp_path / "fake.pdf"
    fake.write_text("<html>not a pdf</html>")
    with pytest.raises(UnreadableSourceError, match="fake.pdf is not a PDF"):
        rag.upload(fake)
    assert not (rag.settings.files_dir / "fake.pdf").exists()


def test_a_text_source_cannot_replace_an_uploaded_pdf_of_that_name(rag: RAG, tmp_path: Path) -> None:
    pdf = tmp_path / "plan.pdf"
    make_pdf(["The plan: build a bridge over the river."], pdf)
    rag.upload(pdf)
    ids = rag.store.ids_for("plan.pdf")
    with pytest.raises(NameConflictError, match="plan.pdf is already an uploaded PDF, so a text source cannot take "
                                                "its name; choose another name or delete plan.pdf first"):
        rag.add_text("Something else entirely.", name="plan.pdf")
    assert rag.store.ids_for("plan.pdf") == ids
    assert [(s.source, s.kind) for s in rag.sources()] == [("plan.pdf", "pdf")]
    assert _digest(rag.settings.files_dir / "plan.pdf") == _digest(pdf)

    # And the other way round: an upload does not take a text source's name.
    rag.add_text("Notes about the bridge.", name="notes.pdf")
    report = rag.upload(pdf, name="notes.pdf")
    assert report.skipped["notes.pdf"].startswith("notes.pdf is already a text source")
    assert not (rag.settings.files_dir / "notes.pdf").exists()

    # Deleting the text source leaves the uploaded file of another source alone.
    rag.delete("notes.pdf")
    assert (rag.settings.files_dir / "plan.pdf").exists()
    assert rag.delete("plan.pdf") == len(ids) and not (rag.settings.files_dir / "plan.pdf").exists()


def test_concurrent_uploads_of_one_name_leave_one_versions_file_beside_its_chunks(
        rag: RAG, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest.files import StagedFile

    versions = {}
    for v, text in (("v1", "Version one is about the northern lights. " * 40),
                    ("v2", "Version two is about desert dunes instead. " * 40)):
        path = tmp_path / f"{v}.pdf"
        make_pdf([text, text + " Second page."], path)
        rag.upload(path, name="report.pdf")
        versions[v] = (rag.store.ids_for("report.pdf"), _digest(path), path)
    assert versions["v1"][0] != versions["v2"][0]
    # A slow disk for v1: moving its file in takes a while, so a commit outside the lock would land
    # after a later upload's.
    commit, slow = StagedFile.commit, versions["v1"][1]
    monkeypatch.setattr(StagedFile, "commit", lambda self: (time.sleep(2.5 if self.digest == slow else 0), commit(self))[1])
    for round_ in range(4):
        barrier = threading.Barrier(3)
        errors: list[BaseException] = []
        order = ["v1", "v2", "v1"] if round_ % 2 else ["v2", "v1", "v2"]

        def send(v: str) -> None:
            barrier.wait()
            try:
                rag.upload(versions[v][2], name="report.pdf")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=send, args=(v,)) for v in order]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        ids = rag.store.ids_for("report.pdf", complete=False)
        [version] = [v for v, (expected, _, _) in versions.items() if expected == ids] or [None]
        assert version is not None, f"round {round_}: a mix of both versions"
        assert _digest(rag.settings.files_dir / "report.pdf") == versions[version][1], f"round {round_}"
        assert list((rag.settings.files_dir / ".staging").iterdir()) == []


def test_a_filter_naming_no_indexed_source_is_refused_by_name_for_every_read(rag: RAG) -> None:
    """A misspelt or just-deleted source would otherwise restrict the read to nothing and read as
    "the documents don't answer"; a bare Wikipedia title means its wikipedia: source."""
    from ingest.index import SourceJob
    from rag.errors import NotFoundError
    from rag.types import Document

    rag.add_text("Dana Whit leads the Orion project.", name="orion.md", collection="team-a")
    said = "The source 'gone.md' is not indexed; indexed sources: orion.md"
    for read in (lambda: rag.ask("Who leads Orion?", sources=["gone.md"]),
                 lambda: rag.ask_stream("Who leads Orion?", sources=["gone.md"]),  # at the call, not the first next()
                 lambda: rag.search("Orion", sources=["gone.md", "orion.md"])):
        with pytest.raises(NotFoundError, match=said):
            read()
    rag.add_text("Bees make honey.", name="bees.md", collection="team-b")
    with pytest.raises(NotFoundError, match="The source 'orion.md' is not indexed; indexed sources: bees.md"):
        rag.search("Orion", sources=["orion.md"], collection="team-b")  # there, but in another collection
    assert [h.source for h in rag.search("Orion", sources=["orion.md"])] == ["orion.md"]
    page = Document(source="wikipedia:Orion", text="Orion is a constellation on the celestial equator.",
                    kind="wikipedia", title="Orion", url="https://en.wikipedia.org/wiki/Orion_(constellation)")
    rag.ingest([SourceJob(page.source, lambda: [page])])
    assert {h.source for h in rag.search("Orion", sources=["Orion"])} == {"wikipedia:Orion"}
