"""All 26 real PDFs of ../shared/data/pdfs: ingested with their real text, or refused in one sentence."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from ingest.pdf import read_pdf
from rag.errors import EncryptedPDFError, NoTextError, SourceError, UnreadableSourceError

# name -> (password, a phrase of the decrypted text)
ENCRYPTED = {
    "crazyones-encrypted-256.pdf": ("password", "Heres to the crazy ones"),
    "encrypted-file.pdf": ("test", "Example"),
    "r4-aes-user-password.pdf": ("asdfzxcv", "pdf encryption test"),
    "005-libreoffice-writer-password_libreoffice-writer-password.pdf": ("openpassword", "Lorem ipsum"),
}
NO_TEXT = {"007-imagemagick-images_imagemagick-CCITTFaxDecode.pdf"}
BROKEN = {"017-unreadable-meta-data_unreadablemetadata.pdf"}


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split())


def test_every_shared_pdf_is_ingested_with_text_or_refused_in_one_sentence(pdf_dir: Path) -> None:
    files = sorted(pdf_dir.rglob("*.pdf"))
    assert len(files) == 26
    outcomes = {}
    for path in files:
        try:
            docs = read_pdf(path)
        except SourceError as exc:
            message = str(exc)
            assert "\n" not in message and path.name in message, message
            assert exc.source == path.name
            outcomes[path.name] = type(exc)
            continue
        assert docs, path.name
        assert all(d.text.strip() and d.page >= 1 and d.source == path.name for d in docs)
        assert [d.page for d in docs] == sorted({d.page for d in docs})
        outcomes[path.name] = "ok"
    assert {n for n, o in outcomes.items() if o is EncryptedPDFError} == set(ENCRYPTED)
    assert {n for n, o in outcomes.items() if o is NoTextError} == NO_TEXT
    assert {n for n, o in outcomes.items() if o is UnreadableSourceError} == BROKEN
    assert sum(o == "ok" for o in outcomes.values()) == 26 - len(ENCRYPTED) - len(NO_TEXT) - len(BROKEN)


def test_crazyones_text_matches_its_reference(pdf_dir: Path) -> None:
    folder = pdf_dir / "pypdf-resources"
    docs = read_pdf(folder / "crazyones.pdf")
    assert len(docs) == 1 and docs[0].page == 1
    assert _norm(docs[0].text) == _norm((folder / "crazyones.txt").read_text())


@pytest.mark.parametrize("name", sorted(ENCRYPTED))
def test_encrypted_pdfs_open_with_their_password_and_say_how_without(pdf_dir: Path, name: str) -> None:
    password, phrase = ENCRYPTED[name]
    path = next(pdf_dir.rglob(name))
    with pytest.raises(EncryptedPDFError, match=r"is encrypted; pass its password with --password"):
        read_pdf(path)
    with pytest.raises(EncryptedPDFError, match=r"password given for .* is wrong"):
        read_pdf(path, password="not-the-password")
    docs = read_pdf(path, password=password)
    assert phrase in " ".join(d.text for d in docs)


def test_the_encrypted_crazyones_decrypts_to_the_same_text(pdf_dir: Path) -> None:
    folder = pdf_dir / "pypdf-resources"
    plain = read_pdf(folder / "crazyones.pdf")[0].text
    assert read_pdf(folder / "crazyones-encrypted-256.pdf", password="password")[0].text == plain


def test_the_117_page_lecture_keeps_page_numbers(pdf_dir: Path) -> None:
    docs = read_pdf(next(pdf_dir.rglob("009-*.pdf")))
    assert len(docs) > 100
    assert docs[-1].page <= 117
    assert any("Topologie" in d.text for d in docs)


def test_content_not_extension_decides_what_a_pdf_is(tmp_path: Path) -> None:
    fake = tmp_path / "notes.pdf"
    fake.write_text("just some text pretending to be a PDF")
    with pytest.raises(UnreadableSourceError, match="notes.pdf is not a PDF"):
        read_pdf(fake)
    with pytest.raises(UnreadableSourceError, match="No file at"):
        read_pdf(tmp_path / "missing.pdf")


def test_a_truncated_pdf_is_refused_not_crashed(pdf_dir: Path, tmp_path: Path) -> None:
    data = (pdf_dir / "sample-files" / "004-pdflatex-4-pages_pdflatex-4-pages.pdf").read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(data[: len(data) // 3])
    try:
        docs = read_pdf(cut)
    except SourceError as exc:
        assert "cut.pdf" in str(exc) and "\n" not in str(exc)
    else:
        assert all(d.text.strip() for d in docs)


def test_size_and_page_limits_are_enforced(pdf_dir: Path) -> None:
    lecture = next(pdf_dir.rglob("009-*.pdf"))
    with pytest.raises(SourceError, match="over the 100-page limit; split it or raise RAG_MAX_PDF_PAGES"):
        read_pdf(lecture, max_pages=100)
    with pytest.raises(SourceError, match="MB limit"):
        read_pdf(lecture, max_bytes=1024)


def test_a_process_holding_over_1024_open_files_still_reads_pdfs(pdf_dir: Path) -> None:
    """A long-running server holds many descriptors; select() fails from 1024 on, the worker's wait must not."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"this machine allows only {hard} open files per process")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200) if hard == resource.RLIM_INFINITY
                                                else min(max(soft, 1200), hard), hard))
    held = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        docs = read_pdf(pdf_dir / "pypdf-resources" / "crazyones.pdf")
        assert len(docs) == 1 and docs[0].text.strip()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
