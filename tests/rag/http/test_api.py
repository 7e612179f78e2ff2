"""The headless API over real loopback HTTP: REST with httpx, chat with the official openai client."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from rag import RAG
from rag.errors import RagError


@pytest.fixture
def server(embedder, tmp_path: Path, mediawiki_server, monkeypatch):
    from rag.http.app import create_server

    monkeypatch.setenv("RAG_WIKIPEDIA_API_URL", mediawiki_server.api_url)
    monkeypatch.setenv("RAG_WIKIPEDIA_TIMEOUT", "2")
    rag = RAG(tmp_path / "served")
    with create_server(rag, "127.0.0.1", 0, headless=True) as srv:
        yield srv


def _upload(base: str, path: Path, password: str | None = None) -> httpx.Response:
    with path.open("rb") as fh:
        data = {"password": password} if password else {}
        # X-Requested-With: a multipart write needs it (a page of another site cannot send it).
        return httpx.post(f"{base}api/ingest/file", files={"file": (path.name, fh, "application/pdf")},
                          data=data, timeout=120, headers={"X-Requested-With": "test"})


def test_rest_routes_ingest_search_ask_list_and_delete(server, pdf_dir: Path, tmp_path: Path) -> None:
    base = server.url
    folder = pdf_dir / "pypdf-resources"
    files = tmp_path / "served" / "files"
    health = httpx.get(f"{base}api/health").json()
    assert health["status"] == "ok" and health["pid"] > 0

    added = _upload(base, folder / "crazyones.pdf").json()["added"]
    assert list(added) == ["crazyones.pdf"] and added["crazyones.pdf"] >= 1
    # The upload is kept where citations link to it; a refused one is not kept at all.
    assert httpx.get(f"{base}files/crazyones.pdf").content == (folder / "crazyones.pdf").read_bytes()
    refused = _upload(base, folder / "encrypted-file.pdf").json()
    assert refused["skipped"]["encrypted-file.pdf"].startswith("encrypted-file.pdf is encrypted")
    assert not (files / "encrypted-file.pdf").exists() and not any((files / ".staging").iterdir())
    text = httpx.post(f"{base}api/ingest/text", json={"name": "notes.md", "text": "Velasquez painted it red."}).json()
    assert text == {"added": {"notes.md": 1}, "replaced": {}, "unchanged": {}, "skipped": {}}
    assert httpx.delete(f"{base}api/sources/notes.md").json() == {"deleted": 1}
    assert _upload(base, folder / "encrypted-file.pdf", password="test").json()["added"] == {"encrypted-file.pdf": 1}
    wiki = httpx.post(f"{base}api/ingest/wikipedia", json={"titles": ["Super Bowl 50"]}, timeout=120).json()
    assert wiki["added"]["wikipedia:Super Bowl 50"] > 3

    hits = httpx.post(f"{base}api/search", json={"query": "the misfits, the rebels", "k": 2}).json()["hits"]
    assert hits[0]["source"] == "crazyones.pdf" and hits[0]["page"] == 1 and len(hits) == 2

    answer = httpx.post(f"{base}api/ask", json={"question": "Which city hosted Super Bowl 50?"}, timeout=120).json()
    assert answer["citations"] and answer["citations"][0]["source"] == "wikipedia:Super Bowl 50"
    assert answer["citations"][0]["url"].startswith("https://en.wikipedia.org/wiki/Super_Bowl_50")
    assert answer["generator"] == "extractive" and not answer["refused"]

    listed = {s["source"] for s in httpx.get(f"{base}api/sources").json()}
    assert listed == {"crazyones.pdf", "encrypted-file.pdf", "wikipedia:Super Bowl 50"}
    assert httpx.delete(f"{base}api/sources/crazyones.pdf").json() == {"deleted": added["crazyones.pdf"]}
    assert not (files / "crazyones.pdf").exists()
    gone = httpx.delete(f"{base}api/sources/crazyones.pdf")
    assert gone.status_code == 404 and "No source named 'crazyones.pdf'" in gone.json()["error"]["message"]
    assert httpx.post(f"{base}api/search", json={"query": "x", "k": 0}).status_code == 422
    schema = httpx.get(f"{base}openapi.json").json()
    assert {"/api/ask", "/api/search", "/v1/chat/completions"} <= set(schema["paths"])


def test_the_openai_package_gets_cited_answers_streaming_and_not(server, pdf_dir: Path) -> None:
    from openai import OpenAI

    _upload(server.url, pdf_dir / "pypdf-resources" / "crazyones.pdf")
    client = OpenAI(base_url=f"{server.url}v1", api_key="not-needed", max_retries=0, timeout=120)
    assert [m.id for m in client.models.list()] == ["rag"]
    messages = [{"role": "user", "content": "Who does the text say are the crazy ones?"}]
    reply = client.chat.completions.create(model="rag", messages=messages)
    text = reply.choices[0].message.content
    assert text and "[1]" in text
    extra = reply.model_extra
    assert extra["sources"][0]["source"] == "crazyones.pdf" and extra["citations"][0]["page"] == 1

    pieces, last = [], None
    for chunk in client.chat.completions.create(model="rag", messages=messages, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        last = chunk
    assert "".join(pieces) == text
    assert last.choices[0].finish_reason == "stop" and last.model_extra["sources"][0]["source"] == "crazyones.pdf"

    bad = httpx.post(f"{server.url}v1/chat/completions", json={"model": "rag", "messages": [
        {"role": "assistant", "content": "hi"}]})
    assert bad.status_code == 400 and "last message must be a non-empty user message" in bad.json()["error"]["message"]


@pytest.mark.slow
def test_schema_fuzzing_finds_no_server_errors(server) -> None:
    exe = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    result = subprocess.run(
        [exe, "run", f"{server.url}openapi.json", "--checks", "not_a_server_error", "--max-examples", "25",
         "--request-timeout", "60", "--workers", "1", "--exclude-path-regex", "^/files/"],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_remote_generation_through_a_real_openai_compatible_server(server, pdf_dir: Path, tmp_path: Path) -> None:
    """Our OpenAI-compatible generator against a real server speaking the protocol: this one's /v1."""
    crazy = pdf_dir / "pypdf-resources" / "crazyones.pdf"
    _upload(server.url, crazy)
    client_side = RAG(tmp_path / "client", llm=f"openai:{server.url}v1#rag")
    client_side.add_pdf(crazy)
    answer = client_side.ask("Who does the text say are the crazy ones?")
    assert answer.generator.startswith("openai:") and server.url in answer.generator
    assert answer.text.strip() and not answer.refused
    assert answer.sources and answer.sources[0].source == "crazyones.pdf"
    streamed = "".join(p for p in client_side.ask_stream("Who does the text say are the crazy ones?") if isinstance(p, str))
    assert streamed.strip()


