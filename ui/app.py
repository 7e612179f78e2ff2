"""The browser chat and its HTTP API: Gradio Blocks over the ``RAG`` facade, served by FastAPI.

Run it with ``rag serve`` (http://127.0.0.1:7860), or from Python::

    from rag import RAG
    from ui.app import create_server
    server = create_server(RAG(), "127.0.0.1", 7860).start()   # background thread
    ...
    server.stop()

The page has a chat (streamed answers, conversation history, inline citations [n] that
open the Wikipedia section or the uploaded PDF at its page, a sources panel with the cited
passages and their similarity, the retrieval query when it differs from the question, and
which generator answered), a Documents tab (upload PDFs, add Wikipedia pages, list and
delete sources) and settings (number of sources k, the generator and its notice).

API (usable from ``gradio_client``; listed at ``/?view=api``, "Use via API" in the footer)
--------------------------------------------------------------------------------------
With ``RAG_AUTH=user:password`` set, connect with ``Client(url, auth=(user, password))``.
Errors come back as ``gradio_client.exceptions.AppError`` whose message is one sentence
(the library's own, or a generic one for unexpected failures, which the server logs).

``/ask`` — ``question: str, history: list[[str, str]] | None = None, k: int | None = None,
sources: list[str] | None = None`` → dict. ``history`` is the earlier turns as
``[question, answer]`` pairs, oldest first; ``k`` how many chunks to retrieve (default the
server's ``RAG_TOP_K``); ``sources`` restricts retrieval to those source names. It streams:
with ``client.submit`` every update but the last is ``{"done": false, "answer": "<text so
far>"}``; the last one, which ``client.predict`` returns, is ``Answer.to_dict()`` plus links
and markdown::

    {"done": true, "answer": "From the documents: ... [1]", "refused": false,
     "query": "<retrieval query actually used>", "generator": "extractive",
     "prompt_format": null,
     "citations": [{"number": 1, "supported": true, "support": 0.9, "link": "/files/a.pdf#page=2",
                    "id", "score", "text", "source", "kind", "title", "url", "section", "page",
                    "start", "end"}],
     "sources": [<hit + "link">, ...],        # sources[n-1] is citation [n], then the rest seen
     "markdown": "<answer with linked [n]>", "sources_markdown": "<numbered sources panel>"}

``link`` is ``/files/<name>.pdf#page=N`` (relative to the server) for an uploaded PDF,
``https://en.wikipedia.org/wiki/Title#Section`` for Wikipedia, else the source's url or null.
The final ``answer`` replaces the streamed text (citations are renumbered at the end).

``/upload`` — ``files: list[file]`` (``handle_file(path)`` each), ``password: str`` (""
for none) → ``{"files": [{"file", "source", "status", "chunks", "message",
"needs_password"}]}``, one per file, with ``status`` ``added``, ``replaced``, ``unchanged``
or ``refused`` (``message`` says why in one sentence). A file is checked by content
(``%PDF-``, not its extension), stored under ``DATA_DIR/files`` under a sanitized name
(its base name, odd characters replaced), which is also its source name, and served at
``/files/<source>``. A refused file is not stored; ``needs_password`` is true for an
encrypted PDF: send it again with its ``password``.

``/add_wikipedia`` — ``titles: list[str]`` (exact titles; redirects followed) →
``{"pages": [{"title", "status", "chunks", "message"}]}``.

``/sources`` — no arguments → ``[{"source", "kind", "title", "chunks", "added_at", "url"}]``.

``/delete`` — ``source: str`` (as ``/sources`` lists it; a bare Wikipedia title works) →
``{"source", "chunks"}`` (chunks removed; an uploaded PDF's stored file is deleted too).

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

import ipaddress
import logging
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import gradio as gr

from rag.errors import EncryptedPDFError, RagError
from rag.service import RAG
from rag.types import Answer, Hit
from ingest import uploads
from ui import render

log = logging.getLogger(__name__)

GENERIC_ERROR = "Something went wrong on the server (it was logged); please try again."
MAX_K = 20
ASK_CONCURRENCY = 4

CSS = """
#sources-panel blockquote { font-size: 0.9em; margin: 0.2em 0 0.8em 0; }
#generator-notice { border-left: 4px solid #f59e0b; padding-left: 0.6em; }
"""


def user_message(exc: BaseException) -> str:
    """The one sentence a person sees for an error: the library's own, or a generic one (logged)."""
    if isinstance(exc, (RagError, uploads.NotAPDFError)):
        return str(exc)
    log.error("Unexpected error in the UI", exc_info=exc)
    return GENERIC_ERROR


