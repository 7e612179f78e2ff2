"""The `rag` command: real processes, real store, one-line errors, stable JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from rag.cli import main
from tests.conftest import ROOT


def _run(*args: str, data_dir: Path) -> CliRunner:
    return CliRunner().invoke(main, ["--data-dir", str(data_dir), *args], catch_exceptions=False)


def test_ingest_search_sources_delete_round_trip(embedder, pdf_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "store"
    crazy = pdf_dir / "pypdf-resources" / "crazyones.pdf"
    locked = pdf_dir / "pypdf-resources" / "encrypted-file.pdf"

    result = _run("ingest", str(crazy), str(locked), "--json", data_dir=data)
    assert result.exit_code == 1  # one source was skipped
    report = json.loads(result.stdout)
    assert list(report["added"]) == ["crazyones.pdf"]
    assert report["skipped"]["encrypted-file.pdf"].startswith("encrypted-file.pdf is encrypted")

    result = _run("ingest", str(locked), "--password", "test", data_dir=data)
    assert result.exit_code == 0, result.output
    assert "1 added" in result.stdout

    result = _run("search", "the misfits and the rebels", "-k", "2", "--json", data_dir=data)
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out["query"] == "the misfits and the rebels" and out["k"] == 2
    top = out["hits"][0]
    assert set(top) == {"id", "score", "text", "source", "kind", "title", "url", "section", "page", "start", "end",
                        "collection"}
    assert (top["source"], top["page"], top["kind"]) == ("crazyones.pdf", 1, "pdf")
    assert top["score"] > out["hits"][1]["score"]

    listed = json.loads(_run("sources", "--json", data_dir=data).stdout)
    assert sorted(s["source"] for s in listed) == ["crazyones.pdf", "encrypted-file.pdf"]
    assert all(s["chunks"] >= 1 and s["added_at"] for s in listed)

    result = _run("delete", "crazyones.pdf", data_dir=data)
    assert result.exit_code == 0 and "Deleted crazyones.pdf" in result.stdout
    assert [s["source"] for s in json.loads(_run("sources", "--json", data_dir=data).stdout)] == ["encrypted-file.pdf"]


def test_wikipedia_ingest_through_the_cli(embedder, mediawiki_server, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RAG_WIKIPEDIA_API_URL", mediawiki_server.api_url)
    data = tmp_path / "store"
    result = _run("ingest", "--wikipedia", "Super Bowl 50", "--wikipedia", "Bush", "--no-progress", data_dir=data)
    assert result.exit_code == 1
    assert "1 added" in result.stdout and "'Bush' is a Wikipedia disambiguation page; ask for one of:" in result.stdout
    hit = json.loads(_run("search", "Who won Super Bowl 50?", "--json", data_dir=data).stdout)["hits"][0]
    assert hit["source"] == "wikipedia:Super Bowl 50"
    assert hit["url"].startswith("https://en.wikipedia.org/wiki/Super_Bowl_50")


def test_user_mistakes_get_one_sentence_and_no_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "store")}

    def rag(*args: str, **extra_env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rag.cli", *args], cwd=ROOT, capture_output=True, text=True,
                              env={**env, **extra_env}, timeout=120)

    deleted = rag("delete", "nothing.pdf")
    assert deleted.returncode == 1
    assert deleted.stderr.strip() == "Error: No source named 'nothing.pdf' is indexed; indexed sources: none yet"

    bad = rag("search", "anything", RAG_CHUNK_TOKENS="9000")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "chunk_tokens=9000 is out of range; choose 16..254" in bad.stderr

    empty = rag("ingest")
    assert empty.returncode == 2 and "Give file paths or --wikipedia TITLE" in empty.stderr

    too_many = rag("search", "anything", "-k", "101")
    assert too_many.returncode == 2 and "101 is not in the range 1<=x<=100" in too_many.stderr

    missing = rag("ingest", str(tmp_path / "nope.pdf"), "--no-progress")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "No file at" in missing.stdout


def test_ingest_a_folder_of_every_format_by_content(embedder, tmp_path: Path) -> None:
    from tests.docgen import make_docx

    folder = tmp_path / "docs"
    folder.mkdir()
    make_docx(folder / "nordic.docx")
    (folder / "page.htm").write_text("<html><body><h2>Rivers</h2><p>The Rhine reaches the North Sea.</p></body></html>",
                                     encoding="utf-8")
    (folder / "notes.md").write_text("# Plans\n\nWe meet on Tuesdays.\n", encoding="utf-8")
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)  # not a format: left out of the folder walk
    picture = tmp_path / "diagram.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    result = _run("ingest", str(folder), str(picture), "--json", data_dir=tmp_path / "store")
    assert result.exit_code == 1  # the picture named on the command line is refused
    report = json.loads(result.stdout)
    assert sorted(report["added"]) == ["nordic.docx", "notes.md", "page.htm"]
    assert list(report["skipped"]) == ["diagram.png"]
    assert "diagram.png is not a PDF, a Word document" in report["skipped"]["diagram.png"]
    result = _run("search", "capital of Denmark", "-k", "1", "--json", data_dir=tmp_path / "store")
    hit = json.loads(result.stdout)["hits"][0]
    assert (hit["source"], hit["kind"], hit["section"]) == ("nordic.docx", "docx", "Capitals")


def test_ray_without_its_extra_or_cluster_is_one_line(embedder, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    notes = tmp_path / "notes.md"
    notes.write_text("# Plans\n\nWe meet on Tuesdays.\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path / "store"), "ingest", str(notes),
                                       "--ray", f"127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "ray" in result.output.lower()


def test_files_ingested_by_the_cli_are_kept_and_their_citations_linked(embedder, pdf_dir: Path,
                                                                       tmp_path: Path) -> None:
    data = tmp_path / "store"
    crazy = pdf_dir / "pypdf-resources" / "crazyones.pdf"
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\n## Bees\n\nThe beekeepers of Oressa harvest lavender honey every August.\n")
    assert _run("ingest", str(crazy), str(notes), "--no-progress", data_dir=data).exit_code == 0
    stored = data / "files" / "crazyones.pdf"
    assert stored.read_bytes() == crazy.read_bytes()
    assert (data / "files" / "notes.md").read_bytes() == notes.read_bytes()

    hit = json.loads(_run("search", "the misfits and the rebels", "-k", "1", "--json", data_dir=data).stdout)["hits"][0]
    assert hit["url"] == stored.resolve().as_uri() + "#page=1"
    answer = _run("ask", "Who does the text say the misfits and the rebels are?", data_dir=data)
    assert f"<{stored.resolve().as_uri()}#page=1>" in answer.stdout
    cited = json.loads(_run("ask", "When is the lavender honey harvested?", "--json", data_dir=data).stdout)
    assert cited["citations"][0]["url"] == (data / "files" / "notes.md").resolve().as_uri()
    assert cited["sources"][0]["url"]

    # Deleting a source removes its kept copy, whatever its format.
    assert _run("delete", "notes.md", data_dir=data).exit_code == 0
    assert not (data / "files" / "notes.md").exists() and stored.exists()


def test_keep_files_off_and_odd_names_keep_no_copy(embedder, pdf_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from rag import RAG

    odd = tmp_path / "Café notes.md"
    odd.write_text("# Café\n\nThe espresso machine in the Oressa café was built in 1961.\n")
    rag = RAG(tmp_path / "a")
    rag.add_files([odd])
    assert [s.source for s in rag.sources()] == ["Café notes.md"]
    assert not list((tmp_path / "a" / "files").glob("*.md"))  # not a safe stored name: nothing kept
    assert not list((tmp_path / "a" / "files" / ".staging").glob("*"))  # and nothing left staged

    monkeypatch.setenv("RAG_KEEP_FILES", "0")
    rag = RAG(tmp_path / "b")
    rag.add_pdf(pdf_dir / "pypdf-resources" / "crazyones.pdf")
    assert not (tmp_path / "b" / "files" / "crazyones.pdf").exists()


def test_search_in_an_unknown_source_and_delete_of_an_unknown_one_name_what_is_indexed(embedder,
                                                                                       tmp_path: Path) -> None:
    from rag import RAG

    data = tmp_path / "store"
    rag = RAG(data)
    for i in range(12):
        rag.add_text(f"Note {i} says the Oressa beekeepers count {i} hives.", name=f"note{i:02}.txt")
    del rag
    result = CliRunner().invoke(main, ["--data-dir", str(data), "search", "hives", "--source", "nosuch.pdf",
                                       "--source", "note03.txt"])
    assert result.exit_code == 1
    message = result.output.strip()
    assert message.startswith("Error: The source 'nosuch.pdf' is not indexed; indexed sources: ")
    assert message.endswith("and 2 more; use the names `rag sources` lists") and message.count("note") == 10
    ok = _run("search", "hives", "--source", "note03.txt", "--json", data_dir=data)
    assert {h["source"] for h in json.loads(ok.stdout)["hits"]} == {"note03.txt"}

    result = CliRunner().invoke(main, ["--data-dir", str(data), "delete", "nosuch.pdf"])
    assert result.exit_code == 1
    assert result.output.strip().endswith("note02.txt and 2 more; `rag sources` lists them all")
