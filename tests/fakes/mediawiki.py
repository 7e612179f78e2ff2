"""A local HTTP server that answers like the MediaWiki API, built from real Wikipedia text.

It answers exactly the requests the ``wikipedia`` package (1.4.0) makes for
``page(title, auto_suggest=..., redirect=True)`` followed by ``.content``,
``.url``, ``.pageid``, ``.revision_id`` and ``.summary``, plus ``search`` /
``suggest`` (so a test can show what auto-suggest *would* have swapped in).

Pages (from ``../shared/data`` next to the repo root):

* every article of ``squad/squad-dev-v1.1-half-a.json``: title with ``_`` -> space
  ("Super Bowl 50", "Fresno, California"); lead = paragraph 1, then
  ``== Section 1 ==``, ``== Section 2 ==``, ... with 3 paragraphs each;
* every ``wiki/wikitext/*.txt``, crudely turned into plain text with its ``== headings ==``;
  title = file name with ``-``/``_`` -> space and a capital first letter
  ("United-Kingdom.txt" -> "United Kingdom", "toronto.txt" -> "Toronto"), except
  "al_Haytham.txt" -> "Ibn al-Haytham" (its real title);
* "Bush", a disambiguation page whose options are the recorded ones in
  ``wiki/mediawiki-api/pymediawiki_mock_responses.json``;
* redirects: "UK" and "United Kingdom of Great Britain and Northern Ireland" -> "United Kingdom",
  "Alhazen" -> "Ibn al-Haytham", "SB50" -> "Super Bowl 50";
* any other title is missing. ``search("Super Bowl")`` returns "Super Bowl 50" first.

Use the ``mediawiki_server`` fixture (a fresh server per test; the pages are built once).
In ``tests/conftest.py``: ``from tests.fakes.mediawiki import mediawiki_server  # noqa: F401``.
"""

from __future__ import annotations

import html
import json
import os
import re
import threading
import zlib
from dataclasses import dataclass
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from rag.eval.distractors import wikitext_to_plain

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
API_PATH = "/w/api.php"
ARTICLE_BASE = "https://en.wikipedia.org/wiki/"
TITLE_OVERRIDES = {"al_Haytham": "Ibn al-Haytham"}
REDIRECTS = {
    "UK": "United Kingdom",
    "United Kingdom of Great Britain and Northern Ireland": "United Kingdom",
    "Alhazen": "Ibn al-Haytham",
    "SB50": "Super Bowl 50",
}
DISAMBIGUATION_TITLE = "Bush"
SQUAD_PARAGRAPHS_PER_SECTION = 3


@dataclass(frozen=True)
class FakePage:
    """One page the fake wiki holds."""

    title: str
    extract: str
    page_id: int
    revision_id: int
    disambiguation_options: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return ARTICLE_BASE + quote(self.title.replace(" ", "_"), safe="/:,()'!*;@$~")


# ---------------------------------------------------------------------------- building pages


def _squad_extract(paragraphs: list[str]) -> str:
    parts = [paragraphs[0].strip()]
    rest = paragraphs[1:]
    for n, i in enumerate(range(0, len(rest), SQUAD_PARAGRAPHS_PER_SECTION), start=1):
        body = "\n".join(p.strip() for p in rest[i : i + SQUAD_PARAGRAPHS_PER_SECTION])
        parts.append(f"\n\n== Section {n} ==\n{body}")
    return "\n".join(parts)


def _disambiguation_options() -> tuple[str, ...]:
    recorded = json.loads((DATA_DIR / "wiki" / "mediawiki-api" / "pymediawiki_mock_responses.json").read_text())
    message = recorded["https://en.wikipedia.org/w/api.php"]["disambiguation_error_msg"]
    lines = [line.strip() for line in message.strip().splitlines()]
    return tuple(line for line in lines[1:] if line)