class Actions:
    """What the page and the API do, as thin calls on the facade (no retrieval logic here)."""

    def __init__(self, rag: RAG) -> None:
        self.rag = rag
        self.files_dir = Path(rag.settings.files_dir)

    # -- helpers ---------------------------------------------------------------------------
    def link(self, hit: Hit) -> str | None:
        """Where a citation points: the stored PDF at its page, or the source's own URL."""
        if hit.chunk.kind == "pdf":
            return uploads.file_url(self.files_dir, hit.source, hit.page) or hit.url
        return hit.url

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
            return user_message(exc)

    # -- asking ----------------------------------------------------------------------------
    def ask_stream(self, question: str, history: list[tuple[str, str]], k: int | None,
                   sources: list[str] | None) -> Iterator[str | Answer]:
        """Text pieces, then the final Answer (straight from the facade)."""
        yield from self.rag.ask_stream(question, history or None, k=k, sources=sources or None)

    # -- ingestion -------------------------------------------------------------------------
    def upload(self, files: list[tuple[str, str]], password: str | None,
               progress: Callable[[float, str], None] | None = None) -> dict[str, Any]:
        """Store and ingest uploaded files one by one; one result per file.

        Args:
            files: (path of the received file, the name the client gave it) pairs.
            password: tried on encrypted PDFs.
            progress: called with (fraction done, description).
        """
        results = []
        for i, (path, original) in enumerate(files):
            original = re.split(r"[\\/]", original)[-1] or Path(path).name
            if progress:
                progress(i / max(len(files), 1), f"Ingesting {original} ({i + 1} of {len(files)})")
            results.append(self._upload_one(path, original, password or None))
        if progress:
            progress(1.0, "Done")
        return {"files": results}

    def _upload_one(self, path: str, original: str, password: str | None) -> dict[str, Any]:
        result: dict[str, Any] = {"file": original, "source": uploads.safe_name(original), "status": "refused",
                                  "chunks": 0, "message": "", "needs_password": False}
        try:
            staged = uploads.stage_upload(self.files_dir, path, original)
        except Exception as exc:
            result["message"] = user_message(exc)
            return result
        try:
            report = self.rag.add_pdfs([staged.path], password=password)
        except Exception as exc:
            staged.discard()
            result["message"] = user_message(exc)
            return result
        name = staged.name
        if name in report.skipped:
            staged.discard()
            error = report.errors.get(name)
            result["needs_password"] = isinstance(error, EncryptedPDFError)
            result["message"] = report.skipped[name]
            return result
        staged.commit()
        for status in ("added", "replaced", "unchanged"):
            if name in getattr(report, status):
                chunks = getattr(report, status)[name]
                result.update(status=status, chunks=chunks, message=f"{status}, {chunks} chunk(s)" + (
                    " (already indexed, nothing changed)" if status == "unchanged" else ""))
                break
        return result

    def add_wikipedia(self, titles: list[str]) -> dict[str, Any]:
        """Ingest Wikipedia pages one by one; one result per title."""
        pages = []
        for title in (t.strip() for t in titles):
            if not title:
                continue
            page: dict[str, Any] = {"title": title, "status": "refused", "chunks": 0, "message": ""}
            try:
                report = self.rag.add_wikipedia(title)
                for status in ("added", "replaced", "unchanged"):
                    found = getattr(report, status)
                    if found:
                        chunks = sum(found.values())
                        page.update(status=status, chunks=chunks, message=f"{status}, {chunks} chunk(s)")
                        break
            except Exception as exc:
                page["message"] = user_message(exc)
            pages.append(page)
        return {"pages": pages}

    def sources(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.rag.sources()]

    def delete(self, source: str) -> dict[str, Any]:
        """Delete a source and its stored upload; raises the library's NotFoundError when unknown."""
        source = (source or "").strip()
        if not source:
            raise RagError("Choose a source to delete")
        chunks = self.rag.delete(source)
        uploads.remove_file(self.files_dir, source)
        return {"source": source, "chunks": chunks}


