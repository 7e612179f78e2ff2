"""The citation viewer: a stored document opened at the cited passage, highlighted, without scripts.

Routes (beside ``/files``, under the same Host/Origin guard and login):

    GET /view/{name}?page=N&chunk=<id>   an HTML page (``&collection=<c>`` for a file of a collection other
                                         than ``default``, as for every route here): for a PDF, page N drawn by PDFium with the
                                         passage of chunk <id> boxed (rectangles from PDFium's own
                                         text layout), and links to the other pages; for Word,
                                         HTML, Markdown and text, the document's sections (each an
                                         anchor, ``#section-<n>``) with the passage marked
    GET /view/{name}/{N}.png             page N of a stored PDF as an image

``chunk`` must name a chunk of that very source in the index (a 32-hex id), so a link can
only highlight indexed text, never text of its own. Unknown files, pages out of range and
malformed values are refused with a page holding one sentence (404 or 400). The pages carry
a CSP that allows no script at all and images from this server only.
"""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations (Request) at runtime.

import html
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rag.errors import NotFoundError, RagError, user_message
from ingest.files import FILES_ROUTE
from rag.links import CHUNK_ID, CITED_ANCHOR, VIEW_ROUTE, view_link
from rag.settings import DEFAULT_COLLECTION
from rag.types import Chunk, PageRect

log = logging.getLogger(__name__)

_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                               "frame-ancestors 'self'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; background: #f3f4f6; color: #111827; }
header { position: sticky; top: 0; background: #fff; border-bottom: 1px solid #d1d5db; padding: .5em 1em;
         display: flex; gap: 1em; align-items: center; flex-wrap: wrap; z-index: 2; }
