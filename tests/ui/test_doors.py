"""Every door of the real app with the page: with a key or a login set, each route of its route
table (the page's Gradio routes included) refuses a request without credentials, but for the
login page and static files; the page's uploads stay under the data directory and go once ingested;
the page's API bounds its fields as the REST API does."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from rag import RAG
from rag.http.app import create_server, route_table
from tests.ui.conftest import raw_call

KEY = "sk-doors-81f2"
USER, PASSWORD = "alice", "doors: open sesame"
SECRET = "The vault combination is 31-4-15 and only Marta knows it."

# What stays open, and why (rag.http.auth.PUBLIC_PATHS): the login form ("/" shows it until a
# login), the login itself and logout, the page's static files (the same for every install) and
# the API's schema (route shapes, no data).
EXPECTED_OPEN = {
    "/", "/login", "/login/", "/logout", "/favicon.ico", "/theme.css", "/robots.txt", "/manifest.json",
    "/pwa_icon", "/pwa_icon/{size}", "/gradio_api/theme.css", "/openapi.json", "/docs", "/docs/oauth2-redirect",
    "/assets/{path:path}", "/static/{path:path}", "/svelte/{path:path}",
}


@pytest.fixture(params=["key", "login"])
def locked(request, embedder, tmp_path: Path):
    """The app with the page, locked by RAG_API_KEY alone or by RAG_AUTH alone, holding a secret."""
    settings = {"api_key": KEY} if request.param == "key" else {"auth": f"{USER}:{PASSWORD}"}
    rag = RAG(tmp_path / "locked", **settings)
    rag.add_text(SECRET, name="secret.txt")
    with create_server(rag, "127.0.0.1", 0) as server:
        yield request.param, server


def _fill(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", template)


def test_every_route_needs_the_key_or_the_login(locked) -> None:
    kind, server = locked
    table = route_table(server.app)
    paths = {path for path, _ in table}
    # The walk reaches the page's own API, not just ours.
    assert {"/gradio_api/upload", "/gradio_api/queue/join", "/gradio_api/call/{api_name}", "/api/ask",
            "/v1/chat/completions", "/files/{name}", "/view/{name}", "/view/{name}/{number}.png", "/config"} <= paths
    opened, refused = set(), set()
    with httpx.Client(base_url=server.url.rstrip("/"), timeout=60) as http:
        for path, methods in table:
            for method in sorted(methods - {"WEBSOCKET"}):
                r = http.request(method, _fill(path), json={} if method in ("POST", "PUT", "PATCH") else None,
                                 headers={"X-Requested-With": "test"})
                (refused if r.status_code == 401 else opened).add((path, method, r.status_code))
                assert SECRET not in r.text and "31-4-15" not in r.text, (path, method)
    assert {path for path, _, _ in opened} <= EXPECTED_OPEN, sorted(opened)
    assert all(status < 500 for _, _, status in opened), sorted(opened)
    assert len(refused) > 60
    # The page's Gradio API in particular: what gradio_client and curl use.
    base = server.url
    assert httpx.post(f"{base}gradio_api/call/sources", json={"data": []}).status_code == 401
    assert httpx.post(f"{base}gradio_api/upload", files=[("files", ("a.pdf", b"%PDF-1.4\n", "application/pdf"))]
                      ).status_code == 401
    assert server.rag.sources()[0].source == "secret.txt"

    # With the credentials, the same doors open: the key as the page's password when only a key is set.
    auth = ("anyone", KEY) if kind == "key" else (USER, PASSWORD)
    client = Client(base, auth=auth, verbose=False, download_files=False)
    try:
        assert [s["source"] for s in client.predict(api_name="/sources")] == ["secret.txt"]
        assert "31-4-15" in client.predict("What is the vault combination?", api_name="/ask")["answer"]
    finally:
        client.close()
    if kind == "key":
        bearer = {"Authorization": f"Bearer {KEY}"}
        assert httpx.get(f"{base}api/sources", headers=bearer).json()[0]["source"] == "secret.txt"
        bad = Client  # a wrong key is refused at the page's login
        with pytest.raises(Exception, match="(?i)login|credentials|auth"):
            bad(base, auth=("anyone", "sk-wrong"), verbose=False, download_files=False)


def test_page_uploads_stay_under_the_data_directory_and_go_once_ingested(ui_server, facts_pdf: Path, rag) -> None:
    base = ui_server.url.rstrip("/")
    r = httpx.post(f"{base}/gradio_api/upload", files=[("files", ("facts.pdf", facts_pdf.read_bytes(),
                                                                   "application/pdf"))])
    r.raise_for_status()
    [received] = r.json()
    received_dir = (rag.settings.data_dir / ".gradio").resolve()
    assert received_dir in Path(received).resolve().parents
    assert Path(received).is_file()
    event, out = raw_call(ui_server.url, "upload", [
        [{"path": received, "orig_name": "facts.pdf", "meta": {"_type": "gradio.FileData"}}], ""])
    assert event == "complete" and out[0]["files"][0]["status"] == "added", out
    assert not Path(received).exists() and not Path(received).parent.exists()
    assert not any(p.is_file() for p in received_dir.rglob("*"))
    assert (rag.settings.files_dir / "facts.pdf").is_file()
    client = Client(ui_server.url, verbose=False, download_files=False)
    try:
        client.predict("facts.pdf", api_name="/delete")
    finally:
        client.close()
    assert not (rag.settings.files_dir / "facts.pdf").exists()


def test_the_page_api_bounds_its_fields_like_the_rest_api(client, rag) -> None:
    s = rag.settings
    with pytest.raises(AppError, match="question is over"):
        client.predict("vault " * s.max_question_chars, api_name="/ask")
    with pytest.raises(AppError, match="history has"):
        client.predict("vault?", [["q", "a"]] * (s.max_history_turns + 1), api_name="/ask")
    with pytest.raises(AppError, match="turn of history is over"):
        client.predict("vault?", [["q", "a" * (s.max_turn_chars + 1)]], api_name="/ask")
    with pytest.raises(AppError, match="sources names"):
        client.predict("vault?", None, None, [f"s{i}" for i in range(s.max_source_filters + 1)], api_name="/ask")
    # Within the bound the filter reaches the library, which names what is not indexed.
    with pytest.raises(AppError, match="The sources 's0', 's1', .* are not indexed"):
        client.predict("vault?", None, None, [f"s{i}" for i in range(10)], api_name="/ask")