# ---------------------------------------------------------------------------------- the page
def _chat_messages(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    messages = []
    for turn in turns:
        messages.append({"role": "user", "content": render.escape_md(turn["question"])})
        messages.append({"role": "assistant", "content": turn["markdown"]})
    return messages


def _sources_table(infos: list) -> Any:
    import pandas as pd

    rows = [[s.source, s.kind, s.chunks, s.added_at] for s in infos]
    return pd.DataFrame(rows, columns=["source", "kind", "chunks", "added"])


def _results_markdown(items: list[dict[str, Any]], key: str) -> str:
    lines = []
    for item in items:
        prefix = "**refused**: " if item["status"] == "refused" else ""
        lines.append(f"- **{render.escape_md(item[key])}** — {prefix}{render.escape_md(item['message'])}")
    return "\n".join(lines)


def _in_upload_folder(path: str | Path) -> bool:
    """Whether ``path`` is a file Gradio received as an upload (inside its upload folder)."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()).resolve()
    return folder in Path(str(path)).resolve().parents


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
    generator = actions.generator_name()
    notice = actions.generator_notice()
    default_k = min(rag.settings.top_k, MAX_K)

    with gr.Blocks(title="rag — ask your documents", analytics_enabled=False,
                   delete_cache=(3600, 3600)) as demo:
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
                with gr.Column(scale=2):
                    sources_panel = gr.Markdown("_The sources of the latest answer appear here._",
                                                elem_id="sources-panel")
                    with gr.Accordion("Settings", open=False):
                        k_slider = gr.Slider(1, MAX_K, value=default_k, step=1, label="Number of sources (k)",
                                             elem_id="k")
                        only_sources = gr.Dropdown(choices=[], value=[], multiselect=True,
                                                   label="Only search these sources (empty: all)")
                        gr.Markdown(f"Generator in use: **{render.escape_md(generator)}**", elem_id="generator")

        with gr.Tab("Documents", id="documents"):
            with gr.Row():
                with gr.Column():
                    pdfs = gr.File(file_count="multiple", file_types=[".pdf"], label="PDF files",
                                   elem_id="pdf-files")
                    password = gr.Textbox(label="Password (for encrypted PDFs)", type="password",
                                          elem_id="pdf-password")
                    upload_btn = gr.Button("Add PDFs", variant="primary", elem_id="upload-button")
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
                to_delete = gr.Dropdown(choices=[], label="Source to delete", scale=4, elem_id="delete-choice")
                delete_btn = gr.Button("Delete", variant="stop", scale=1, elem_id="delete-button")
                refresh_btn = gr.Button("Refresh", scale=1)
            delete_md = gr.Markdown(elem_id="delete-results")

        # -- UI handlers (not part of the API) ----------------------------------------------
        def refresh():
            try:
                infos = actions.rag.sources()
                names = [s.source for s in infos]
                return _sources_table(infos), gr.update(choices=names, value=None), gr.update(choices=names)
            except Exception as exc:
                gr.Warning(user_message(exc))
                return gr.update(), gr.update(), gr.update()

        def chat(text: str, history: list[dict[str, str]], k: float, restrict: list[str] | None):
            text = (text or "").strip()
            if not text:
                gr.Warning("Type a question first.")
                yield gr.update(), gr.update(), history, gr.update()
                return
            pairs = [(t["question"], t["answer"]) for t in history]
            current = {"question": text, "answer": "", "markdown": "…"}
            shown = _chat_messages([*history, current])
            yield shown, gr.update(), history, ""
            pieces: list[str] = []
            try:
                for item in actions.ask_stream(text, pairs, int(k), restrict):
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
                message = user_message(exc)
                gr.Warning(message)
                current["markdown"] = f"⚠️ {render.escape_md(message)}"
                yield _chat_messages([*history, current]), gr.update(), history, text
                return
            # The stream ended without an Answer: show what came, keep it out of the history.
            yield _chat_messages([*history, current]), gr.update(), history, ""

        def clear():
            return [], "_The sources of the latest answer appear here._", []

        def show_upload(result: dict[str, Any] | None):
            items = (result or {}).get("files", [])
            text = _results_markdown(items, "file")
            if any(i.get("needs_password") for i in items):
                text += "\n\nEnter the password above and click **Add PDFs** again to retry."
            return text

        def add_wiki_ui(text: str):
            titles = [t for t in (text or "").splitlines() if t.strip()]
            if not titles:
                gr.Warning("Type a Wikipedia page title first.")
                return gr.update()
            return _results_markdown(actions.add_wikipedia(titles)["pages"], "title")

        def delete_ui(source: str | None):
            try:
                result = actions.delete(source or "")
                return f"Deleted **{render.escape_md(result['source'])}** ({result['chunks']} chunks)."
            except Exception as exc:
                message = user_message(exc)
                gr.Warning(message)
                return f"⚠️ {render.escape_md(message)}"

        # -- public API endpoints (documented above) ----------------------------------------
        def upload(files: list[dict] | None, password: str | None, progress=gr.Progress()) -> dict[str, Any]:
            """Store and ingest PDFs; one result per file."""
            # preprocess=False: ``files`` are the FileData dicts the client sent (with their
            # orig_name), already checked by Gradio to be in its upload folder (see create_app);
            # checked again here in case that ever changes.
            if isinstance(files, dict):
                files = [files]
            if not files:
                gr.Warning("Choose one or more PDF files first.")
                return {"files": []}
            items = []
            for f in files:
                path = f.get("path") if isinstance(f, dict) else f
                name = (f.get("orig_name") if isinstance(f, dict) else None) or Path(str(path)).name
                if not path or not _in_upload_folder(path):
                    raise gr.Error(f"{uploads.safe_name(str(name))} was not uploaded to this server; "
                                   "upload the file itself.")
                items.append((str(path), str(name)))
            return actions.upload(items, password, progress=lambda frac, desc: progress(frac, desc=desc))

        def ask(question: str, history: list[list[str]] | None = None, k: int | None = None,
                sources: list[str] | None = None) -> Iterator[dict]:
            """Answer a question from the indexed documents, streaming; the last update has the citations."""
            question = (question or "").strip()
            if not question:
                raise gr.Error("The question is empty; send some text.")
            if k is not None and not 1 <= int(k) <= 100:
                raise gr.Error(f"k={k} is out of range; choose 1 to 100.")
            try:
                pairs = [(str(q), str(a)) for q, a in (history or [])]
            except (TypeError, ValueError):
                raise gr.Error("history must be a list of [question, answer] pairs.") from None
            pieces: list[str] = []
            try:
                for item in actions.ask_stream(question, pairs, int(k) if k else None, sources):
                    if isinstance(item, Answer):
                        yield render.answer_payload(item, question, link=actions.link)
                        return
                    pieces.append(item)
                    yield {"done": False, "answer": "".join(pieces)}
            except gr.Error:
                raise
            except Exception as exc:
                raise gr.Error(user_message(exc)) from None
            raise gr.Error(user_message(RuntimeError("ask_stream ended without an Answer")))

        def add_wikipedia(titles: list[str]) -> dict:
            """Ingest Wikipedia pages by exact title; one result per title."""
            if isinstance(titles, str):
                titles = [titles]
            return actions.add_wikipedia(list(titles or []))

        def sources() -> list[dict]:
            """What is indexed."""
            try:
                return actions.sources()
            except Exception as exc:
                raise gr.Error(user_message(exc)) from None

        def delete(source: str) -> dict:
            """Delete a source (and its stored PDF)."""
            try:
                return actions.delete(source)
            except Exception as exc:
                raise gr.Error(user_message(exc)) from None

        # -- wiring ---------------------------------------------------------------------------
        private = {"api_visibility": "private"}
        after_change = {"fn": refresh, "inputs": None, "outputs": [table, to_delete, only_sources], **private}
        ask_limits = {"concurrency_id": "ask", "concurrency_limit": ask_concurrency}
        write_limits = {"concurrency_id": "write", "concurrency_limit": 1}

        chat_io = {"fn": chat, "inputs": [question, turns, k_slider, only_sources],
                   "outputs": [chatbot, sources_panel, turns, question], **ask_limits, **private}
        question.submit(**chat_io)
        ask_btn.click(**chat_io)
        clear_btn.click(clear, None, [chatbot, sources_panel, turns], **private)

        upload_btn.click(upload, [pdfs, password], [upload_json], api_name="upload", preprocess=False,
                         show_progress_on=[upload_md], **write_limits
                         ).then(show_upload, [upload_json], [upload_md], **private).then(**after_change)
        wiki_btn.click(add_wiki_ui, [wiki_titles], [wiki_md], **write_limits, **private).then(**after_change)
        delete_btn.click(delete_ui, [to_delete], [delete_md], **write_limits, **private).then(**after_change)
        refresh_btn.click(**after_change)
        demo.load(**after_change)

        gr.api(ask, api_name="ask", **ask_limits)
        gr.api(add_wikipedia, api_name="add_wikipedia", **write_limits)
        gr.api(delete, api_name="delete", **write_limits)
        gr.api(sources, api_name="sources", concurrency_limit=None)

    demo.queue(default_concurrency_limit=ask_concurrency)
    return demo


# ------------------------------------------------------------------------------ the server
def create_app(rag: RAG, *, ask_concurrency: int = ASK_CONCURRENCY, blocks: gr.Blocks | None = None,
               routers: Sequence[Any] = ()):
    """A FastAPI app: the REST and OpenAI-compatible API (``rag.server``), ``GET /files/{name}`` for
    uploaded PDFs, and the Gradio page and its API at ``/``.

    Args:
        rag: the facade to serve.
        ask_concurrency: how many questions are answered at once.
        blocks: the page (default: ``build_app(rag)``).
        routers: more FastAPI ``APIRouter``s to serve beside the page (e.g. a REST API);
            their routes win over the page's, and are listed at ``/docs``.
    """
    from fastapi import FastAPI

    from rag.auth import RequireLogin
    from rag.server import build_api

    app = FastAPI(title="rag", docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
    app.include_router(build_api(rag))
    # Routes added before the mount at "/" win over it.
    uploads.add_files_route(app, rag.settings.files_dir)
    for router in routers:
        app.include_router(router)
    blocks = blocks or build_app(rag, ask_concurrency=ask_concurrency)
    login = rag.settings.login
    app = gr.mount_gradio_app(app, blocks, path="/", show_error=False, max_file_size=rag.settings.max_pdf_bytes,
                              footer_links=["api"], css=CSS, auth=login,
                              auth_message="Log in with the user name and password of the server's RAG_AUTH."
                              if login else None)
    # Gradio's login guards only its own routes; /api, /v1 and /files need the API key, the
    # login as HTTP Basic, or (for /files, opened from the chat's citations) the page's login cookie.
    app.add_middleware(RequireLogin, settings=rag.settings, session_user=_gradio_session_user(app))
    # Gradio refuses file inputs that name a server path outside its upload folder only once
    # the Blocks "has launched", which mount_gradio_app never marks; without this, a client
    # could have any readable server file copied into the cache and ingested.
    blocks.has_launched = True
    return app


def _gradio_session_user(app: Any) -> Callable[[dict[str, str]], str | None]:
    """Given a request's cookies, the user logged in on the mounted Gradio page, or None.

    Reads Gradio's own session store (``App.tokens``, keyed by the ``access-token-<cookie_id>``
    cookie its ``/login`` sets), found on the mount at ``/``; a test logs in through the page's
    ``/login`` and opens ``/files`` with the cookie, so a Gradio change that breaks this shows.
    """
    from starlette.routing import Mount

    def user(cookies: dict[str, str]) -> str | None:
        for route in app.routes:
            gradio_app = route.app if isinstance(route, Mount) else None
            if gradio_app is not None and hasattr(gradio_app, "tokens") and hasattr(gradio_app, "cookie_id"):
                cid = gradio_app.cookie_id
                token = cookies.get(f"access-token-{cid}") or cookies.get(f"access-token-unsecure-{cid}")
                return gradio_app.tokens.get(token) if token else None
        return None

    return user


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warm_up(rag: RAG) -> None:
    """Load MiniLM, the store and the generator now, before the first (possibly concurrent) request."""
    rag.retriever  # noqa: B018 (cached properties: loading is the point)
    rag.indexer  # noqa: B018
    rag.embedder.warm_up()  # the ONNX query path is exported and checked here, once
    try:
        rag.generator  # noqa: B018
        rag.answerer  # noqa: B018
    except Exception as exc:
        log.warning("The generator did not load: %s", exc)


class UIServer:
    """The app on a uvicorn server bound to ``host:port`` (port 0: a free one).

    ``start()`` serves from a background thread (tests); ``serve_forever()`` blocks and
    stops on Ctrl-C (the CLI).
    """

    def __init__(self, rag: RAG, host: str = "127.0.0.1", port: int = 7860, *,
                 ask_concurrency: int = ASK_CONCURRENCY, routers: Sequence[Any] = (),
                 log_level: str = "warning") -> None:
        import uvicorn

        self.rag = rag
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port = self._sock.getsockname()[1]
        self.blocks = build_app(rag, ask_concurrency=ask_concurrency)
        self.app = create_app(rag, blocks=self.blocks, routers=routers)
        config = uvicorn.Config(self.app, log_level=log_level, timeout_graceful_shutdown=2,
                                ws="none", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self, timeout: float = 60) -> "UIServer":
        """Serve in a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="rag-ui", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the UI server did not start on {self.url}")
            time.sleep(0.05)
        return self

    def serve_forever(self, on_started: Callable[[], None] | None = None) -> None:
        """Serve in this thread until interrupted.

        Args:
            on_started: called (from another thread) once the server accepts connections.
        """
        finished = threading.Event()
        if on_started is not None:
            def wait_then_call() -> None:
                while not self._server.started:
                    if finished.is_set() or self._server.should_exit:
                        return
                    time.sleep(0.05)
                on_started()

            threading.Thread(target=wait_then_call, name="rag-started", daemon=True).start()
        try:
            self._server.run(sockets=[self._sock])
        finally:
            finished.set()

    def stop(self, timeout: float = 10) -> None:
        """Stop serving and wait for the thread to end."""
        from starlette.routing import Mount

        # End the sessions' heartbeat streams (as Blocks.close does), else shutdown waits for them.
        for route in self.app.routes:
            if isinstance(route, Mount) and hasattr(route.app, "stop_event"):
                route.app.stop_event.set()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout)
        queue = getattr(self.blocks, "_queue", None)
        if queue is not None:
            queue.close()
        self._sock.close()

    def __enter__(self) -> "UIServer":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def create_server(rag: RAG, host: str = "127.0.0.1", port: int = 7860, **kwargs: Any) -> UIServer:
    """A server for the app over ``rag`` bound to ``host:port`` (call ``.start()`` or ``.serve_forever()``)."""
    return UIServer(rag, host, port, **kwargs)
