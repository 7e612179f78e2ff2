"""Upload storage: safe names, content checks, staging, and what /files may serve."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.files import (NotAPDFError, file_url, is_pdf, remove_file, safe_name, stage_upload, stored_file)

PDF = b"%PDF-1.4\n%fake but with the magic\n"


@pytest.mark.parametrize("raw, expected", [
    ("report.pdf", "report.pdf"),
    ("../../etc/x.pdf", "x.pdf"),
    ("..\\..\\windows\\evil.PDF", "evil.pdf"),
    ("/etc/passwd", "passwd.pdf"),
    ("..", "upload.pdf"),
    ("", "upload.pdf"),
    (".hidden.pdf", "hidden.pdf"),
    ("Résumé – final (2).pdf", "Resume final (2).pdf"),
    ("a;rm -rf ~;b.pdf", "a_rm -rf _b.pdf"),
    ("x" * 500 + ".pdf", "x" * 116 + ".pdf"),
    ("notes.txt", "notes.txt.pdf"),
])
def test_safe_name(raw: str, expected: str) -> None:
    assert safe_name(raw) == expected


@given(st.text(max_size=300))
def test_safe_name_is_a_plain_idempotent_pdf_name(raw: str) -> None:
    name = safe_name(raw)
    assert name == safe_name(name)
    assert name.endswith(".pdf") and len(name) <= 120
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not name.startswith(".") and name.isascii()


def test_content_decides_what_is_a_pdf(tmp_path: Path) -> None:
    real = tmp_path / "real.bin"
    real.write_bytes(PDF)
    fake = tmp_path / "fake.pdf"
    fake.write_bytes(b"just some text, not a PDF\n")
    assert is_pdf(real) and not is_pdf(fake) and not is_pdf(tmp_path / "missing.pdf")
    with pytest.raises(NotAPDFError, match="not a PDF"):
        stage_upload(tmp_path / "files", fake)
    assert not (tmp_path / "files" / "fake.pdf").exists()


def test_stage_commit_and_discard_stay_inside_files_dir(tmp_path: Path) -> None:
    files = tmp_path / "files"
    upload = tmp_path / "in.pdf"
    upload.write_bytes(PDF)
    staged = stage_upload(files, upload, "../../etc/x.pdf")
    assert staged.name == "x.pdf" and staged.path.name == "x.pdf"
    assert files.resolve() in staged.path.resolve().parents
    assert stored_file(files, "x.pdf") is None  # not visible until committed
    assert staged.commit() == files / "x.pdf"
    assert (files / "x.pdf").read_bytes() == PDF
    assert not (tmp_path / "etc").exists()
    assert [p.name for p in files.iterdir() if p.name != ".staging"] == ["x.pdf"]
    assert list((files / ".staging").iterdir()) == []

    # A refused re-upload leaves the stored file as it was.
    upload.write_bytes(PDF + b"v2")
    stage_upload(files, upload, "x.pdf").discard()
    assert (files / "x.pdf").read_bytes() == PDF


def test_stored_file_never_resolves_outside(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "ok.pdf").write_bytes(PDF)
    (tmp_path / "secret.pdf").write_bytes(PDF)
    os.symlink(tmp_path / "secret.pdf", files / "link.pdf")
    (files / ".staging").mkdir()
    (files / ".staging" / "a.pdf").write_bytes(PDF)
    assert stored_file(files, "ok.pdf") == (files / "ok.pdf").resolve()
    for name in ["../secret.pdf", "link.pdf", ".staging/a.pdf", ".staging", "..", "", "missing.pdf", "OK.pdf"]:
        assert stored_file(files, name) is None, name
    assert file_url(files, "ok.pdf", 3) == "/files/ok.pdf#page=3"
    assert file_url(files, "missing.pdf", 3) is None
    assert remove_file(files, "ok.pdf") and not (files / "ok.pdf").exists()
    assert not remove_file(files, "../secret.pdf") and (tmp_path / "secret.pdf").exists()


def test_file_url_quotes_names(tmp_path: Path) -> None:
    (tmp_path / "my report (v2).pdf").write_bytes(PDF)
    assert file_url(tmp_path, "my report (v2).pdf", 1) == "/files/my%20report%20%28v2%29.pdf#page=1"
