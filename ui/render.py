"""Answers as markdown: the text with linked inline citations [n], and a numbered sources panel.

Pure functions over ``rag.types`` (no Gradio here), so the page, the API and the tests
render the same thing. A citation links to the Wikipedia section (``URL#Section``) or to
the uploaded PDF opened at its page (``/files/<name>.pdf#page=N``); ``link`` decides which
PDFs have a stored copy to open.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable

from rag.types import Answer, Hit

if TYPE_CHECKING:
    from datetime import datetime

LinkFn = Callable[[Hit], "str | None"]

PASSAGE_CHARS = 600
SOURCES_PLACEHOLDER = "_The sources of the latest answer appear here._"
# Characters that would turn document or model text into markdown/HTML structure.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~$])")
# The character of each autolink trigger to backslash-escape: the ":" of "://", the "." of "www.",
# and "@" (CommonMark lets any ASCII punctuation be escaped; an escaped one is plain text).
_AUTOLINK = re.compile(r"(?<=[A-Za-z0-9]):(?=//)|(?<=\bwww)\.|@", re.IGNORECASE)
_ESCAPED_CITATION = re.compile(r"\\\[(\d{1,3})\\\]")


def escape_md(text: str) -> str:
    """Escape markdown and HTML syntax so text from documents shows as written, as text.

    Besides markup, this breaks what the page's markdown renderer would turn into links by
    itself (GFM autolinks: ``scheme://…``, ``www.…``, ``name@host``), so a URL in a document
    is shown, never made clickable; only the links we build (citations) are links.
    """
    return _AUTOLINK.sub(lambda m: "\\" + m.group(0), _MD_SPECIAL.sub(r"\\\1", text))


def md_url(url: str) -> str:
    """A URL made safe inside a markdown link target (spaces, parentheses, angle brackets encoded)."""
    return (url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
            .replace("<", "%3C").replace(">", "%3E"))


def no_link(hit: Hit) -> str | None:
    """The link of a hit when no uploaded files are served: its own URL (Wikipedia), if any."""
    return hit.url


def where(hit: Hit) -> str:
    """Where in its source a hit is: ``page 3``, ``§ History``, or ``""``."""
    if hit.page:
        return f"page {hit.page}"
    if hit.section:
        return f"§ {hit.section}"
    return ""


def _one_line(text: str, limit: int = PASSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _cited(answer: Answer) -> list[tuple[int, Hit, bool | None]]:
    """(number, hit, supported) for each [n] of an answer; all retrieved hits when it cites none."""
    if answer.citations:
        return [(c.number, c.hit, c.supported) for c in sorted(answer.citations, key=lambda c: c.number)]
    return [(n, hit, None) for n, hit in enumerate(answer.sources, 1)]


def streaming_markdown(text: str) -> str:
    """A partial answer while it streams in (escaped; citations not linked yet)."""
    return escape_md(text) + " ▌"


def answer_markdown(answer: Answer, question: str | None = None, *, link: LinkFn = no_link) -> str:
    """The answer text with each [n] linked to its source, and a line saying how it was made.

    Args:
        answer: the final answer.
        question: what the user typed; the retrieval query is shown when it differs.
        link: the link for a hit (see :func:`no_link`).

    Returns:
        Markdown for a chat message.
    """
    links = {c.number: link(c.hit) for c in answer.citations}

    def linked(match: re.Match[str]) -> str:
        n = int(match.group(1))
        url = links.get(n)
        return f"[\\[{n}\\]]({md_url(url)})" if url else match.group(0)

    body = _ESCAPED_CITATION.sub(linked, escape_md(answer.text.strip()))
    return body + "\n\n" + answer_footer(answer, question)


def answer_footer(answer: Answer, question: str | None = None) -> str:
    """``Answered by extracts from your documents · searched for: “…”`` (the query only when it differs)."""
    from rag.generate import plain_name

    parts = [f"Answered by {escape_md(plain_name(answer.generator))}"]
    if answer.refused:
        parts.append("the indexed documents do not answer this")
    if question is not None and " ".join(answer.query.split()) != " ".join(question.split()):
        parts.append(f"searched for: “{escape_md(answer.query)}”")
    return "<sub>" + " · ".join(parts) + "</sub>"


def sources_markdown(answer: Answer, *, link: LinkFn = no_link) -> str:
    """The numbered sources panel: title, page or section, score, link, and the cited passage.

    Lists the cited sources, or every retrieved passage (marked as not cited) when the
    answer cites none.
    """
    entries = _cited(answer)
    if not entries:
        return "_No passages were retrieved: nothing is indexed yet, or nothing matched._"
    lines = ["### Sources" if answer.citations else "### Retrieved passages (none cited)"]
    for number, hit, supported in entries:
        place = where(hit)
        head = f"**[{number}] {escape_md(hit.title)}**" + (f" — {escape_md(place)}" if place else "")
        meta = [f"similarity {hit.score:.3f}"]
        if supported is False:
            meta.append("_this passage may not support the sentence that cites it_")
        url = link(hit)
        if url:
            label = f"open PDF at page {hit.page}" if hit.chunk.kind == "pdf" and hit.page else (
                "open on Wikipedia" if hit.chunk.kind == "wikipedia" else "open source")
            meta.append(f"[{label}]({md_url(url)})")
        lines.append(head + " · " + " · ".join(meta))
        lines.append("> " + escape_md(_one_line(hit.text)))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def answer_payload(answer: Answer, question: str | None = None, *, link: LinkFn = no_link) -> dict[str, Any]:
    """The JSON the ``ask`` endpoint returns: ``Answer.to_dict()`` plus links and rendered markdown."""
    data = answer.to_dict()
    for item, citation in zip(data["citations"], answer.citations):
        item["link"] = link(citation.hit)
    for item, hit in zip(data["sources"], answer.sources):
        item["link"] = link(hit)
    data["markdown"] = answer_markdown(answer, question, link=link)
    data["sources_markdown"] = sources_markdown(answer, link=link)
    data["done"] = True
    return data


def relative_time(when: str, now: "datetime | None" = None) -> str:
    """An ISO time as people say it: ``just now``, ``3 minutes ago``, ``yesterday``, ``12 Mar 2025``.

    Args:
        when: an ISO 8601 time (``SourceInfo.added_at``); naive times are taken as UTC.
        now: the present (default: now).

    Returns:
        The phrase, or ``when`` itself when it is not a time.
    """
    from datetime import datetime, timezone

    try:
        then = datetime.fromisoformat(when)
    except (TypeError, ValueError):
        return when or ""
    then = then if then.tzinfo else then.replace(tzinfo=timezone.utc)
    seconds = ((now or datetime.now(timezone.utc)) - then).total_seconds()
    if seconds < 45:
        return "just now"
    for unit, size, limit in (("minute", 60, 60), ("hour", 3600, 24), ("day", 86400, 7)):
        n = round(seconds / size)
        if n < limit:
            if unit == "day" and n == 1:
                return "yesterday"
            return f"{max(n, 1)} {unit}{'s' if n != 1 else ''} ago"
    return then.strftime("%-d %b %Y")


def human_size(n: int | None) -> str:
    """A byte count as ``812 bytes``, ``14 KB``, ``3.2 MB``; ``""`` when unknown."""
    if n is None:
        return ""
    if n < 1024:
        return f"{n} bytes"
    for unit in ("KB", "MB", "GB"):
        n /= 1024
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if n >= 10 else f"{n:.1f} {unit}"
    return ""