def _ndjson(response: httpx.Response) -> list[dict]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def test_api_ask_streams_pieces_then_the_answer(server, pdf_dir: Path) -> None:
    _upload(server.url, pdf_dir / "pypdf-resources" / "crazyones.pdf")
    question = {"question": "Who does the text say are the crazy ones?"}
    whole = httpx.post(f"{server.url}api/ask", json=question, timeout=120).json()
    streamed = httpx.post(f"{server.url}api/ask", json={**question, "stream": True}, timeout=120)
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("application/x-ndjson")
    events = _ndjson(streamed)
    deltas = [e["delta"] for e in events[:-1]]
    assert deltas and all(set(e) == {"delta"} for e in events[:-1])
    assert events[-1]["answer"] == whole and "".join(deltas) == whole["answer"]

    empty = httpx.post(f"{server.url}api/ask", json={"question": "   ", "stream": True})
    assert empty.status_code == 400 and "question is empty" in empty.json()["error"]["message"]


def test_chat_completions_take_k_and_sources_like_api_ask(server, pdf_dir: Path) -> None:
    from openai import BadRequestError, OpenAI, UnprocessableEntityError

    _upload(server.url, pdf_dir / "pypdf-resources" / "crazyones.pdf")
    httpx.post(f"{server.url}api/ingest/text", json={"name": "notes.md", "text": (
        "The lighthouse keeper painted the tower red in 1921. Misfits and rebels visited it every summer.")})
    client = OpenAI(base_url=f"{server.url}v1", api_key="not-needed", max_retries=0, timeout=120)
    messages = [{"role": "user", "content": "Who are the misfits and the rebels?"}]
    everywhere = client.chat.completions.create(model="rag", messages=messages).model_extra
    assert {s["source"] for s in everywhere["sources"]} == {"crazyones.pdf", "notes.md"}
    only_notes = client.chat.completions.create(model="rag", messages=messages,
                                                extra_body={"sources": ["notes.md"], "k": 3}).model_extra
    assert {s["source"] for s in only_notes["sources"]} == {"notes.md"}
    assert only_notes["citations"] and {c["source"] for c in only_notes["citations"]} == {"notes.md"}
    with pytest.raises((UnprocessableEntityError, BadRequestError)):
        client.chat.completions.create(model="rag", messages=messages, extra_body={"k": 101})