def _make_page(title: str, extract: str, options: tuple[str, ...] = ()) -> FakePage:
    page_id = zlib.crc32(title.encode()) % 90_000_000 + 1_000_000
    revision_id = zlib.crc32(extract.encode()) % 900_000_000 + 100_000_000
    return FakePage(title, extract, page_id, revision_id, options)


@lru_cache(maxsize=1)
def build_pages() -> dict[str, FakePage]:
    """Build every page of the fake wiki from the shared data (once per process).

    Returns:
        Pages by exact title.
    """
    pages: list[FakePage] = []
    squad = json.loads((DATA_DIR / "squad" / "squad-dev-v1.1-half-a.json").read_text(encoding="utf-8"))
    for article in squad["data"]:
        paragraphs = [p["context"] for p in article["paragraphs"]]
        pages.append(_make_page(article["title"].replace("_", " "), _squad_extract(paragraphs)))
    for path in sorted((DATA_DIR / "wiki" / "wikitext").glob("*.txt")):
        title = TITLE_OVERRIDES.get(path.stem) or re.sub(r"[-_]", " ", path.stem)
        title = title[0].upper() + title[1:]
        pages.append(_make_page(title, wikitext_to_plain(path.read_text(encoding="utf-8"))))
    options = _disambiguation_options()
    lead = f"{DISAMBIGUATION_TITLE} may refer to:"
    pages.append(_make_page(DISAMBIGUATION_TITLE, lead + "\n" + "\n".join(options), options))
    by_title = {p.title: p for p in pages}
    ids = {p.page_id for p in pages}
    assert len(by_title) == len(pages) == len(ids), "duplicate titles or page ids in the fake wiki"
    return by_title


# ---------------------------------------------------------------------------- the server