header h1 { font-size: 1em; margin: 0; }
main { padding: 1em; }
.sheet { position: relative; margin: 0 auto; max-width: 1000px; background: #fff; box-shadow: 0 1px 4px #0003; }
.sheet img { display: block; width: 100%; height: auto; }
.hl { position: absolute; background: rgba(250, 204, 21, .38); outline: 2px solid rgba(234, 88, 12, .85);
      mix-blend-mode: multiply; pointer-events: none; }
.doc { max-width: 50em; margin: 0 auto; background: #fff; padding: 1em 2em; line-height: 1.5; }
.doc p { white-space: pre-wrap; }
mark { background: #fde047; outline: 2px solid #ea580c; }
.hl, mark { scroll-margin-top: 8em; }
.note { max-width: 50em; margin: .5em auto; color: #92400e; }
input[type=number] { width: 5em; }
"""

_GONE = ('<p class="note">The cited passage is no longer indexed (the document was replaced or deleted); '
         'ask again to cite its current text.</p>')


def build_viewer(rag: Any) -> Any:
    """An APIRouter with the viewer's routes over ``rag`` (its store and ``settings.files_dir``)."""
    from fastapi import APIRouter, Request
    from fastapi.responses import HTMLResponse, Response

    from ingest.files import stored_kind

    s = rag.settings
    router = APIRouter()

    def page(title: str, body: str, status: int = 200) -> HTMLResponse:
        doc = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
               f'<meta name="viewport" content="width=device-width"><style>{_STYLE}</style></head>'
               f"<body>{body}</body></html>")
        return HTMLResponse(doc, status_code=status, headers=_HEADERS)

    def refusal(message: str, status: int) -> HTMLResponse:
        return page("Cannot show this document",
                    f'<main><p class="note" id="refusal">{html.escape(message)}</p></main>', status)

    def where(request: Any, collection: str | None) -> str:
        """The collection asked for, checked: a valid name the caller may read."""
        from rag.collections import check_name
        from rag.http.auth import SCOPE_KEY

        collection = check_name(collection or DEFAULT_COLLECTION, s)
        bound = request.scope.get(SCOPE_KEY)
        if bound is not None and collection not in bound:
            raise NotFoundError(collection, f"No stored file of the collection {collection!r} is open to this key")
        return collection

    def find(name: str, collection: str = DEFAULT_COLLECTION) -> tuple[Path, str]:
        found = stored_kind(s.files_dir, name, collection)
        if found is None:
            raise NotFoundError(name, f"No stored file is called {name[:80]!r}; open a citation of a document "
                                "that is indexed (see the Documents tab)")
        return found

    def cited_chunk(name: str, chunk: str | None, collection: str) -> Chunk | None:
        if not chunk:
            return None
        if not CHUNK_ID.fullmatch(chunk):
            raise RagError(f"chunk={chunk[:40]!r} is not a chunk id (32 hexadecimal characters); open the "
                           "citation link again")
        found = rag.store.get([chunk])
        return found[0] if found and found[0].source == name and found[0].collection == collection else None

    def page_number(value: str | None, default: int) -> int:
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise RagError(f"page={value[:20]!r} is not a page number; give a whole number such as page=1") from None

    def answer(fn) -> Any:
        try:
            return fn()
        except NotFoundError as exc:
            return refusal(user_message(exc), 404)
        except RagError as exc:
            return refusal(user_message(exc), 400)
        except Exception as exc:  # details go to the log (user_message does), never to the page
            return refusal(user_message(exc), 500)

    @router.get(VIEW_ROUTE + "/{name}", include_in_schema=False)
    def view(name: str, request: Request, page: str | None = None, chunk: str | None = None,
             collection: str | None = None) -> Any:
        def run() -> Any:
            inside = where(request, collection)
            path, kind = find(name, inside)
            cited = cited_chunk(name, chunk, inside)
            gone = bool(chunk) and cited is None
            if kind == "pdf":
                number = page_number(page, (cited.page if cited else None) or 1)
                return _pdf_view(name, path, number, cited, gone, inside)
            return _text_view(name, path, kind, cited, gone, inside)

        return answer(run)

    @router.get(VIEW_ROUTE + "/{name}/{number}.png", include_in_schema=False)
    def page_image(name: str, number: str, request: Request, collection: str | None = None) -> Any:
        def run() -> Any:
            from ingest.pdfpage import PdfPages

            path, kind = find(name, where(request, collection))
            if kind != "pdf":
                raise NotFoundError(name, f"{name} is not a PDF, so it has no page images; open {view_link(name)}")
            with PdfPages(path, name=name) as doc:
                png = doc.render_png(page_number(number, 1), dpi=s.view_dpi, max_pixels=s.view_max_pixels)
            return Response(png, media_type="image/png", headers=_HEADERS)

        return answer(run)

    @router.get(VIEW_ROUTE + "/{rest:path}", include_in_schema=False)
    def nowhere(rest: str) -> Any:
        # Anything else under /view (a name with a slash, ``..``): the same one-sentence refusal.
        return answer(lambda: find(rest))

    def _pdf_view(name: str, path: Path, number: int, cited: Chunk | None, gone: bool, collection: str) -> Any:
        from ingest.pdfpage import PdfPages

        with PdfPages(path, name=name) as doc:
            total = len(doc)
            width, height = doc.page_size(number)  # refuses a page out of range
            rects = doc.passage_rects(number, cited.text) if cited is not None and cited.page == number else []
        chunk_id = cited.id if cited is not None else None

        def to(n: int, label: str) -> str:
            if not 1 <= n <= total:
                return f'<span aria-disabled="true">{label}</span>'
            target = html.escape(view_link(name, page=n, chunk=chunk_id, collection=collection))
            return f'<a href="{target}" id="page-{label.lower()}">{label}</a>'

        note = _GONE if gone else ""
        if cited is not None and cited.page == number and not rects:
            note = '<p class="note">The cited passage could not be located on this page; it is quoted below.</p>'
        elif cited is not None and cited.page != number:
            back = html.escape(view_link(name, page=cited.page, chunk=chunk_id, collection=collection))
            note = f'<p class="note">The cited passage is on <a href="{back}">page {cited.page}</a>.</p>'
        boxes = "".join(_box(r, i) for i, r in enumerate(rects))
        quoted = (f'<p class="note">Cited: “{html.escape(" ".join(cited.text.split())[:600])}”</p>'
                  if cited is not None else "")
        inside = "" if collection == DEFAULT_COLLECTION else f"?collection={quote(collection)}"
        image = f"{VIEW_ROUTE}/{quote(name)}/{number}.png{inside}"
        hidden = f'<input type="hidden" name="chunk" value="{chunk_id}">' if chunk_id else ""
        if inside:
            hidden += f'<input type="hidden" name="collection" value="{html.escape(collection)}">'
        body = (f"<header><h1>{html.escape(name)}</h1>{to(number - 1, 'Previous')}"
                f'<span id="page-of">Page {number} of {total}</span>{to(number + 1, "Next")}'
                f'<form method="get"><label>Go to page <input type="number" name="page" min="1" max="{total}" '
                f'value="{number}"></label>{hidden}</form>'
                f'<a href="{_file_url(name, collection)}#page={number}">Open the PDF</a></header>'
                f'<main>{note}<div class="sheet" id="sheet" style="aspect-ratio: {width:.2f} / {height:.2f}">'
                f'<img src="{html.escape(image)}" alt="Page {number} of {html.escape(name)}">{boxes}</div>'
                f"{quoted}</main>")
        return page(f"{name} — page {number}", body)

    def _text_view(name: str, path: Path, kind: str, cited: Chunk | None, gone: bool, collection: str) -> Any:
        from ingest.formats import read_file

        docs = read_file(path, name=name, max_bytes=s.max_pdf_bytes)
        parts = []
        found = False
        for i, doc in enumerate(docs, 1):
            heading = f"<h2>{html.escape(doc.section)}</h2>" if doc.section else ""
            text = doc.text
            if (cited is not None and not found and doc.section == cited.section
                    and text[cited.start:cited.end] == cited.text):
                body = (html.escape(text[:cited.start]) + f'<mark id="{CITED_ANCHOR}">'
                        + html.escape(cited.text) + "</mark>" + html.escape(text[cited.end:]))
                found = True
            else:
                body = html.escape(text)
            parts.append(f'<section id="section-{i}">{heading}<p>{body}</p></section>')
        note = _GONE if gone else ""
        if cited is not None and not found:
            note = (f'<p class="note">The cited passage is no longer in this file as indexed; it read: '
                    f'“{html.escape(" ".join(cited.text.split())[:600])}”</p>')
        title = docs[0].title if docs else name
        body = (f"<header><h1>{html.escape(title)}</h1><span>{html.escape(name)}</span>"
                f'<a href="{_file_url(name, collection)}">Open the file</a></header>'
                f'<main>{note}<article class="doc">{"".join(parts)}</article></main>')
        return page(title, body)

    return router


def _file_url(name: str, collection: str) -> str:
    """The stored file itself (``/files``, which serves a collection's files under its name)."""
    inside = "" if collection == DEFAULT_COLLECTION else f"/{quote(collection)}"
    return html.escape(f"{FILES_ROUTE}{inside}/{quote(name)}")


def _box(rect: PageRect, i: int) -> str:
    """A highlight rectangle placed in percent of the page, so it fits the image at any size."""
    anchor = f' id="{CITED_ANCHOR}"' if i == 0 else ""
    return (f'<div class="hl" data-box="{i}"{anchor} '
            f'style="left:{rect.left * 100:.3f}%;top:{rect.top * 100:.3f}%;'
            f'width:{rect.width * 100:.3f}%;height:{rect.height * 100:.3f}%"></div>')
