"""The door of the real (headless) server over loopback HTTP: foreign Origin and Host, form-typed
writes, bodies and fields over their limits, malformed numbers; each refused with one JSON sentence."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rag import RAG
from rag.http.guard import _hardened
from tests.conftest import ROOT

SECRET = "The vault combination is 31-4-15 and only Marta knows it."


@pytest.fixture
def secret_server(api_server):
    """The headless server holding one secret text source."""
    r = httpx.post(f"{api_server.url}api/ingest/text", json={"name": "secret.txt", "text": SECRET}, timeout=120)
    assert r.status_code == 200, r.text
    return api_server


def _names(server) -> list[str]:
    return [s.source for s in server.rag.sources()]


def _refused(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    message = r.json()["error"]["message"]
    assert "\n" not in message and "Traceback" not in message
    for word in words:
        assert word in message, message


def test_a_foreign_origin_can_neither_read_nor_write(secret_server) -> None:
    base = secret_server.url
    port = secret_server.port
    for origin in ("http://evil.example", "http://localhost:8999", f"http://127.0.0.1:{port + 1}", "null"):
        head = {"Origin": origin}
        _refused(httpx.get(f"{base}api/sources", headers=head), 403, "other sites", "RAG_ALLOWED_ORIGINS")
        _refused(httpx.delete(f"{base}api/sources/secret.txt", headers=head), 403)
        _refused(httpx.post(f"{base}api/ingest/text", json={"name": "planted.txt", "text": "planted"},
                            headers=head), 403)
        _refused(httpx.post(f"{base}v1/chat/completions", headers=head, json={
            "messages": [{"role": "user", "content": "What is the vault combination?"}]}), 403)
        preflight = httpx.request("OPTIONS", f"{base}api/ingest/text", headers={
            **head, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
        assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    assert _names(secret_server) == ["secret.txt"]
    # The server's own origin (what its page sends) still works.
    own = {"Origin": f"http://127.0.0.1:{port}"}
    assert [s["source"] for s in httpx.get(f"{base}api/sources", headers=own).json()] == ["secret.txt"]


def test_a_page_of_another_site_without_origin_is_refused_but_a_followed_link_is_not(secret_server) -> None:
    base = secret_server.url
    for site in ("cross-site", "same-site"):
        _refused(httpx.get(f"{base}api/sources", headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "no-cors"}), 403)
    navigate = httpx.get(f"{base}api/health", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"})
    assert navigate.status_code == 200
    _refused(httpx.delete(f"{base}api/sources/secret.txt", headers={"Referer": "http://evil.example/page"}), 403)
    assert _names(secret_server) == ["secret.txt"]


def test_dns_rebinding_host_names_are_refused(secret_server) -> None:
    base = secret_server.url
    _refused(httpx.get(f"{base}api/sources", headers={"Host": "attacker.example"}), 403, "attacker.example",
             "RAG_ALLOWED_HOSTS")
    _refused(httpx.get(f"{base}api/sources", headers={"Host": f"attacker.example:{secret_server.port}"}), 403)
    for host in (f"127.0.0.1:{secret_server.port}", f"localhost:{secret_server.port}", "[::1]:80"):
        assert httpx.get(f"{base}api/sources", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_and_origins_are_settings(embedder, tmp_path: Path) -> None:
    from rag.http.app import create_server

    rag = RAG(tmp_path / "d", allowed_hosts="rag.internal", allowed_origins="https://rag.internal")
    with create_server(rag, "127.0.0.1", 0, headless=True) as server:
        base = server.url
        assert httpx.get(f"{base}api/health", headers={"Host": "rag.internal"}).status_code == 200
        _refused(httpx.get(f"{base}api/health", headers={"Host": "other.internal"}), 403)
        ok = httpx.get(f"{base}api/sources", headers={"Origin": "https://rag.internal"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://rag.internal"
        _refused(httpx.get(f"{base}api/sources", headers={"Origin": "https://evil.internal"}), 403)


def test_writes_in_a_form_content_type_need_a_header_no_foreign_page_can_send(secret_server, facts_pdf: Path) -> None:
    base = secret_server.url
    body = json.dumps({"name": "planted.txt", "text": "planted by a form"})
    for kind in ("text/plain", "application/x-www-form-urlencoded"):
        _refused(httpx.post(f"{base}api/ingest/text", content=body, headers={"Content-Type": kind}), 415,
                 "X-Requested-With")
    files = {"file": ("planted.pdf", facts_pdf.read_bytes(), "application/pdf")}
    _refused(httpx.post(f"{base}api/ingest/file", files=files), 415, "X-Requested-With")
    _refused(httpx.post(f"{base}api/sources/secret.txt"), 415)
    assert _names(secret_server) == ["secret.txt"]
    added = httpx.post(f"{base}api/ingest/file", files=files, headers={"X-Requested-With": "curl"}, timeout=120)
    assert added.json()["added"] == {"planted.pdf": 8}


def test_malformed_numbers_and_huge_lists_are_one_sentence_422s(secret_server) -> None:
    base = secret_server.url
    r = httpx.post(f"{base}api/search", content=b'{"query": "vault", "k": 1e400}',
                   headers={"Content-Type": "application/json"})
    _refused(r, 422, "k", "finite")
    many = httpx.post(f"{base}api/search", json={"query": "vault", "sources": [f"s{i}" for i in range(100_000)]})
    _refused(many, 422, "sources", "at most 256")
    ask = httpx.post(f"{base}api/ask", json={"question": "vault?", "sources": ["x"] * 300})
    _refused(ask, 422, "sources")
    # Within the limit a source filter reaches the store: names of nothing indexed are refused by
    # name (they would restrict the read to nothing), a real one finds its chunks.
    near_cap = httpx.post(f"{base}api/search", json={"query": "vault", "sources": ["secret.txt"] + [f"s{i}" for i in range(200)]})
    _refused(near_cap, 404, "The sources 's0', 's1',", "are not indexed; indexed sources: secret.txt")
    hits = httpx.post(f"{base}api/search", json={"query": "vault", "sources": ["secret.txt"]})
    assert hits.status_code == 200 and hits.json()["hits"][0]["source"] == "secret.txt"


def test_every_field_is_capped(secret_server) -> None:
    base = secret_server.url
    settings = secret_server.rag.settings
    long_question = "vault " * (settings.max_question_chars // 6 + 1)
    _refused(httpx.post(f"{base}api/ask", json={"question": long_question}), 422, "question")
    _refused(httpx.post(f"{base}v1/chat/completions", json={"messages": [
        {"role": "user", "content": long_question}]}), 422, "question", "RAG_MAX_QUESTION_CHARS")
    turns = [["q", "a"]] * (settings.max_history_turns + 1)
    _refused(httpx.post(f"{base}api/ask", json={"question": "vault?", "history": turns}), 422, "history")
    fat_turn = [["q", "a" * (settings.max_turn_chars + 1)]]
    _refused(httpx.post(f"{base}api/ask", json={"question": "vault?", "history": fat_turn}), 422, "history")
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}] * 50
    _refused(httpx.post(f"{base}v1/chat/completions", json={"messages": [*messages, {"role": "user", "content": "q"}]}),
             422, "messages")
    # At the limits, it answers.
    ok = httpx.post(f"{base}api/ask", json={"question": "What is the vault combination?",
                                            "history": [["q", "a" * 100]] * settings.max_history_turns}, timeout=120)
    assert ok.status_code == 200 and "31-4-15" in ok.json()["answer"]


def test_big_bodies_are_refused_before_they_are_read(secret_server) -> None:
    base = secret_server.url
    # A 10 MB chat message: over the request body limit, refused by its Content-Length.
    big = {"messages": [{"role": "user", "content": "vault " * 1_750_000}]}
    _refused(httpx.post(f"{base}v1/chat/completions", json=big, timeout=60), 413, "RAG_MAX_REQUEST_BYTES")
    # 50 turns of history of 1 MB each.
    heavy = {"question": "vault?", "history": [["q", "a" * 1_000_000]] * 50}
    _refused(httpx.post(f"{base}api/ask", json=heavy, timeout=60), 413)
    assert _names(secret_server) == ["secret.txt"]


def _raw(port: int, head: bytes, body_chunks=(), read_timeout: float = 30) -> tuple[bytes, int]:
    """Send a request by hand; returns (response bytes, body bytes sent before the server answered or cut us off)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        response = b""
        for chunk in body_chunks:
            try:
                response += sock.recv(65536)
            except BlockingIOError:
                pass
            if response:
                break
            try:
                sock.sendall(chunk)  # non-blocking: raises once the server stops reading
                sent += len(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                time.sleep(0.05)
        sock.setblocking(True)
        try:
            while not response.endswith(b"}"):  # the JSON error body, then the server closes
                data = sock.recv(65536)
                if not data:
                    break
                response += data
        except (ConnectionResetError, socket.timeout):
            pass
    return response, sent


def test_an_upload_over_the_limit_is_refused_from_its_header_and_cut_off_when_chunked(embedder, tmp_path: Path) -> None:
    from rag.http.app import create_server

    rag = RAG(tmp_path / "d", max_pdf_bytes=1 << 20)
    with create_server(rag, "127.0.0.1", 0, headless=True) as server:
        head = (b"POST /api/ingest/file HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Requested-With: t\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n")
        # Declared 1 GiB: the answer comes before any of the body is sent.
        response, _ = _raw(server.port, head + b"Content-Length: 1073741824\r\n\r\n")
        assert response.startswith(b"HTTP/1.1 413"), response[:200]
        assert b"over the 1 MB limit" in response or b"RAG_MAX_PDF_BYTES" in response
        # Chunked, no length: counted as it arrives, cut off near the limit, never 1 GiB.
        def framed(data: bytes) -> bytes:
            return b"%x\r\n%s\r\n" % (len(data), data)

        part = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n\r\n%PDF-1.4\n"
        chunk = framed(b"x" * (1 << 16))
        response, sent = _raw(server.port, head + b"Transfer-Encoding: chunked\r\n\r\n" + framed(part),
                              (chunk for _ in range(16384)))
        assert response.startswith(b"HTTP/1.1 413"), response[:200]
        assert sent < 64 << 20, sent
        assert rag.sources() == [] and not any(p.is_file() for p in rag.settings.files_dir.rglob("*"))
        assert not list(rag.settings.data_dir.glob(".upload-*"))
        assert httpx.get(f"{server.url}api/health", timeout=30).status_code == 200  # still serving


def test_a_text_over_its_limit_is_refused(embedder, tmp_path: Path) -> None:
    from rag.http.app import create_server

    rag = RAG(tmp_path / "d", max_text_bytes=10_000, max_request_bytes=20_000)
    with create_server(rag, "127.0.0.1", 0, headless=True) as server:
        base = server.url
        _refused(httpx.post(f"{base}api/ingest/text", json={"name": "a.txt", "text": "word " * 2_500}), 413,
                 "RAG_MAX_TEXT_BYTES")
        _refused(httpx.post(f"{base}api/ingest/text", json={"name": "b.txt", "text": "word " * 100_000}), 413,
                 "RAG_MAX_TEXT_BYTES")
        assert httpx.post(f"{base}api/ingest/text", json={"name": "c.txt", "text": "word " * 1_000},
                          timeout=120).status_code == 200
        assert [s.source for s in rag.sources()] == ["c.txt"]


def test_cookies_become_samesite_strict_and_pages_cannot_be_framed() -> None:
    headers = _hardened([(b"set-cookie", b"access-token-x=abc; HttpOnly; Path=/; SameSite=none; Secure"),
                         (b"set-cookie", b"other=1; Path=/"), (b"content-type", b"text/html")])
    cookies = [v for k, v in headers if k == b"set-cookie"]
    assert all(c.count(b"SameSite") == 1 and c.endswith(b"SameSite=Strict") for c in cookies)
    assert b"Secure" in cookies[0] and (b"x-frame-options", b"SAMEORIGIN") in headers


def test_the_headless_app_never_imports_gradio(tmp_path: Path) -> None:
    code = ("import sys\nfrom rag import RAG\nfrom rag.http.app import create_app\n"
            f"app = create_app(RAG({str(tmp_path / 'd')!r}), headless=True)\n"
            "from rag.http.app import route_table\npaths = {path for path, _ in route_table(app)}\n"
            "assert {'/api/ask', '/v1/chat/completions', '/files/{name}'} <= paths, paths\n"
            "print('gradio' in sys.modules, any(m.startswith('gradio') for m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "False"]
