"""The citation viewer over real HTTP: a cited PDF page drawn by PDFium with the passage boxed where
PDFium's own character boxes put it, the sections of other formats with the passage marked, and
one-sentence refusals of unknown files, bad pages and foreign callers."""

from __future__ import annotations

import html
import re
import unicodedata
from pathlib import Path

import httpx
import pypdfium2 as pdfium
import pytest

from rag.links import citation_link
from rag.types import Hit
from tests.rag.http.conftest import FACTS

BOX = re.compile(r'class="hl"[^>]*style="left:([\d.]+)%;top:([\d.]+)%;width:([\d.]+)%;height:([\d.]+)%"')


def _boxes(html: str) -> list[tuple[float, float, float, float]]:
    """The highlight rectangles of a viewer page, as fractions (left, top, right, bottom) of the page."""
    return [(float(l) / 100, float(t) / 100, (float(l) + float(w)) / 100, (float(t) + float(h)) / 100)
            for l, t, w, h in BOX.findall(html)]


def _char_centres(pdf: Path, page: int) -> list[tuple[str, float, float]]:
    """Every character of a page with the centre of PDFium's own box for it, as fractions from the top left."""
    doc = pdfium.PdfDocument(str(pdf))
    p = doc[page - 1]
    text = p.get_textpage()
    left, bottom, right, top = p.get_cropbox()
    out = []
    chars = text.get_text_range()
    for i in range(text.count_chars()):
        l, b, r, t = text.get_charbox(i)
        out.append((chars[i] if i < len(chars) else "", ((l + r) / 2 - left) / (right - left),
                    (top - (b + t) / 2) / (top - bottom)))
    doc.close()
    return out


def _fold(text: str) -> str:
    return "".join(c.lower() for c in unicodedata.normalize("NFKD", text) if c.isalnum())


def _inside(x: float, y: float, boxes) -> bool:
    return any(l <= x <= r and t <= y <= b for l, t, r, b in boxes)


def _view(server, hit: Hit, rag) -> httpx.Response:
    link = citation_link(hit, rag.settings.files_dir)
    assert link is not None and link.startswith("/view/")
    return httpx.get(server.url.rstrip("/") + link.split("#")[0], timeout=60)


def test_the_highlight_covers_exactly_the_cited_chunk_of_a_real_pdf(api_server, rag, pdf_dir: Path) -> None:
    pdf = next(pdf_dir.glob("sample-files/004-*"))
    rag.upload(pdf, name="fourpages.pdf")
    stored = rag.settings.files_dir / "fourpages.pdf"
    # A chunk that is not the whole page, so text outside it must stay unboxed.
    chunks = [c for c in rag.store.get(sorted(rag.store.ids_for("fourpages.pdf"))) if c.page == 2]
    page_chars = _char_centres(stored, 2)
    page_text = _fold("".join(c for c, _, _ in page_chars))
    chunk = max(chunks, key=lambda c: len(c.text))
    assert len(_fold(chunk.text)) < len(page_text)

    r = _view(api_server, Hit(chunk, 1.0), rag)
    assert r.status_code == 200 and "Page 2 of 4" in r.text
    boxes = _boxes(r.text)
    assert boxes, r.text[:2000]
    boxed = "".join(c for c, x, y in page_chars if c.strip() and _inside(x, y, boxes))
    # The boxed characters, read in PDFium's order, are the chunk's text: nothing missing, nothing extra.
    assert _fold(boxed) == _fold(chunk.text)

    # The page image is PDFium's rendering of that page.
    png = httpx.get(api_server.url.rstrip("/") + "/view/fourpages.pdf/2.png", timeout=60)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG") and "script-src" not in png.headers["content-security-policy"]


