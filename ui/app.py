"""The browser chat: Gradio Blocks over the ``RAG`` facade (served by ``rag.http.app``).

Run it with ``rag serve`` (http://127.0.0.1:7860), or from Python::

    from rag import RAG
    from rag.http.app import create_server
    server = create_server(RAG(), "127.0.0.1", 7860).start()   # background thread
    ...
    server.stop()

The page has a chat (streamed answers, conversation history, inline citations [n] that
open the Wikipedia section or the document in the viewer with the cited passage highlighted,
a sources panel with the cited passages and their similarity, the retrieval query when it
differs from the question, and which generator answered, in plain words), saved
conversations (``ui.conversations``: reopen, rename, delete), a Documents tab (upload files
with a progress bar per file, add Wikipedia pages, a sources table kept current by a timer,
delete after a confirmation) and settings (number of sources k, the generator and its notice).

API (usable from ``gradio_client``; listed at ``/?view=api``, "Use via API" in the footer)
--------------------------------------------------------------------------------------
With ``RAG_AUTH=user:password`` set, connect with ``Client(url, auth=(user, password))``; with
only ``RAG_API_KEY`` set, ``Client(url, auth=("any name", key))``.
Errors come back as ``gradio_client.exceptions.AppError`` whose message is one sentence
(the library's own, or a generic one for unexpected failures, which the server logs).

``/ask`` — ``question: str, history: list[[str, str]] | None = None, k: int | None = None,
sources: list[str] | None = None, collections: list[str] | None = None`` → dict. ``history`` is the earlier turns as
``[question, answer]`` pairs, oldest first; ``k`` how many chunks to retrieve (default the
server's ``RAG_TOP_K``); ``sources`` restricts retrieval to those source names, ``collections``
to those collections (empty: all). Each is bounded as the REST API bounds
it (``RAG_MAX_QUESTION_CHARS``, ``RAG_MAX_HISTORY_TURNS``, ``RAG_MAX_TURN_CHARS``,
``RAG_MAX_SOURCE_FILTERS``, ``RAG_MAX_COLLECTION_FILTERS``). It streams:
with ``client.submit`` every update but the last is ``{"done": false, "answer": "<text so
far>"}``; the last one, which ``client.predict`` returns, is ``Answer.to_dict()`` plus links
and markdown::

    {"done": true, "answer": "From the documents: ... [1]", "refused": false,
     "query": "<retrieval query actually used>", "generator": "extractive",
     "prompt_format": null,
     "citations": [{"number": 1, "supported": true, "support": 0.9, "link": "/view/a.pdf?page=2&chunk=…#cited",
                    "id", "score", "text", "source", "kind", "title", "url", "section", "page",
                    "start", "end"}],
     "sources": [<hit + "link">, ...],        # sources[n-1] is citation [n], then the rest seen
     "markdown": "<answer with linked [n]>", "sources_markdown": "<numbered sources panel>"}

``link`` is the viewer at the cited passage, ``/view/<name>?page=N&chunk=<id>#cited``
(relative to the server; ``rag.http.viewer``), for a stored file (uploaded, or read by the CLI or
the Python API), ``https://en.wikipedia.org/wiki/Title#Section`` for Wikipedia, else the
source's url or null.
The final ``answer`` replaces the streamed text (citations are renumbered at the end).

``/upload`` — ``files: list[file]`` (``handle_file(path)`` each), ``password: str`` (""
for none) → ``{"files": [{"file", "source", "collection", "status", "chunks", "message",
"needs_password"}]}``, one per file, into the ``default`` collection; ``/upload_into`` takes a
third value, ``collection: str`` (the collection they go into, new or existing; "" for
``default``), and answers the same; with ``status`` ``added``, ``replaced``, ``unchanged``
or ``refused`` (``message`` says why in one sentence). A file is checked by content
(``%PDF-``, not its extension), stored under ``DATA_DIR/files`` under a sanitized name
(its base name, odd characters replaced), which is also its source name, and served at
``/files/<source>``. A refused file is not stored; ``needs_password`` is true for an
encrypted PDF: send it again with its ``password``. Files go to ``/gradio_api/upload``, which
keeps them under ``DATA_DIR/.gradio`` (not Gradio's machine-wide temp dir) until they are
ingested, then removes them.

``/add_wikipedia`` — ``titles: list[str]`` (exact titles; redirects followed), ``collection:
str`` ("" for ``default``) → ``{"pages": [{"title", "status", "chunks", "message"}]}``.

``/sources`` — no arguments → ``[{"source", "kind", "title", "chunks", "added_at", "url", "collection"}]``.

``/collections`` — no arguments → ``[{"name", "sources", "chunks"}]``.

``/delete`` — ``source: str`` (as ``/sources`` lists it; a bare Wikipedia title works),
``collection: str`` ("" for ``default``) → ``{"source", "collection", "chunks"}`` (chunks
removed; an uploaded PDF's stored file is deleted too).

``GET /files/<name>`` — an uploaded PDF, inline (``#page=N`` opens that page in a browser);
404 for anything that is not a stored upload.

Example::

    from gradio_client import Client, handle_file

    client = Client("http://127.0.0.1:7860/")
    print(client.predict([handle_file("paper.pdf")], "", api_name="/upload"))
    answer = client.predict("What classifier is used?", api_name="/ask")
    print(answer["answer"])
    for c in answer["citations"]:
        print(c["number"], c["title"], c["page"] or c["section"], c["link"])
    history = [["What classifier is used?", answer["answer"]]]
    follow_up = client.predict("How was it trained?", history, 3, api_name="/ask")
    for update in client.submit("What classifier is used?", api_name="/ask"):  # streamed
        print(update["answer"])
    print(client.predict(api_name="/sources"))
    client.predict("paper.pdf", api_name="/delete")
"""

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import gradio as gr

