"""Where a citation points: the viewer at the cited passage, the Wikipedia section, or the file itself.

One place decides, for every edge: the page and the HTTP API link to the viewer served by
``rag serve`` (``/view/<file>?page=N&chunk=<id>#cited``: the page drawn with the passage
highlighted, or the document's sections with it marked), Wikipedia citations to the section
anchor; the CLI without a server prints the stored copy's path as a ``file://`` URL.
The chunk id, not the passage text, travels in the link, so a link can only ever highlight
what the index holds.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, urlencode

from ingest.files import collection_dir, stored_file
from rag.cite import source_link
from rag.settings import DEFAULT_COLLECTION
from rag.types import Answer, Hit

VIEW_ROUTE = "/view"
# The anchor of the highlight on the viewer's page, so the browser scrolls to it.
CITED_ANCHOR = "cited"
CHUNK_ID = re.compile(r"[0-9a-f]{32}")


def view_link(source: str, *, page: int | None = None, chunk: str | None = None,
              collection: str = DEFAULT_COLLECTION) -> str:
    """The viewer's URL (relative to the server) for a stored file of ``collection``, at ``page``, highlighting ``chunk``."""
    where = collection if collection != DEFAULT_COLLECTION else None
    query = {k: v for k, v in (("collection", where), ("page", page), ("chunk", chunk)) if v}
    url = f"{VIEW_ROUTE}/{quote(source)}" + (f"?{urlencode(query)}" if query else "")
    return url + (f"#{CITED_ANCHOR}" if chunk else "")


def citation_link(hit: Hit, files_dir: str | Path) -> str | None:
    """Where a citation of ``hit`` opens, relative to the server; None when there is nowhere to go.

    Args:
        hit: the cited chunk.
        files_dir: where the server keeps stored files (``settings.files_dir``).

    Returns:
        The viewer link for a source whose file is stored, the Wikipedia section for a page,
        else the source's own URL (or None).
    """
    if hit.kind == "wikipedia":
        return source_link(hit)
    if stored_file(collection_dir(files_dir, hit.chunk.collection), hit.source) is None:
        return source_link(hit)
    return view_link(hit.source, page=hit.page, chunk=hit.chunk.id, collection=hit.chunk.collection)


def local_link(hit: Hit, files_dir: str | Path) -> str | None:
    """A ``file://`` URL of the stored copy (at its page for a PDF), or the hit's own link; for the CLI."""
    path = stored_file(collection_dir(files_dir, hit.chunk.collection), hit.source) if hit.kind != "wikipedia" else None
    if path is None:
        return source_link(hit)
    return path.as_uri() + (f"#page={hit.page}" if hit.page else "")


def linked_answer(answer: Answer, files_dir: str | Path) -> dict:
    """``answer.to_dict()`` with a ``link`` (:func:`citation_link`) on every citation and source."""
    data = answer.to_dict()
    for item, citation in zip(data["citations"], answer.citations):
        item["link"] = citation_link(citation.hit, files_dir)
    for item, hit in zip(data["sources"], answer.sources):
        item["link"] = citation_link(hit, files_dir)
    return data
