"""The real server driven over HTTP with gradio_client: upload, ask with citations, /files, delete, refusals."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from tests.conftest import require_shared
from tests.ui.conftest import FACTS, raw_call


def _upload(client, *paths: Path, password: str = "") -> list[dict]:
    return client.predict([handle_file(str(p)) for p in paths], password, api_name="/upload")["files"]


def test_named_endpoints(client) -> None:
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    params = {name: [p["parameter_name"] for p in info["parameters"]] for name, info in api.items()}
    assert params == {
        "/upload": ["files", "password"],
        "/upload_into": ["files", "password", "collection"],
        "/ask": ["question", "history", "k", "sources", "collections"],
        "/add_wikipedia": ["titles", "collection"],
        "/delete": ["source", "collection"],
        "/sources": [],
        "/collections": [],
    }


def test_upload_ask_cites_the_page_and_the_link_serves_the_pdf(client, ui_server, facts_pdf: Path, rag) -> None:
    [result] = _upload(client, facts_pdf)
    assert result == {"file": "facts.pdf", "source": "facts.pdf", "collection": "default", "status": "added",
                      "chunks": len(FACTS),
                      "message": f"added, {len(FACTS)} chunk(s)", "needs_password": False}
    assert (rag.settings.files_dir / "facts.pdf").read_bytes() == facts_pdf.read_bytes()

    fact, question, word = FACTS[1]
    answer = client.predict(question, api_name="/ask")
    assert answer["done"] is True and not answer["refused"]
    cited = {(c["source"], c["page"]) for c in answer["citations"]}
    assert ("facts.pdf", 2) in cited, answer
    citation = next(c for c in answer["citations"] if c["page"] == 2)
    assert word in citation["text"]
    # The link opens the viewer at page 2 with the cited chunk highlighted.
    assert citation["link"] == f"/view/facts.pdf?page=2&chunk={citation['id']}#cited"
    assert f"[\\[{citation['number']}\\]]({citation['link']})" in answer["markdown"]
    assert "page 2" in answer["sources_markdown"] and "similarity" in answer["sources_markdown"]
    assert answer["generator"]
    viewer = httpx.get(ui_server.url.rstrip("/") + citation["link"].split("#")[0])
    assert viewer.status_code == 200 and viewer.headers["content-type"].startswith("text/html")
    assert 'class="hl"' in viewer.text and "Page 2 of 8" in viewer.text

    # The stored file itself opens the real PDF bytes (the fragment is for the browser's viewer).
    r = httpx.get(ui_server.url.rstrip("/") + "/files/facts.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"].startswith("inline")
    assert r.content == facts_pdf.read_bytes()

    # Same file again: nothing changes.
    [again] = _upload(client, facts_pdf)
    assert again["status"] == "unchanged" and again["chunks"] == len(FACTS)


def test_streaming_and_history(client, facts_pdf: Path) -> None:
    _upload(client, facts_pdf)
    job = client.submit(FACTS[2][1], api_name="/ask")
    updates = list(job)
    assert updates[-1]["done"] is True and all(u["done"] is False for u in updates[:-1])
    first = updates[-1]
    # A follow-up that refers back ("his" is the chef of the previous turn); one that stands alone
    # is retrieved alone (rag.conversation).
    question = "In which city is his restaurant?"
    follow_up = client.predict(question, [[FACTS[2][1], first["answer"]]], 2, None, api_name="/ask")
    assert follow_up["done"] is True and follow_up["citations"][0]["page"] == 3
    assert follow_up["query"] != question  # the follow-up's retrieval used the history
    assert len(follow_up["sources"]) <= max(2, len(follow_up["citations"]))  # k=2 reached the facade
    restricted = client.predict(FACTS[2][1], None, None, ["facts.pdf"], api_name="/ask")
    assert restricted["citations"] and {c["source"] for c in restricted["citations"]} == {"facts.pdf"}
    # A name of nothing indexed is refused by name (it would restrict the answer to nothing).
    with pytest.raises(AppError, match="The source 'no-such-source.pdf' is not indexed; indexed sources: facts.pdf"):
        client.predict(FACTS[2][1], None, None, ["no-such-source.pdf"], api_name="/ask")


def test_encrypted_pdf_is_refused_then_ingested_with_its_password(client, rag) -> None:
    encrypted = require_shared("pdfs", "pypdf-resources", "encrypted-file.pdf")
    [refused] = _upload(client, encrypted)
    assert refused["status"] == "refused" and refused["needs_password"] is True
    assert refused["chunks"] == 0
    assert "password" in refused["message"].lower() and "\n" not in refused["message"]
    # The page's words, not the command line's.
    assert "--password" not in refused["message"] and "Password field" in refused["message"]
    assert not (rag.settings.files_dir / "encrypted-file.pdf").exists()
    assert client.predict(api_name="/sources") == []

    [wrong] = _upload(client, encrypted, password="nope")
    assert wrong["status"] == "refused" and wrong["needs_password"] is True

    [ok] = _upload(client, encrypted, password="test")
    assert ok["status"] == "added" and ok["chunks"] > 0, ok
    assert (rag.settings.files_dir / "encrypted-file.pdf").is_file()
    assert [s["source"] for s in client.predict(api_name="/sources")] == ["encrypted-file.pdf"]


def test_many_files_in_one_upload_with_one_bad(client, facts_pdf: Path, tmp_path: Path) -> None:
    crazy = require_shared("pdfs", "pypdf-resources", "crazyones.pdf")
    fake = tmp_path / "notes.pdf"
    fake.write_text("These are plain-text notes, renamed to .pdf.\n")
    results = _upload(client, facts_pdf, fake, crazy)
    assert [(r["source"], r["status"]) for r in results] == [
        ("facts.pdf", "added"), ("notes.pdf", "refused"), ("crazyones.pdf", "added")]
    assert "not a PDF" in results[1]["message"] and results[1]["needs_password"] is False
    assert sorted(s["source"] for s in client.predict(api_name="/sources")) == ["crazyones.pdf", "facts.pdf"]


def test_non_pdf_renamed_pdf_is_refused_by_content(client, rag, tmp_path: Path) -> None:
    fake = tmp_path / "renamed.pdf"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    [result] = _upload(client, fake)
    assert result["status"] == "refused" and "not a PDF" in result["message"]
    assert not (rag.settings.files_dir / "renamed.pdf").exists()
    assert client.predict(api_name="/sources") == []


def test_delete_removes_source_chunks_and_file(client, ui_server, facts_pdf: Path, rag) -> None:
    _upload(client, facts_pdf)
    assert client.predict("facts.pdf", api_name="/delete") == {"source": "facts.pdf", "collection": "default",
                                                               "chunks": len(FACTS)}
    assert client.predict(api_name="/sources") == []
    assert not (rag.settings.files_dir / "facts.pdf").exists()
    assert httpx.get(ui_server.url + "files/facts.pdf").status_code == 404
    assert client.predict(FACTS[0][1], api_name="/ask")["citations"] == []
    with pytest.raises(AppError, match="No source named 'facts.pdf'"):
        client.predict("facts.pdf", api_name="/delete")


def test_path_traversal_upload_stays_in_files_dir(ui_server, facts_pdf: Path, rag, tmp_path: Path) -> None:
    """A client that names its upload ../../etc/x.pdf (raw HTTP, as an attacker would) gets x.pdf in files_dir."""
    base = ui_server.url.rstrip("/")
    r = httpx.post(f"{base}/gradio_api/upload",
                   files=[("files", ("../../etc/x.pdf", facts_pdf.read_bytes(), "application/pdf"))])
    r.raise_for_status()
    [server_path] = r.json()
    event, out = raw_call(ui_server.url, "upload", [
        [{"path": server_path, "orig_name": "../../etc/x.pdf", "meta": {"_type": "gradio.FileData"}}], ""])
    assert event == "complete", out
    [result] = out[0]["files"]
    assert result["status"] == "added", result
    files_dir = rag.settings.files_dir
    stored = [p for p in files_dir.rglob("*") if p.is_file()]
    assert len(stored) == 1 and stored[0].parent == files_dir and stored[0].name == result["source"]
    assert result["source"] == "x.pdf" and result["file"] == "x.pdf"
    assert not (files_dir.parent.parent / "etc").exists() and not (rag.settings.data_dir / "etc").exists()
    assert httpx.get(f"{base}/files/{result['source']}").content == facts_pdf.read_bytes()


def test_upload_cannot_name_a_server_file_outside_the_upload_cache(ui_server, facts_pdf: Path, rag) -> None:
    event, out = raw_call(ui_server.url, "upload", [
        [{"path": str(facts_pdf), "meta": {"_type": "gradio.FileData"}}], ""])
    assert event == "error", out
    assert rag.sources() == [] and not (rag.settings.files_dir / "facts.pdf").exists()


@pytest.mark.parametrize("path", ["/files/..%2F..%2Fetc%2Fpasswd", "/files/.staging", "/files/%2Fetc%2Fpasswd",
                                  "/files/missing.pdf", "/files/../../etc/passwd"])
def test_files_route_serves_nothing_else(ui_server, path: str) -> None:
    r = httpx.get(ui_server.url.rstrip("/") + path)
    assert r.status_code == 404 or (r.status_code == 200 and b"root:" not in r.content)
    assert b"root:x:" not in r.content


def test_errors_are_one_sentence_and_the_server_keeps_serving(client, facts_pdf: Path) -> None:
    with pytest.raises(AppError, match="question is empty"):
        client.predict("   ", api_name="/ask")
    with pytest.raises(AppError, match="k=500 is out of range"):
        client.predict("anything", None, 500, api_name="/ask")
    with pytest.raises(AppError, match="No source named 'nothing.pdf'"):
        client.predict("nothing.pdf", api_name="/delete")
    result = client.predict(["No Such Page Anywhere"], api_name="/add_wikipedia")["pages"][0]
    assert result["status"] == "refused" and result["message"] and "Traceback" not in result["message"]
    assert client.predict([], "", api_name="/upload") == {"files": []}
    [ok] = _upload(client, facts_pdf)
    assert ok["status"] == "added"


def test_wikipedia_pages_link_to_their_section(embedder, mediawiki_server, tmp_path: Path) -> None:
    from rag import RAG
    from rag.http.app import create_server
    from tests.ui.conftest import _client

    rag = RAG(tmp_path / "wiki-data", wikipedia_api_url=mediawiki_server.api_url)
    with create_server(rag, "127.0.0.1", 0) as server:
        client = next(_client(server.url))
        try:
            pages = client.predict(["SB50", "Bush"], api_name="/add_wikipedia")["pages"]
            assert pages[0]["status"] == "added" and pages[0]["chunks"] > 0
            assert pages[1]["status"] == "refused" and "Bush" in pages[1]["message"]
            assert [s["kind"] for s in client.predict(api_name="/sources")] == ["wikipedia"]
            answer = client.predict("Which team won Super Bowl 50?", api_name="/ask")
            links = [c["link"] for c in answer["citations"]]
            assert links and all(link.startswith("https://en.wikipedia.org/wiki/Super_Bowl_50") for link in links)
            assert client.predict("Super Bowl 50", api_name="/delete")["chunks"] > 0
            assert client.predict(api_name="/sources") == []
        finally:
            client.close()