from rag.errors import EncryptedPDFError, RagError, user_message
from rag.generate import plain_name
from rag.http.app import ASK_CONCURRENCY
from rag.links import citation_link
from rag.service import RAG
from rag.settings import MAX_TOP_K, Settings
from rag.types import Answer, Hit, IngestReport, Progress
from ingest import files as stored_files
from ui import render
from ui.conversations import ConversationPanel

log = logging.getLogger(__name__)

# What the file picker offers: every extension a stored file may have (content still decides).
UPLOAD_SUFFIXES = tuple(x for suffixes in stored_files.KIND_SUFFIXES.values() for x in suffixes)

CSS = """
#sources-panel blockquote { font-size: 0.9em; margin: 0.2em 0 0.8em 0; }
#generator-notice { border-left: 4px solid #f59e0b; padding-left: 0.6em; }
"""


SEARCHING = "_Searching the documents…_"
READING = "_Reading the files…_"


def upload_dir(settings: Settings) -> Path:
    """Where the page's uploads wait to be ingested: under the store's own data directory."""
    return Path(settings.data_dir) / ".gradio"


def request_problem(settings: Settings, question: str, history: list[tuple[str, str]], k: Any,
                    sources: list[str] | None, collections: list[str] | None = None) -> str | None:
    """What is wrong with a question sent to the page's API, in one sentence, or None.

    The same bounds as the REST API's request models (``rag.settings``), so neither door
    takes more work than the other.
    """
    if not question:
        return "The question is empty; send some text."
    if len(question) > settings.max_question_chars:
        return (f"The question is over {settings.max_question_chars} characters; shorten it, or raise "
                "RAG_MAX_QUESTION_CHARS.")
    if k is not None:
        try:
            k_value = float(k)
        except (TypeError, ValueError):
            return f"k={str(k)[:20]} is not a number; choose 1 to {MAX_TOP_K}."
        if not (1 <= k_value <= MAX_TOP_K and k_value == int(k_value)):
            return f"k={str(k)[:20]} is out of range; choose 1 to {MAX_TOP_K}."
    if len(history) > settings.max_history_turns:
        return (f"history has {len(history)} turns, over the {settings.max_history_turns} allowed; send the "
                "latest ones, or raise RAG_MAX_HISTORY_TURNS.")
    if any(len(q) > settings.max_turn_chars or len(a) > settings.max_turn_chars for q, a in history):
        return (f"A turn of history is over {settings.max_turn_chars} characters; shorten it, or raise "
                "RAG_MAX_TURN_CHARS.")
    if sources and (len(sources) > settings.max_source_filters or any(len(str(x)) > 500 for x in sources)):
        return (f"sources names {len(sources)} sources; name at most {settings.max_source_filters} (each under "
                "500 characters), or raise RAG_MAX_SOURCE_FILTERS.")
    if collections:
        from rag.collections import names_of

        try:
            names_of(list(collections), settings)
        except RagError as exc:
            return str(exc)
    return None