class FakeMediaWiki:
    """The fake API server with fault injection; ``requests`` records every request's parameters."""

    def __init__(self, pages: dict[str, FakePage] | None = None) -> None:
        self.pages = build_pages() if pages is None else pages
        self.redirects = dict(REDIRECTS)
        self.requests: list[dict[str, str]] = []
        self._faults: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-mediawiki", daemon=True
        )

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{API_PATH}"

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next ``n`` requests with HTTP ``status`` and an HTML body."""
        with self._lock:
            self._faults += [("status", float(status))] * n

    def hang_next(self, n: int, seconds: float) -> None:
        """Wait ``seconds`` before answering each of the next ``n`` requests."""
        with self._lock:
            self._faults += [("hang", seconds)] * n

    def garbage_next(self, n: int) -> None:
        """Answer the next ``n`` requests with HTTP 200 and a body that is not JSON."""
        with self._lock:
            self._faults += [("garbage", 0.0)] * n

    def reset(self) -> None:
        """Forget pending faults and recorded requests."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()

    def start(self) -> "FakeMediaWiki":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging handlers
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "FakeMediaWiki":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- answering

    def take_fault(self, params: dict[str, str]) -> tuple[str, float] | None:
        with self._lock:
            self.requests.append(params)
            return self._faults.pop(0) if self._faults else None

    def answer(self, params: dict[str, str]) -> dict[str, Any]:
        if params.get("format") != "json":
            return _error("badformat", "this fake only speaks format=json")
        if params.get("action", "query") != "query":
            return _error("unsupported", f"action={params.get('action')} is not faked")
        if params.get("list") == "search":
            return self._search(params)
        props = set(params.get("prop", "").split("|"))
        title = params.get("titles")
        if title is None or "|" in title:
            return _error("unsupported", "this fake answers one title at a time")
        if "info" in props:
            return self._info(title, "redirects" in params)
        page = self.pages.get(_normalize(title))
        if page is None:
            return {"batchcomplete": "", "query": {"pages": {"-1": {"ns": 0, "title": title, "missing": ""}}}}
        entry: dict[str, Any] = {"pageid": page.page_id, "ns": 0, "title": page.title}
        if "extracts" in props:
            intro = "exintro" in params
            entry["extract"] = page.extract.split("\n\n\n==", 1)[0] if intro else page.extract
        if "revisions" in props:
            revision: dict[str, Any] = {"revid": page.revision_id, "parentid": page.revision_id - 1}
            if "content" in params.get("rvprop", ""):
                items = "".join(
                    f'<li><a href="/wiki/{quote(o.replace(" ", "_"))}" title="{html.escape(o)}">{html.escape(o)}</a></li>'
                    for o in page.disambiguation_options
                )
                revision["*"] = f"<p><b>{page.title}</b> may refer to:</p><ul>{items}</ul>"
            entry["revisions"] = [revision]
        return {"batchcomplete": "", "query": {"pages": {str(page.page_id): entry}}}

    def _info(self, title: str, follow: bool) -> dict[str, Any]:
        query: dict[str, Any] = {}
        name = _normalize(title)
        if name != title:
            query["normalized"] = [{"from": title, "to": name}]
        if follow and name in self.redirects:
            query["redirects"] = [{"from": name, "to": self.redirects[name]}]
            name = self.redirects[name]
        page = self.pages.get(name)
        if page is None:
            query["pages"] = {"-1": {"ns": 0, "title": name, "missing": ""}}
            return {"batchcomplete": "", "query": query}
        entry: dict[str, Any] = {
            "pageid": page.page_id, "ns": 0, "title": page.title, "contentmodel": "wikitext",
            "pagelanguage": "en", "lastrevid": page.revision_id, "length": len(page.extract),
            "fullurl": page.url, "canonicalurl": page.url, "editurl": f"{page.url}?action=edit",
        }
        if page.disambiguation_options:
            entry["pageprops"] = {"disambiguation": ""}
        query["pages"] = {str(page.page_id): entry}
        return {"batchcomplete": "", "query": query}

    def _search(self, params: dict[str, str]) -> dict[str, Any]:
        words = params.get("srsearch", "").lower().split()
        limit = int(params.get("srlimit", "10"))
        found = sorted((t for t in self.pages if all(w in t.lower() for w in words)), key=len)[:limit]
        query: dict[str, Any] = {"search": [{"ns": 0, "title": t, "pageid": self.pages[t].page_id} for t in found]}
        return {"batchcomplete": "", "query": query}


def _normalize(title: str) -> str:
    title = re.sub(r"[_ ]+", " ", title).strip()
    return title[:1].upper() + title[1:]


def _error(code: str, info: str) -> dict[str, Any]:
    return {"error": {"code": code, "info": info}}


def _handler_for(server: FakeMediaWiki) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            parts = urlsplit(self.path)
            params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            fault = server.take_fault(params)
            if fault and fault[0] == "hang":
                if server._stopping.wait(fault[1]):
                    return
                fault = None
            if parts.path != API_PATH:
                self._send(404, b"<html><body><h1>Not Found</h1></body></html>", "text/html")
            elif fault and fault[0] == "status":
                status = int(fault[1])
                self._send(status, f"<html><body><h1>{status} Service Unavailable</h1></body></html>".encode(),
                           "text/html")
            elif fault and fault[0] == "garbage":
                self._send(200, b"<!DOCTYPE html><html><body>Wikimedia Error</body></html>", "text/html")
            else:
                body = json.dumps(server.answer(params)).encode("utf-8")
                self._send(200, body, "application/json; charset=utf-8")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to answer

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


# ---------------------------------------------------------------------------- the fixture


@pytest.fixture
def mediawiki_server() -> Iterator[FakeMediaWiki]:
    """A running fake MediaWiki API on 127.0.0.1 (fresh per test); its ``.api_url`` is the endpoint."""
    if not (DATA_DIR / "squad").is_dir() or not (DATA_DIR / "wiki").is_dir():
        reason = f"the shared test data is not at {DATA_DIR} (expected ../shared/data next to the repo)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with FakeMediaWiki() as server:
        yield server
