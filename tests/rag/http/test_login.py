"""Optional login on the real (headless) server: the API key or the login on /api, /v1 and /files."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from rag import RAG
from tests.rag.http.conftest import FACTS

KEY = "sk-test-5d1e0b7a"
USER, PASSWORD = "alice", "correct horse: battery"


@pytest.fixture
def locked(embedder, tmp_path: Path):
    """The real app with RAG_API_KEY and RAG_AUTH set, on a free loopback port."""
    from rag.http.app import create_server

    rag = RAG(tmp_path / "locked", api_key=KEY, auth=f"{USER}:{PASSWORD}")
    with create_server(rag, "127.0.0.1", 0, headless=True) as server:
        yield server


def _upload(base: str, path: Path, headers: dict[str, str] | None = None) -> httpx.Response:
    with path.open("rb") as fh:
        return httpx.post(f"{base}api/ingest/file", files={"file": (path.name, fh, "application/pdf")}, timeout=120,
                          headers={"X-Requested-With": "test", **(headers or {})})


def test_the_api_needs_the_key_or_the_login(locked, facts_pdf: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    base = locked.url
    missing = httpx.get(f"{base}api/health")
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json() == {"error": {"type": "authentication_error", "message": (
        "This server requires a login; send the server's RAG_API_KEY as the header 'Authorization: Bearer <key>' "
        "or the user and password of its RAG_AUTH with HTTP Basic authentication")}}
    wrong = httpx.get(f"{base}api/health", headers={"Authorization": "Bearer sk-wrong"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"].startswith("The credentials sent are not valid for this server; send ")
    for path in ("api/sources", "v1/models", "files/facts.pdf"):
        assert httpx.get(base + path).status_code == 401, path
    assert _upload(base, facts_pdf).status_code == 401
    assert httpx.post(f"{base}api/search", json={"query": "x"}).status_code == 401

    bearer = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(f"{base}api/health", headers=bearer).json()["status"] == "ok"
    assert _upload(base, facts_pdf, headers=bearer).json()["added"] == {"facts.pdf": len(FACTS)}
    hits = httpx.post(f"{base}api/search", json={"query": FACTS[3][1], "k": 1}, headers=bearer).json()["hits"]
    assert hits[0]["page"] == 4
    basic = httpx.get(f"{base}api/sources", auth=(USER, PASSWORD))
    assert basic.status_code == 200 and [s["source"] for s in basic.json()] == ["facts.pdf"]
    assert httpx.get(f"{base}api/sources", auth=(USER, "wrong")).status_code == 401
    pdf = httpx.get(f"{base}files/facts.pdf", headers=bearer)
    assert pdf.status_code == 200 and pdf.content == facts_pdf.read_bytes()
    # The schema stays readable (it holds no data), so clients can discover the routes.
    assert httpx.get(f"{base}openapi.json").status_code == 200
    logged = caplog.text
    assert KEY not in logged and PASSWORD not in logged


def test_openai_clients_send_the_key_as_their_api_key(locked, facts_pdf: Path) -> None:
    import openai

    _upload(locked.url, facts_pdf, headers={"Authorization": f"Bearer {KEY}"})
    messages = [{"role": "user", "content": FACTS[0][1]}]
    with pytest.raises(openai.AuthenticationError) as exc:
        openai.OpenAI(base_url=f"{locked.url}v1", api_key="sk-wrong", max_retries=0, timeout=60).chat.completions.create(
            model="rag", messages=messages)
    assert exc.value.status_code == 401 and "not valid for this server" in str(exc.value)
    client = openai.OpenAI(base_url=f"{locked.url}v1", api_key=KEY, max_retries=0, timeout=120)
    reply = client.chat.completions.create(model="rag", messages=messages)
    assert FACTS[0][2] in reply.choices[0].message.content
    assert reply.model_extra["citations"][0]["page"] == 1