def test_a_made_pdf_boxes_the_fact_on_its_page_and_navigates(api_server, rag, facts_pdf: Path) -> None:
    rag.upload(facts_pdf)
    chunks = rag.store.get(sorted(rag.store.ids_for("facts.pdf")))
    chunk = next(c for c in chunks if c.page == 3)
    r = _view(api_server, Hit(chunk, 1.0), rag)
    boxes = _boxes(r.text)
    centres = _char_centres(rag.settings.files_dir / "facts.pdf", 3)
    word = FACTS[2][2]  # "Brenn": only page 3 has it
    text = "".join(c for c, _, _ in centres)
    at = text.index(word)
    assert all(_inside(x, y, boxes) for _, x, y in centres[at:at + len(word)])
    # Boxes sit inside the page and are in reading order (top to bottom).
    assert all(0 <= l < r <= 1 and 0 <= t < b <= 1 for l, t, r, b in boxes)
    assert [b[1] for b in boxes] == sorted(b[1] for b in boxes)
    assert 'id="cited"' in r.text and "script" not in r.headers["content-security-policy"].replace("'none'", "")
    # Next page: the same chunk is named, but it is not boxed there; the page says where it is.
    nxt = re.search(r'href="([^"]+)" id="page-next"', r.text).group(1).replace("&amp;", "&")
    r4 = httpx.get(api_server.url.rstrip("/") + nxt, timeout=60)
    assert "Page 4 of 8" in r4.text and not _boxes(r4.text) and 'href="/view/facts.pdf?page=3' in r4.text

    # Pages drawn at once (the server's thread pool; PDFium itself is not thread-safe) all come back whole.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        images = list(pool.map(lambda n: httpx.get(f"{api_server.url}view/facts.pdf/{n}.png", timeout=120),
                               [1, 2, 3, 4, 5, 6, 7, 8] * 2))
    assert all(i.status_code == 200 and i.content.startswith(b"\x89PNG") for i in images)
    assert images[0].content == images[8].content


def test_sections_of_a_markdown_file_with_the_passage_marked(api_server, rag, tmp_path: Path) -> None:
    md = tmp_path / "notes.md"
    md.write_text("# Notes\n\nIntro line.\n\n## Glaciers\n\nThe Zentara glacier ends in a <lake> & more.\n")
    rag.upload(md)
    chunk = next(c for c in rag.store.get(sorted(rag.store.ids_for("notes.md"))) if c.section == "Glaciers")
    r = _view(api_server, Hit(chunk, 1.0), rag)
    assert r.status_code == 200
    assert '<mark id="cited">The Zentara glacier ends in a &lt;lake&gt; &amp; more.</mark>' in r.text
    assert re.search(r'<section id="section-\d+"><h2>Glaciers</h2>', r.text)


REFUSALS = [
    ("/view/missing.pdf", 404, "No stored file is called 'missing.pdf'"),
    ("/view/..%2F..%2Fetc%2Fpasswd", 404, "No stored file"),
    ("/view/facts.pdf?page=0", 404, "facts.pdf has no page 0; choose a page from 1 to 8"),
    ("/view/facts.pdf?page=99", 404, "facts.pdf has no page 99; choose a page from 1 to 8"),
    ("/view/facts.pdf?page=two", 400, "page='two' is not a page number"),
    ("/view/facts.pdf?chunk=%3Cscript%3E", 400, "is not a chunk id"),
    ("/view/facts.pdf/9.png", 404, "facts.pdf has no page 9"),
]


def test_refusals_are_one_sentence(api_server, rag, facts_pdf: Path) -> None:
    rag.upload(facts_pdf)
    for path, status, sentence in REFUSALS:
        r = httpx.get(api_server.url.rstrip("/") + path, timeout=60)
        assert r.status_code == status, path
        [message] = [html.unescape(m) for m in re.findall(r'<p class="note" id="refusal">([^<]*)</p>', r.text)]
        assert sentence in message, (path, message)
        assert message.count(";") <= 1 and "<script" not in r.text and "Traceback" not in r.text


def test_a_chunk_of_another_source_is_not_highlighted(api_server, rag, facts_pdf: Path, tmp_path: Path) -> None:
    rag.upload(facts_pdf)
    rag.add_text("A text about something else entirely, the Halvard tunnel.", name="other.txt")
    [other] = sorted(rag.store.ids_for("other.txt"))
    r = httpx.get(f"{api_server.url}view/facts.pdf?page=8&chunk={other}", timeout=60)
    assert r.status_code == 200 and not _boxes(r.text) and "no longer indexed" in r.text


def test_the_guard_and_the_login_apply(embedder, tmp_path: Path, facts_pdf: Path) -> None:
    from rag import RAG
    from rag.http.app import create_server

    rag = RAG(tmp_path / "locked", api_key="sk-view-1")
    rag.upload(facts_pdf)
    with create_server(rag, "127.0.0.1", 0, headless=True) as server:
        base = server.url.rstrip("/")
        assert httpx.get(f"{base}/view/facts.pdf?page=1").status_code == 401
        assert httpx.get(f"{base}/view/facts.pdf/1.png").status_code == 401
        auth = {"Authorization": "Bearer sk-view-1"}
        assert httpx.get(f"{base}/view/facts.pdf?page=1", headers=auth).status_code == 200
        foreign = httpx.get(f"{base}/view/facts.pdf?page=1", headers={**auth, "Origin": "http://evil.example"})
        assert foreign.status_code == 403
        rebound = httpx.get(f"{base}/view/facts.pdf/1.png", headers={**auth, "Host": "attacker.example"})
        assert rebound.status_code == 403