class Actions:
    """What the page and the API do, as thin calls on the facade (no retrieval logic here)."""

    def __init__(self, rag: RAG) -> None:
        self.rag = rag
        self.files_dir = Path(rag.settings.files_dir)

    # -- helpers ---------------------------------------------------------------------------
    def link(self, hit: Hit) -> str | None:
        """Where a citation points: the viewer at the highlighted passage, the Wikipedia section, or its URL."""
        return citation_link(hit, self.files_dir)

    def generator_name(self) -> str:
        try:
            return str(self.rag.generator.name)
        except Exception as exc:  # the generator may fail to load; the page must still work
            log.warning("Generator unavailable: %s", exc)
            return "unavailable"

    def generator_notice(self) -> str | None:
        try:
            return self.rag.generator_notice
        except Exception as exc:
            return user_message(exc, "page")

    # -- asking ----------------------------------------------------------------------------
    def ask_stream(self, question: str, history: list[tuple[str, str]], k: int | None,
                   sources: list[str] | None, collections: list[str] | None = None) -> Iterator[str | Answer]:
        """Text pieces, then the final Answer (straight from the facade), within ``collections`` (None: all)."""
        yield from self.rag.ask_stream(question, history or None, k=k, sources=sources or None,
                                       collection=list(collections or []) or None)

    # -- ingestion -------------------------------------------------------------------------
    def upload(self, files: list[tuple[str, str]], password: str | None,
               progress: Callable[[float, str], None] | None = None, collection: str | None = None) -> dict[str, Any]:
        """Store and ingest uploaded files one by one; one result per file.

        Args:
            files: (path of the received file, the name the client gave it) pairs.
            password: tried on encrypted PDFs.
            progress: called with (fraction done, description).
            collection: the collection they go into (None or "": ``default``).

        Raises:
            InvalidCollectionError: the collection name breaks the rule (before any file is read).
        """
        from rag.collections import write_target

        collection = write_target(collection or None, self.rag.settings)
        results = []
        n = max(len(files), 1)
        for i, (path, original) in enumerate(files):
            original = re.split(r"[\\/]", original)[-1] or Path(path).name
            if progress:
                progress(i / n, f"{original} ({i + 1} of {len(files)}): reading")
            step = upload_progress(progress, original, i, len(files)) if progress else None
            results.append(self._upload_one(path, original, password or None, collection, step))
        if progress:
            progress(1.0, "Done")
        return {"files": results}

    def _upload_one(self, path: str, original: str, password: str | None, collection: str,
                    on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any]:
        name = stored_files.safe_name(original)
        result: dict[str, Any] = {"file": original, "source": name, "collection": collection, "status": "refused",
                                  "chunks": 0, "message": "", "needs_password": False}
        try:
            report: IngestReport = self.rag.upload(path, name=original, password=password, collection=collection,
                                                   on_progress=on_progress)
        except Exception as exc:
            result["message"] = user_message(exc, "page")
            return result
        # The content decides the stored name's extension (a .docx stays .docx): read it back.
        name = next(iter({**report.added, **report.replaced, **report.unchanged, **report.skipped}), name)
        result["source"] = name
        if name in report.skipped:
            result["needs_password"] = isinstance(report.errors.get(name), EncryptedPDFError)
            error = report.errors.get(name)
            result["message"] = user_message(error, "page") if error is not None else report.skipped[name]
            return result
        for status in ("added", "replaced", "unchanged"):
            if name in getattr(report, status):
                chunks = getattr(report, status)[name]
                result.update(status=status, chunks=chunks, message=f"{status}, {chunks} chunk(s)" + (
                    " (already indexed, nothing changed)" if status == "unchanged" else ""))
                break
        return result

    def add_wikipedia(self, titles: list[str], collection: str | None = None) -> dict[str, Any]:
        """Ingest Wikipedia pages one by one into ``collection`` (None: ``default``); one result per title."""
        pages = []
        for title in (t.strip() for t in titles):
            if not title:
                continue
            page: dict[str, Any] = {"title": title, "status": "refused", "chunks": 0, "message": ""}
            try:
                report = self.rag.add_wikipedia(title, collection=collection or None)
                for status in ("added", "replaced", "unchanged"):
                    found = getattr(report, status)
                    if found:
                        chunks = sum(found.values())
                        page.update(status=status, chunks=chunks, message=f"{status}, {chunks} chunk(s)")
                        break
            except Exception as exc:
                page["message"] = user_message(exc, "page")
            pages.append(page)
        return {"pages": pages}

    def sources(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.rag.sources()]

    def collections(self) -> list[dict[str, Any]]:
        return [c.to_dict() for c in self.rag.collections()]

    def delete(self, source: str, collection: str | None = None) -> dict[str, Any]:
        """Delete a source of ``collection`` (None: ``default``) and its stored upload; raises the
        library's NotFoundError when unknown."""
        from rag.collections import write_target

        source = (source or "").strip()
        if not source:
            raise RagError("Choose a source to delete")
        where = write_target(collection or None, self.rag.settings)
        return {"source": source, "collection": where, "chunks": self.rag.delete(source, collection=where)}


def upload_progress(progress: Callable[[float, str], None], original: str, index: int,
                    count: int) -> Callable[[Progress], None]:
    """Turn one file's ingestion progress into the page's bar: reading is its first half, embedding the second.

    Args:
        progress: the bar (fraction of all files done, description).
        original: the file's name as the user chose it.
        index: its position among the files uploaded together (0-based).
        count: how many there are.
    """
    def step(event: Progress) -> None:
        part = event.done / max(event.total, 1)
        if event.stage == "reading":
            fraction, what = part / 2, f"read page {event.done} of {event.total}"
        else:
            fraction, what = 0.5 + part / 2, f"embedded {event.done} of {event.total} chunks"
        progress((index + fraction) / max(count, 1), f"{original} ({index + 1} of {count}): {what}")

    return step


