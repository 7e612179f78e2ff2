"""Gradio's login page on the real server: the page and its API need the login; its cookie opens /files."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from rag import RAG
from tests.rag.http.test_login import KEY, PASSWORD, USER, _upload


@pytest.fixture
def locked(embedder, tmp_path: Path):
    """The real app with the page, RAG_API_KEY and RAG_AUTH set, on a free loopback port."""
    from rag.http.app import create_server

    rag = RAG(tmp_path / "locked", api_key=KEY, auth=f"{USER}:{PASSWORD}")
    with create_server(rag, "127.0.0.1", 0) as server:
        yield server


def test_the_page_asks_for_the_login_and_its_cookie_opens_files(locked, facts_pdf: Path) -> None:
    from gradio_client import Client

    base = locked.url
    _upload(base, facts_pdf, headers={"Authorization": f"Bearer {KEY}"})
    page = httpx.get(base)
    assert page.status_code == 200 and '"auth_required":true' in page.text.replace(" ", "")
    assert httpx.get(f"{base}config").status_code == 401
    assert httpx.get(f"{base}gradio_api/info").status_code == 401

    with httpx.Client(base_url=base) as browser:
        assert browser.post("login", data={"username": USER, "password": "wrong"}).status_code == 400
        assert browser.get("files/facts.pdf").status_code == 401
        assert browser.post("login", data={"username": USER, "password": PASSWORD}).json() == {"success": True}
        assert browser.get("config").status_code == 200
        opened = browser.get("files/facts.pdf")  # a citation link clicked in the logged-in chat
        assert opened.status_code == 200 and opened.content == facts_pdf.read_bytes()
        assert browser.get("api/sources").status_code == 401  # the API wants the key or Basic, not the cookie
        browser.get("logout")
        assert browser.get("files/facts.pdf").status_code == 401

    client = Client(base, auth=(USER, PASSWORD), verbose=False, download_files=False)
    try:
        assert [s["source"] for s in client.predict(api_name="/sources")] == ["facts.pdf"]
    finally:
        client.close()
