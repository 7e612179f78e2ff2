"""Pages of other origins, in headless Chromium, try every read and write on the real server: all fail.

The attacker's page is served from ANOTHER loopback port (``http://127.0.0.1:<other>``, the same
site as the server for cookies, and ``http://localhost:<other>``), and tries what a page can:
CORS reads of the page's Gradio API, ``/api`` and ``/files`` (with the user's cookies), a
DELETE, JSON and ``no-cors`` plain-text and multipart writes to ``/api`` and the Gradio API.
Then the chat page itself still answers. With ``RAG_AUTH`` set, the user logs in on the page first
(the attacker's page runs with that login cookie in the browser).
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rag import RAG
from rag.http.app import create_server
from tests.ui.conftest import wait

pytestmark = pytest.mark.browser

USER, PASSWORD = "alice", "cross-site: s3cret"
SECRET = ("The vault combination is 31-4-15 and only Marta knows it. The vault manual is at "
          "http://evil.example/manual and www.evil.example, or write to keeper@evil.example.")

ATTACK = """<!doctype html><html><body><pre id="done"></pre><script>
const T = %(target)s, PDF = atob(%(pdf)s);
const out = {};
async function attempt(name, fn) {
  try { out[name] = await fn(); } catch (e) { out[name] = "error:" + e.name; }
}
function pdfForm(field) {
  const form = new FormData();
  form.append(field, new Blob([Uint8Array.from(PDF, c => c.charCodeAt(0))], {type: "application/pdf"}), "planted.pdf");
  return form;
}
(async () => {
  await attempt("gradio_sources", async () => {
    const r = await fetch(T + "gradio_api/call/sources", {method: "POST", credentials: "include",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify({data: []})});
    const id = (await r.json()).event_id;
    const s = await fetch(T + "gradio_api/call/sources/" + id, {credentials: "include"});
    return "read:" + s.status + ":" + await s.text();
  });
  await attempt("gradio_info", async () => {
    const r = await fetch(T + "gradio_api/info", {credentials: "include"});
    return "read:" + r.status + ":" + await r.text();
  });
  await attempt("api_sources", async () => {
    const r = await fetch(T + "api/sources", {credentials: "include"});
    return "read:" + r.status + ":" + await r.text();
  });
  await attempt("files", async () => {
    const r = await fetch(T + "files/facts.pdf", {credentials: "include"});
    return "read:" + r.status + ":" + (await r.text()).slice(0, 20);
  });
  await attempt("delete", async () => {
    const r = await fetch(T + "api/sources/secret.txt", {method: "DELETE", credentials: "include"});
    return "read:" + r.status;
  });
  await attempt("plant_json", async () => {
    const r = await fetch(T + "api/ingest/text", {method: "POST", credentials: "include",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify({name: "planted-json.txt", text: "planted"})});
    return "read:" + r.status;
  });
  await attempt("plant_plain_no_cors", async () => {
    await fetch(T + "api/ingest/text", {method: "POST", mode: "no-cors", credentials: "include",
      headers: {"Content-Type": "text/plain"}, body: JSON.stringify({name: "planted-plain.txt", text: "planted"})});
    return "sent";
  });
  await attempt("plant_pdf_no_cors", async () => {
    await fetch(T + "api/ingest/file", {method: "POST", mode: "no-cors", credentials: "include", body: pdfForm("file")});
    return "sent";
  });
  await attempt("gradio_upload_no_cors", async () => {
    await fetch(T + "gradio_api/upload", {method: "POST", mode: "no-cors", credentials: "include", body: pdfForm("files")});
    return "sent";
  });
  await attempt("gradio_delete_no_cors", async () => {
    await fetch(T + "gradio_api/call/delete", {method: "POST", mode: "no-cors", credentials: "include",
      headers: {"Content-Type": "text/plain"}, body: JSON.stringify({data: ["secret.txt"]})});
    return "sent";
  });
  await attempt("gradio_delete", async () => {
    const r = await fetch(T + "gradio_api/call/delete", {method: "POST", credentials: "include",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify({data: ["secret.txt"]})});
    return "read:" + r.status;
  });
  document.getElementById("done").textContent = JSON.stringify(out);
})();
</script></body></html>"""


class _Attacker:
    """A web page of another origin, on its own loopback port."""

    def __init__(self, target: str, pdf: bytes) -> None:
        page = (ATTACK % {"target": json.dumps(target), "pdf": json.dumps(base64.b64encode(pdf).decode())}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *_: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _attack(browser, server, pdf: bytes) -> None:
    from selenium.webdriver.common.by import By

    attacker = _Attacker(server.url, pdf)
    try:
        for origin in (f"http://127.0.0.1:{attacker.port}/", f"http://localhost:{attacker.port}/"):
            browser.get(origin)
            done = wait(lambda: browser.find_element(By.ID, "done").text, 60, "the attack page to finish")
            results = json.loads(done)
            assert len(results) == 11, results
            for name, outcome in results.items():
                assert not outcome.startswith("read:"), (origin, name, outcome)
                assert "31-4-15" not in outcome and "%PDF" not in outcome, (origin, name, outcome)
    finally:
        attacker.close()
    rag = server.rag
    assert sorted(s.source for s in rag.sources()) == ["facts.pdf", "secret.txt"]
    received = rag.settings.data_dir / ".gradio"
    assert not any(p.is_file() for p in received.rglob("*")), list(received.rglob("*"))


def _ask_on_the_page(browser, server) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(server.url)
    box = wait(lambda: browser.find_element(By.CSS_SELECTOR, "#question textarea"), 60, "the question box")
    box.send_keys("What is the vault combination?")
    box.send_keys(Keys.ENTER)
    wait(lambda: "31-4-15" in browser.find_element(By.ID, "chat").text
         and "Answered by" in browser.find_element(By.ID, "chat").text, 90, "the answer")
    wait(lambda: "secret.txt" in browser.find_element(By.ID, "sources-panel").text, 30, "the sources panel")
    # Document text is shown as text: its URLs, www. names and e-mail addresses are not links.
    for where in ("chat", "sources-panel"):
        text = browser.find_element(By.ID, where).text
        assert "evil.example/manual" in text or where == "chat", text
        links = [a.get_attribute("href") or "" for a in browser.find_elements(By.CSS_SELECTOR, f"#{where} a")]
        assert not [h for h in links if "evil.example" in h], links


@pytest.fixture
def facts_and_secret(facts_pdf: Path):
    def fill(rag: RAG) -> None:
        rag.upload(facts_pdf, name="facts.pdf")
        rag.add_text(SECRET, name="secret.txt")

    return fill


def test_pages_of_other_origins_cannot_read_or_write(browser, rag, facts_pdf: Path, facts_and_secret) -> None:
    facts_and_secret(rag)
    with create_server(rag, "127.0.0.1", 0) as server:
        _attack(browser, server, facts_pdf.read_bytes())
        _ask_on_the_page(browser, server)


def test_with_a_login_other_origins_cannot_ride_the_cookie(browser, embedder, tmp_path: Path, facts_pdf: Path,
                                                           facts_and_secret) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    rag = RAG(tmp_path / "login", auth=f"{USER}:{PASSWORD}")
    facts_and_secret(rag)
    with create_server(rag, "127.0.0.1", 0) as server:
        browser.get(server.url)
        user = wait(lambda: browser.find_element(By.CSS_SELECTOR, "input[type=text], input:not([type])"), 60,
                    "the login form")
        user.send_keys(USER)
        password = browser.find_element(By.CSS_SELECTOR, "input[type=password]")
        password.send_keys(PASSWORD)
        password.send_keys(Keys.ENTER)
        wait(lambda: browser.find_element(By.CSS_SELECTOR, "#question textarea"), 60, "the chat after the login")
        cookies = browser.get_cookies()
        assert cookies and all(c.get("sameSite") == "Strict" for c in cookies), cookies
        _attack(browser, server, facts_pdf.read_bytes())
        _ask_on_the_page(browser, server)  # still logged in, the page works