def test_remote_client_streams_a_language_model_answer_as_it_is_written(server, pdf_dir: Path,
                                                                         tmp_path: Path) -> None:
    """A server whose generator streams (an OpenAI-compatible LLM: here the first server's /v1)."""
    from rag.http.remote import RemoteRAG
    from rag.settings import Settings
    from rag.types import Answer
    from rag.http.app import create_server

    crazy = pdf_dir / "pypdf-resources" / "crazyones.pdf"
    _upload(server.url, crazy)
    front = RAG(tmp_path / "front", llm=f"openai:{server.url}v1#rag")
    front.add_pdf(crazy)
    with create_server(front, "127.0.0.1", 0, headless=True) as srv:
        client = RemoteRAG(srv.url, Settings.from_env())
        events = list(client.ask_stream("Who does the text say are the crazy ones?"))
        pieces = [e for e in events if isinstance(e, str)]
        answer = events[-1]
        assert isinstance(answer, Answer) and answer.generator.startswith("openai:")
        assert len(pieces) > 1 and "".join(pieces).strip() and not answer.refused
        assert answer.sources[0].source == "crazyones.pdf"
        with pytest.raises(RagError, match="question is empty"):
            list(client.ask_stream("   "))


def test_a_generator_failing_midway_ends_both_streams_with_one_sentence(server, monkeypatch) -> None:
    """A language model that dies after its first words (a remote LLM dropping the connection)."""
    def dying_stream(question, history=None, *, k=None, sources=None, collection=None):
        yield "The crazy ones are"
        raise RagError("The language model server stopped answering midway; ask again")

    monkeypatch.setattr(server.rag, "ask_stream", dying_stream)
    events = _ndjson(httpx.post(f"{server.url}api/ask", json={"question": "Who?", "stream": True}, timeout=60))
    assert events == [{"delta": "The crazy ones are"},
                      {"error": {"message": "The language model server stopped answering midway; ask again",
                                 "type": "invalid_request_error"}}]
    sse = httpx.post(f"{server.url}v1/chat/completions", json={"model": "rag", "stream": True, "messages": [
        {"role": "user", "content": "Who?"}]}, timeout=60).text
    chunks = [json.loads(line[6:]) for line in sse.splitlines() if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "The crazy ones are\n\nThe language model server stopped answering midway; ask again"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and sse.rstrip().endswith("data: [DONE]")


def test_files_of_every_format_upload_and_are_served_as_what_they_are(rag, tmp_path) -> None:
    """A .docx, an HTML page and Markdown through /api/ingest/file; /files serves each safely by its content."""
    import httpx

    from rag.http.app import create_server
    from tests.docgen import make_docx

    page = tmp_path / "page.html"
    page.write_text("<html><body><h2>Rivers</h2><p>The Rhine reaches the North Sea.</p>"
                    "<script>fetch('/api/sources')</script></body></html>", encoding="utf-8")
    notes = tmp_path / "notes.md"
    notes.write_text("# Plans\n\nWe meet on Tuesdays.\n", encoding="utf-8")
    with create_server(rag, "127.0.0.1", 0, headless=True) as server:
        client = httpx.Client(base_url=server.url, headers={"X-Requested-With": "test"}, timeout=120)
        for path, name in ((make_docx(tmp_path / "n.docx"), "nordic.docx"), (page, "page.html"),
                           (notes, "notes.md"), (make_docx(tmp_path / "m.docx"), "minutes")):
            with path.open("rb") as f:
                response = client.post("/api/ingest/file", files={"file": (name, f)})
            assert response.status_code == 200, response.text
        assert sorted(s["source"] for s in client.get("/api/sources").json()) == [
            "minutes.docx", "nordic.docx", "notes.md", "page.html"]
        served = client.get("/files/page.html")
        assert served.status_code == 200 and served.headers["content-type"].startswith("text/html")
        assert "sandbox" in served.headers["content-security-policy"]
        md = client.get("/files/notes.md")
        assert md.headers["content-type"].startswith("text/plain") and "Tuesdays" in md.text
        word = client.get("/files/nordic.docx")
        assert word.headers["content-disposition"].startswith("attachment")
        assert word.content == (tmp_path / "n.docx").read_bytes()
        with page.open("rb") as f:  # the name promises a PDF, the content is HTML: refused, nothing stored
            lying = client.post("/api/ingest/file", files={"file": ("report.pdf", f)})
        assert "report.pdf is not a PDF (its content is an HTML page)" in lying.text
        assert client.get("/files/report.pdf").status_code == 404