# ---------------------------------------------------------------------------------- the page
def _chat_messages(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    messages = []
    for turn in turns:
        messages.append({"role": "user", "content": render.escape_md(turn["question"])})
        messages.append({"role": "assistant", "content": turn["markdown"]})
    return messages


def _sources_table(infos: list, files_dir: Path | None = None) -> Any:
    """The sources table: name, kind, chunks, the stored file's size, and when it was added, in words."""
    import pandas as pd

    def size(source: str, collection: str) -> str:
        path = stored_files.stored_file(stored_files.collection_dir(files_dir, collection), source) \
            if files_dir is not None else None
        return render.human_size(path.stat().st_size) if path is not None else ""

    rows = [[s.source, s.collection, s.kind, s.chunks, size(s.source, s.collection), render.relative_time(s.added_at)]
            for s in infos]
    return pd.DataFrame(rows, columns=["source", "collection", "kind", "chunks", "size", "added"])


def _signature(infos: list) -> str:
    """What the sources are, to tell whether they changed since the page last looked."""
    return "\n".join(f"{s.collection}\t{s.source}\t{s.chunks}\t{s.added_at}" for s in infos)


# -- collections on the page ----------------------------------------------------------------------
# The chat asks every collection until the user picks some: a page user who uploads into "team-a"
# expects the next question to find it, and an empty choice reading "all" says so; defaulting to
# "default" would silently hide every other collection's documents.
ASK_ALL = "Asking all collections."


def ask_collections_picker() -> Any:
    """The chat's collection picker: a multiselect of the existing collections (empty: all), saying what is asked.

    Its choices are filled by :func:`collection_choices`.
    """
    return gr.Dropdown(choices=[], value=[], multiselect=True, label="Collections to ask (empty: all)",
                       info=ASK_ALL, elem_id="ask-collections")


def upload_collection_picker() -> Any:
    """Where uploads and Wikipedia pages go: an existing collection, or a new name typed in."""
    from rag.settings import DEFAULT_COLLECTION

    return gr.Dropdown(choices=[DEFAULT_COLLECTION], value=DEFAULT_COLLECTION, allow_custom_value=True,
                       label="Into collection (choose one, or type a new name)", elem_id="upload-collection")


def collection_choices(infos: list, asked: list[str] | None = None) -> tuple[Any, Any]:
    """Updates of the two pickers for the sources ``infos``: every existing collection."""
    from rag.settings import DEFAULT_COLLECTION

    names = sorted({s.collection for s in infos})
    kept = [n for n in (asked or []) if n in names]
    return (gr.update(choices=names, value=kept, info=asking_label(kept)),
            gr.update(choices=sorted({DEFAULT_COLLECTION, *names})))


def asking_label(collections: list[str] | None) -> str:
    """What the chat shows it asks: all collections, or the chosen ones."""
    if not collections:
        return ASK_ALL
    return "Asking only: " + ", ".join(collections) + "."


def source_choice(info: Any) -> tuple[str, str]:
    """A source in the delete list: shown as ``name (collection)``, its value ``collection/name``."""
    return f"{info.source} ({info.collection})", f"{info.collection}/{info.source}"


WHOLE = "*"  # the "collection" of a delete choice that removes a whole collection (no name is "*")


def delete_choices(infos: list) -> list[tuple[str, str]]:
    """The delete list: every source (:func:`source_choice`), then every collection as a whole.

    A whole collection's value is ``*/name``: :func:`split_choice` reads it as the collection ``*``.
    """
    sizes: dict[str, list[int]] = {}
    for i in infos:
        sizes.setdefault(i.collection, []).append(i.chunks)
    whole = [(f"the whole collection {name} ({len(c)} source(s), {sum(c)} chunks)", f"{WHOLE}/{name}")
             for name, c in sorted(sizes.items())]
    return [source_choice(i) for i in infos] + whole


def split_choice(value: str) -> tuple[str | None, str]:
    """(collection, source) of a :func:`source_choice` value (a collection name never holds '/')."""
    collection, sep, source = (value or "").partition("/")
    return (collection, source) if sep else (None, value or "")


def _results_markdown(items: list[dict[str, Any]], key: str) -> str:
    lines = []
    for item in items:
        prefix = "**refused**: " if item["status"] == "refused" else ""
        lines.append(f"- **{render.escape_md(item[key])}** — {prefix}{render.escape_md(item['message'])}")
    return "\n".join(lines)


def _in_folder(path: str | Path, folder: Path) -> bool:
    """Whether ``path`` is a file inside ``folder`` (where the page's uploads land)."""
    return folder.resolve() in Path(str(path)).resolve().parents


def _forget_upload(path: str | Path, folder: Path) -> None:
    """Remove a received upload (and the folder Gradio made for it) once it has been ingested."""
    path = Path(str(path)).resolve()
    root = folder.resolve()
    if root not in path.parents:
        return
    path.unlink(missing_ok=True)
    parent = path.parent
    if parent != root:
        shutil.rmtree(parent, ignore_errors=True)


def _notice_markdown(notice: str | None) -> str:
    return f"⚠️ {render.escape_md(notice)}" if notice else ""


def build_app(rag: RAG, *, ask_concurrency: int = ASK_CONCURRENCY) -> gr.Blocks:
    """The Gradio page and API over ``rag`` (serve it with :func:`create_app` / :func:`create_server`).

    Args:
        rag: the facade to serve.
        ask_concurrency: how many questions are answered at once (the rest queue).

    Returns:
        The Blocks, with its queue configured.
    """
    actions = Actions(rag)
    settings = rag.settings
    generator = actions.generator_name()
    notice = actions.generator_notice()
    received = upload_dir(settings)
    received.mkdir(parents=True, exist_ok=True)
    # Gradio checks received files against GRADIO_TEMP_DIR (read at each check): point it at this
    # store's folder. Process-wide, so one page per process (what `rag serve` runs).
    os.environ["GRADIO_TEMP_DIR"] = str(received)

    with gr.Blocks(title="rag — ask your documents", analytics_enabled=False,
                   delete_cache=(3600, 3600)) as demo:
        # Files this page caches stay under the store's data directory too (Gradio's default is
        # a machine-wide temp dir that every Gradio server on the machine serves from).
        demo.GRADIO_CACHE = str(received)
        gr.Markdown("## Ask your documents")
        gr.Markdown(_notice_markdown(notice), elem_id="generator-notice", visible=bool(notice))
        turns = gr.State([])

        with gr.Tab("Chat", id="chat"):
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(label="Conversation", height=520, elem_id="chat",
                                         placeholder="Ask a question about the indexed documents.",
                                         feedback_options=None)
                    with gr.Row():
                        question = gr.Textbox(placeholder="Ask a question…", show_label=False, scale=6,
                                              elem_id="question", lines=1, max_lines=4)
                        ask_btn = gr.Button("Ask", variant="primary", scale=1, elem_id="ask-button")
                    clear_btn = gr.Button("New conversation", size="sm")
                    ask_in = ask_collections_picker()
                with gr.Column(scale=2):
                    sources_panel = gr.Markdown(render.SOURCES_PLACEHOLDER,
                                                elem_id="sources-panel")
                    with gr.Accordion("Settings", open=False):
                        k_slider = gr.Slider(1, MAX_TOP_K, value=settings.top_k, step=1, label="Number of sources (k)",
                                             elem_id="k")
                        only_sources = gr.Dropdown(choices=[], value=[], multiselect=True,
                                                   label="Only search these sources (empty: all)")
                        gr.Markdown(f"Answers come from: **{render.escape_md(plain_name(generator))}**",
                                    elem_id="generator")
                    saved_chats = ConversationPanel(rag.conversations, _chat_messages)
                    saved_chats.build()

        with gr.Tab("Documents", id="documents"):
            with gr.Row():
                with gr.Column():
                    pdfs = gr.File(file_count="multiple", file_types=list(UPLOAD_SUFFIXES),
                                   label="Files: PDF, Word (.docx), HTML, Markdown or text", elem_id="pdf-files")
                    password = gr.Textbox(label="Password (for encrypted PDFs)", type="password",
                                          elem_id="pdf-password")
                    upload_into = upload_collection_picker()
                    upload_btn = gr.Button("Add files", variant="primary", elem_id="upload-button")
                    upload_md = gr.Markdown(elem_id="upload-results")
                    upload_json = gr.JSON(visible=False)
                with gr.Column():
                    wiki_titles = gr.Textbox(label="Wikipedia page titles (one per line)", lines=2,
                                             elem_id="wiki-titles")
                    wiki_btn = gr.Button("Add Wikipedia pages", elem_id="wiki-button")
                    wiki_md = gr.Markdown(elem_id="wiki-results")
            gr.Markdown("### Indexed sources")
            table = gr.Dataframe(value=_sources_table([]), interactive=False, elem_id="sources-table", wrap=True)
            with gr.Row():
                to_delete = gr.Dropdown(choices=[], label="Source (or whole collection) to delete", scale=4,
                                        elem_id="delete-choice")
                delete_btn = gr.Button("Delete…", variant="stop", scale=1, elem_id="delete-button")
                refresh_btn = gr.Button("Refresh", scale=1)
            with gr.Row(visible=False, elem_id="confirm-delete") as confirm_delete:
                confirm_md = gr.Markdown()
                yes_delete = gr.Button("Yes, delete it", variant="stop", scale=1, elem_id="confirm-delete-button")
                no_delete = gr.Button("Cancel", scale=1, elem_id="cancel-delete-button")
            delete_md = gr.Markdown(elem_id="delete-results")
            # Sources added elsewhere (the CLI through this server, another tab) show up by themselves.
            seen_sources = gr.State("")
            sources_timer = gr.Timer(settings.page_refresh_seconds)

        # -- UI handlers (not part of the API) ----------------------------------------------
        def refresh(asked: list[str] | None = None):
            try:
                infos = actions.rag.sources()
                names = sorted({s.source for s in infos})
                return (_sources_table(infos, actions.files_dir),
                        gr.update(choices=delete_choices(infos), value=None),
                        gr.update(choices=names), *collection_choices(infos, asked), _signature(infos))
            except Exception as exc:
                gr.Warning(user_message(exc, "page"))
                return gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), gr.update()

        def refresh_if_changed(seen: str, chosen: str | None, restrict: list[str] | None, asked: list[str] | None):
            """The timer's refresh: the table always (its times move on), the choices only when sources changed."""
            try:
                infos = actions.rag.sources()
            except Exception:  # shown by the next explicit refresh; a timer must not pop warnings
                return gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), seen
            table_now = _sources_table(infos, actions.files_dir)
            if _signature(infos) == seen:
                return table_now, gr.update(), gr.update(), gr.update(), gr.update(), seen
            choices = delete_choices(infos)
            names = sorted({s.source for s in infos})
            return (table_now, gr.update(choices=choices, value=chosen if chosen in [v for _, v in choices] else None),
                    gr.update(choices=names, value=[x for x in restrict or [] if x in names]),
                    *collection_choices(infos, asked), _signature(infos))

        def confirm_delete_ui(choice: str | None):
            if not choice:
                gr.Warning("Choose a source to delete first.")
                return gr.update(visible=False), ""
            collection, source = split_choice(choice)
            if collection == WHOLE:
                return (gr.update(visible=True), f"Delete the whole collection **{render.escape_md(source)}**: every "
                        "source in it and all their chunks? Answers will no longer cite them.")
            where = f" from the collection **{render.escape_md(collection)}**" if collection else ""
            return (gr.update(visible=True), f"Delete **{render.escape_md(source)}**{where} and all its chunks? "
                    "Answers will no longer cite it.")

        def chat(text: str, history: list[dict[str, str]], k: float, restrict: list[str] | None,
                 collections: list[str] | None = None):
            text = (text or "").strip()
            if not text:
                gr.Warning("Type a question first.")
                yield gr.update(), gr.update(), history, gr.update()
                return
            if problem := request_problem(settings, text, [], None, restrict, collections):
                gr.Warning(problem)
                yield gr.update(), gr.update(), history, gr.update()
                return
            pairs = [(t["question"], t["answer"]) for t in history]
            current = {"question": text, "answer": "", "markdown": "…"}
            shown = _chat_messages([*history, current])
            yield shown, SEARCHING, history, ""
            pieces: list[str] = []
            try:
                for item in actions.ask_stream(text, pairs, int(k), restrict, collections):
                    if isinstance(item, Answer):
                        current = {"question": text, "answer": item.text,
                                   "markdown": render.answer_markdown(item, text, link=actions.link)}
                        history = [*history, current]
                        yield (_chat_messages(history), render.sources_markdown(item, link=actions.link),
                               history, "")
                        return
                    pieces.append(item)
                    current["markdown"] = render.streaming_markdown("".join(pieces))
                    yield _chat_messages([*history, current]), gr.update(), history, ""
            except Exception as exc:
                message = user_message(exc, "page")
                gr.Warning(message)
                current["markdown"] = f"⚠️ {render.escape_md(message)}"
                yield _chat_messages([*history, current]), gr.update(), history, text
                return
            # The stream ended without an Answer: show what came, keep it out of the history.
            yield _chat_messages([*history, current]), gr.update(), history, ""

        def chat_saved(text: str, history: list[dict[str, str]], k: float, restrict: list[str] | None,
                       collections: list[str] | None, conversation: str | None, request: gr.Request):
            """``chat``, saving each answered turn into the open conversation (a new one at first)."""
            before = len(history or [])
            for shown, panel, turns_now, box in chat(text, history, k, restrict, collections):
                if isinstance(turns_now, list) and len(turns_now) > before:
                    turn = turns_now[-1]
                    conversation = saved_chats.remember(conversation, turn["question"], turn["answer"],
                                                        turn["markdown"], request, collections)
                    yield shown, panel, turns_now, box, conversation, saved_chats.choices(request, conversation)
                else:
                    yield shown, panel, turns_now, box, conversation, gr.update()

        def clear():
            # A new conversation asks every collection again, as a reopened one asks its own.
            return [], render.SOURCES_PLACEHOLDER, [], None, gr.update(value=[])

        def show_upload(result: dict[str, Any] | None):
            items = (result or {}).get("files", [])
            text = _results_markdown(items, "file")
            if any(i.get("needs_password") for i in items):
                text += "\n\nEnter the password above and click **Add files** again to retry."
            return text

        def add_wiki_ui(text: str, collection: str | None = None):
            titles = [t for t in (text or "").splitlines() if t.strip()]
            if not titles:
                gr.Warning("Type a Wikipedia page title first.")
                return gr.update()
            try:
                from rag.collections import write_target

                where = write_target((collection or "").strip() or None, settings)
            except RagError as exc:
                gr.Warning(user_message(exc, "page"))
                return "⚠️ " + render.escape_md(user_message(exc, "page"))
            return _results_markdown(actions.add_wikipedia(titles, where)["pages"], "title")

        def delete_ui(choice: str | None):
            try:
                collection, source = split_choice(choice or "")
                if collection == WHOLE:
                    gone = actions.rag.delete_collection(source)
                    return (f"Deleted the collection **{render.escape_md(gone.name)}**: {gone.sources} source(s), "
                            f"{gone.chunks} chunks.")
                result = actions.delete(source, collection)
                return (f"Deleted **{render.escape_md(result['source'])}** from the collection "
                        f"**{render.escape_md(result['collection'])}** ({result['chunks']} chunks).")
            except Exception as exc:
                message = user_message(exc, "page")
                gr.Warning(message)
                return f"⚠️ {render.escape_md(message)}"

        # -- public API endpoints (documented above) ----------------------------------------
        def upload(files: list[dict] | None, password: str | None, collection: str | None = None,
                   progress=gr.Progress()) -> dict[str, Any]:
            """Store and ingest uploaded files (any format we read) into a collection; one result per file."""
            # preprocess=False: ``files`` are the FileData dicts the client sent (with their
            # orig_name), already checked by Gradio to be in its upload folder (see create_app);
            # checked again here in case that ever changes.
            if isinstance(files, dict):
                files = [files]
            if not files:
                gr.Warning("Choose one or more files first.")
                return {"files": []}
            items = []
            for f in files:
                path = f.get("path") if isinstance(f, dict) else f
                name = (f.get("orig_name") if isinstance(f, dict) else None) or Path(str(path)).name
                if not path or not _in_folder(path, received):
                    raise gr.Error(f"{stored_files.safe_name(str(name))} was not uploaded to this server; "
                                   "upload the file itself.")
                items.append((str(path), str(name)))
            try:
                return actions.upload(items, password, progress=lambda frac, desc: progress(frac, desc=desc),
                                      collection=(collection or "").strip() or None)
            except RagError as exc:
                raise gr.Error(user_message(exc, "page")) from None
            finally:
                for path, _ in items:  # stored (or refused) now: the received copy has done its job
                    _forget_upload(path, received)

        def upload_default(files: list[dict] | None, password: str | None, progress=gr.Progress()) -> dict[str, Any]:
            """Store and ingest uploaded files into the default collection; one result per file."""
            return upload(files, password, None, progress)

        def ask(question: str, history: list[list[str]] | None = None, k: int | None = None,
                sources: list[str] | None = None, collections: list[str] | None = None) -> Iterator[dict]:
            """Answer a question from the indexed documents, streaming; the last update has the citations."""
            question = (question or "").strip()
            try:
                pairs = [(str(q), str(a)) for q, a in (history or [])]
            except (TypeError, ValueError):
                raise gr.Error("history must be a list of [question, answer] pairs.") from None
            if isinstance(sources, str):
                sources = [sources]
            if isinstance(collections, str):
                collections = [collections]
            problem = request_problem(settings, question, pairs, k, sources, collections)
            if problem:
                raise gr.Error(problem)
            pieces: list[str] = []
            try:
                for item in actions.ask_stream(question, pairs, int(k) if k else None, sources, collections):
                    if isinstance(item, Answer):
                        yield render.answer_payload(item, question, link=actions.link)
                        return
                    pieces.append(item)
                    yield {"done": False, "answer": "".join(pieces)}
            except gr.Error:
                raise
            except Exception as exc:
                raise gr.Error(user_message(exc, "page")) from None
            raise gr.Error(user_message(RuntimeError("ask_stream ended without an Answer")))

        def add_wikipedia(titles: list[str], collection: str | None = None) -> dict:
            """Ingest Wikipedia pages by exact title into a collection ("": default); one result per title."""
            if isinstance(titles, str):
                titles = [titles]
            try:
                from rag.collections import write_target

                where = write_target((collection or "").strip() or None, settings)
            except RagError as exc:
                raise gr.Error(user_message(exc, "page")) from None
            return actions.add_wikipedia(list(titles or []), where)

        def sources() -> list[dict]:
            """What is indexed."""
            try:
                return actions.sources()
            except Exception as exc:
                raise gr.Error(user_message(exc, "page")) from None

        def collections() -> list[dict]:
            """The collections, with their source and chunk counts."""
            try:
                return actions.collections()
            except Exception as exc:
                raise gr.Error(user_message(exc, "page")) from None

        def delete(source: str, collection: str | None = None) -> dict:
            """Delete a source of a collection ("": default), and its stored PDF."""
            try:
                return actions.delete(source, (collection or "").strip() or None)
            except Exception as exc:
                raise gr.Error(user_message(exc, "page")) from None

        # -- wiring ---------------------------------------------------------------------------
        private = {"api_visibility": "private"}
        # preprocess=False here and on the timer: see the timer below.
        after_change = {"fn": refresh, "inputs": [ask_in], "preprocess": False,
                        "outputs": [table, to_delete, only_sources, ask_in, upload_into, seen_sources], **private}
        ask_limits = {"concurrency_id": "ask", "concurrency_limit": ask_concurrency}
        write_limits = {"concurrency_id": "write", "concurrency_limit": 1}

        # While a question is answered or files are ingested, the buttons that start more work are
        # off, and the previous result is cleared so it is never mistaken for the new one.
        buttons = [ask_btn, upload_btn]

        def busy():
            return [gr.update(interactive=False)] * len(buttons)

        def idle():
            return [gr.update(interactive=True)] * len(buttons)

        # preprocess=False, as on the timer below: a question asked the moment after a delete carries
        # choices the refresh just removed; the library names them (rag.service.check_sources) where
        # Gradio would show its own error.
        chat_io = {"fn": chat_saved, "inputs": [question, turns, k_slider, only_sources, ask_in, saved_chats.current],
                   "outputs": [chatbot, sources_panel, turns, question, saved_chats.current, saved_chats.saved],
                   "preprocess": False, **ask_limits, **private}
        for start in (question.submit, ask_btn.click):
            start(busy, None, buttons, queue=False, **private).then(**chat_io).then(
                idle, None, buttons, queue=False, **private)
        clear_btn.click(clear, None, [chatbot, sources_panel, turns, saved_chats.current, ask_in], **private)
        saved_chats.wire(chatbot, turns, sources_panel, demo, ask_in,
                         lambda: sorted({s.collection for s in actions.rag.sources()}))

        upload_btn.click(lambda: (*busy(), READING), None, [*buttons, upload_md], queue=False, **private).then(
            upload, [pdfs, password, upload_into], [upload_json], api_name="upload_into", preprocess=False,
            show_progress_on=[upload_md], **write_limits
        ).then(show_upload, [upload_json], [upload_md], **private).then(
            idle, None, buttons, queue=False, **private).then(**after_change)
        # /upload as before collections (a raw HTTP call sends exactly its two values): into default.
        upload_default_trigger = gr.Button(visible=False, elem_id="upload-default")
        upload_default_trigger.click(upload_default, [pdfs, password], [upload_json], api_name="upload",
                                     preprocess=False, **write_limits)
        wiki_btn.click(add_wiki_ui, [wiki_titles, upload_into], [wiki_md], **write_limits, **private
                       ).then(**after_change)
        ask_in.change(lambda chosen: gr.update(info=asking_label(chosen)), [ask_in], [ask_in], **private)
        delete_btn.click(confirm_delete_ui, [to_delete], [confirm_delete, confirm_md], queue=False, **private)
        no_delete.click(lambda: (gr.update(visible=False), ""), None, [confirm_delete, delete_md], queue=False,
                        **private)
        yes_delete.click(lambda: gr.update(visible=False), None, [confirm_delete], queue=False, **private).then(
            delete_ui, [to_delete], [delete_md], **write_limits, **private).then(**after_change)
        # preprocess=False: a tick can carry a choice the page still shows but a refresh just removed
        # (a source deleted a moment ago); Gradio would reject it as "not in the list of choices" and
        # mark the outputs with an error. refresh_if_changed keeps only choices that still exist.
        sources_timer.tick(refresh_if_changed, [seen_sources, to_delete, only_sources, ask_in],
                           [table, to_delete, only_sources, ask_in, upload_into, seen_sources],
                           concurrency_limit=None, show_progress="hidden", preprocess=False, **private)
        refresh_btn.click(**after_change)
        demo.load(**after_change)

        gr.api(ask, api_name="ask", **ask_limits)
        gr.api(add_wikipedia, api_name="add_wikipedia", **write_limits)
        gr.api(delete, api_name="delete", **write_limits)
        gr.api(sources, api_name="sources", concurrency_limit=None)
        gr.api(collections, api_name="collections", concurrency_limit=None)

    demo.queue(default_concurrency_limit=ask_concurrency)
    return demo
