"""The HTTP API: REST routes, an OpenAI-compatible chat endpoint and the stored uploads, over the facade.

Served by ``rag.http.app`` beside the Gradio page (or alone, ``rag serve --headless``), so
one process answers browsers, scripts and OpenAI clients alike. The schema is published at
``/openapi.json`` (browsable at ``/docs``).

Routes:
    GET    /api/health                 status, chunk count, generator, pid
    POST   /api/search                 {"query", "k"?, "sources"?, "collection"?} -> {"query", "k", "hits"}
    POST   /api/ask                    {"question", "history"?, "k"?, "sources"?, "collection"?, "stream"?}
                                       -> Answer (stream: NDJSON lines {"delta"}..., then {"answer"})
    GET    /api/sources                [SourceInfo] (?collection=NAME, repeatable)
    DELETE /api/sources/{source}       {"deleted": n} (?collection=NAME; an uploaded PDF's stored file goes too)
    GET    /api/collections            [{"name", "sources", "chunks"}]
    DELETE /api/collections/{name}     {"deleted": {"name", "sources", "chunks"}}: the whole collection
    POST   /api/ingest/file            multipart: file, password?, collection? -> IngestReport
    POST   /api/ingest/wikipedia       {"titles": [...], "collection"?} -> IngestReport
    POST   /api/ingest/text            {"name", "text", "collection"?} -> IngestReport
    GET    /v1/models                  the one model, "rag"
    POST   /v1/chat/completions        OpenAI chat completions (stream or not); answers carry
                                       "sources" and "citations" as extra fields; the request
                                       may add "k", "sources" and "collection" as /api/ask takes
                                       them (OpenAI clients send them with extra_body=...)
    GET    /files/{name}               a stored upload of the default collection, inline (404 for
                                       anything that is not one); /files/{collection}/{name} another's

``collection`` is one name or a list for reads (absent: every collection the caller may see)
and one name for writes (absent: ``default``). A request with a key bound to collections
(``RAG_COLLECTION_KEYS``, ``rag.http.auth``) sees, lists, writes and deletes only in its
collections (its reads default to them, its writes to the first) and gets a 403 naming the
rule for any other; a collection that does not exist is a 404 listing the existing ones
(those the key may see).

Answers (/api/ask, /v1) give each citation and source a ``link``: the viewer at the cited
passage (``/view/<file>?page=N&chunk=<id>#cited``, ``rag.http.viewer``) for a stored file,
the section of a Wikipedia page, else the source's URL or null.

Every field is bounded by ``rag.settings`` (question, turns and their length, sources named,
text size; bodies are capped before this code runs, by ``rag.http.guard``). Errors are JSON,
``{"error": {"message": <one sentence>, "type": ...}}``: 400 for what the library refuses,
403 for a collection the key may not use, 404 for an unknown source or collection, 422 for a
malformed request, 413 for one too big.
"""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime,
# and the request models live inside build_api so importing this module stays cheap.

import itertools
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, Literal

from rag.errors import ForbiddenCollectionError, NotFoundError, RagError, UnknownCollectionError, user_message
from rag.links import linked_answer
from rag.settings import MAX_TOP_K

log = logging.getLogger(__name__)

MODEL_ID = "rag"
NAME_CHARS = 500  # a source name, title, file name or password


def install_error_handlers(app: Any) -> None:
    """Make FastAPI's own refusals one sentence in the API's error shape.

    A malformed request (a missing field, ``{"k": 1e400}``, a list over its limit) is a 422
    naming the field and the rule, never echoing the value (FastAPI's default echoes it, and
    an infinite number there made its JSON encoder fail with a plain-text 500).
    """
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    def body(message: str, kind: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": kind}}

    async def invalid(_request: Any, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(body(validation_message(exc.errors()), "invalid_request_error"), status_code=422)

    async def http_error(_request: Any, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else f"HTTP {exc.status_code}"
        return JSONResponse(body(message, "not_found" if exc.status_code == 404 else "invalid_request_error"),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)


def validation_message(errors: Any) -> str:
    """One sentence for pydantic's validation errors: where, and which rule (never the value sent)."""
    errors = list(errors or [])
    if not errors:
        return "The request is malformed; check it against /openapi.json"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "form"))
    rule = str(first.get("msg", "is invalid")).rstrip(".")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"The request's {where or 'body'} is invalid: {rule}{more}; fix it and send again (see /openapi.json)"


def build_api(rag: Any):
    """An APIRouter with the REST and OpenAI-compatible routes over ``rag``.

    Args:
        rag: the ``RAG`` facade the routes call.

    Returns:
        A ``fastapi.APIRouter``.
    """
    from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
    from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
    from pydantic import BaseModel, Field

    from ingest.files import FILES_ROUTE, stored_kind
    from rag.collections import check_name, names_of, summarize, unknown_message, write_target
    from rag.http.auth import SCOPE_KEY
    from rag.settings import DEFAULT_COLLECTION

    s = rag.settings
    Question = Annotated[str, Field(min_length=1, max_length=s.max_question_chars)]
    Turn = Annotated[str, Field(max_length=s.max_turn_chars)]
    Name = Annotated[str, Field(min_length=1, max_length=NAME_CHARS)]
    Sources = Annotated[list[Name] | None, Field(default=None, max_length=s.max_source_filters)]
    # The names are checked by rag.collections (one sentence naming the value and the rule).
    CollectionName = Annotated[str, Field(max_length=NAME_CHARS)]
    Collections = Annotated[CollectionName | Annotated[list[CollectionName], Field(
        max_length=s.max_collection_filters)] | None, Field(default=None)]
    Target = Annotated[CollectionName | None, Field(default=None)]

    class SearchRequest(BaseModel):
        query: Question
        k: int | None = Field(default=None, ge=1, le=MAX_TOP_K)
        sources: Sources = None
        collection: Collections = None

    class AskRequest(BaseModel):
        question: Question
        history: list[tuple[Turn, Turn]] = Field(default_factory=list, max_length=s.max_history_turns)
        k: int | None = Field(default=None, ge=1, le=MAX_TOP_K)
        sources: Sources = None
        collection: Collections = None
        # true: newline-delimited JSON, {"delta": text} as the generator writes, then {"answer": ...}.
        stream: bool = False

    class WikipediaRequest(BaseModel):
        titles: list[Name] = Field(min_length=1, max_length=50)
        collection: Target = None

    class TextRequest(BaseModel):
        name: Name
        text: str
        collection: Target = None

    class Message(BaseModel):
        role: Literal["system", "user", "assistant", "developer", "tool"]
        content: Turn | Annotated[list[dict[str, Any]], Field(max_length=64)] | None = None

    class ChatRequest(BaseModel):
        model: str = Field(default=MODEL_ID, max_length=NAME_CHARS)
        # The earlier turns as user/assistant pairs, plus a few system messages and the question.
        messages: list[Message] = Field(min_length=1, max_length=2 * s.max_history_turns + 8)
        stream: bool = False
        max_tokens: int | None = Field(default=None, ge=1)
        temperature: float | None = None
        # Extensions (the openai package sends them with extra_body=...): chunks to retrieve, and
        # the sources and collections to search, as /api/ask takes them.
        k: int | None = Field(default=None, ge=1, le=MAX_TOP_K)
        sources: Sources = None
        collection: Collections = None

    router = APIRouter()

    # -- collections: what the request's credentials may see (rag.http.auth puts a bound key's
    # collections in the scope) and what it asked --------------------------------------------
    def allowed(request: Request) -> tuple[str, ...] | None:
        return request.scope.get(SCOPE_KEY)

    def forbidden(name: str, bound: tuple[str, ...]) -> ForbiddenCollectionError:
        return ForbiddenCollectionError(f"This API key may use only the collection(s) {', '.join(bound)}, not "
                                        f"{name!r}; ask within them or use a key bound to {name!r}")

    def read_scope(request: Request, asked: Any) -> list[str] | None:
        """The collections a read asks: as asked (None: all) without a binding; within the key's otherwise."""
        bound = allowed(request)
        names = names_of(asked, s)
        if bound is None:
            return list(names) if names else None
        for name in names or ():
            if name not in bound:
                raise forbidden(name, bound)
        existing = {i.collection for i in rag.store.sources()}
        visible = [n for n in bound if n in existing]
        if names:
            missing = [n for n in names if n not in existing]
            if missing:
                raise UnknownCollectionError(unknown_message(missing[0], visible))
            return list(names)
        if not visible:
            raise UnknownCollectionError(f"Nothing is indexed in this API key's collection(s) "
                                         f"{', '.join(bound)} yet; ingest into one of them first")
        return visible

    def write_scope(request: Request, asked: str | None) -> str:
        """The one collection a write goes into: as asked (default ``default``), or the key's first."""
        bound = allowed(request)
        if bound is None:
            return write_target(asked, s)
        name = write_target(asked, s) if asked else bound[0]
        if name not in bound:
            raise forbidden(name, bound)
        return name

    def stream_answer(render: Callable[[Iterator[Any]], Iterator[str]], media_type: str, question: str,
                      history: Any, k: int | None, sources: list[str] | None, request: Request,
                      collection: Any) -> Any:
        """A streamed answer in ``render``'s wire format; a question refused up front is a 4xx."""
        try:
            events = rag.ask_stream(question, history, k=k, sources=sources or None,
                                    collection=read_scope(request, collection))
            first = next(events, None)  # fail before the 200 is sent where we can
        except ForbiddenCollectionError as exc:
            return error(403, str(exc), "permission_error")
        except UnknownCollectionError as exc:
            return error(404, str(exc), "not_found")
        except RagError as exc:
            return error(400, str(exc))
        started = itertools.chain([first] if first is not None else [], events)
        return StreamingResponse(render(started), media_type=media_type)

    def error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)

    def guarded(fn):
        """Run a route; the project's errors become a 4xx with their one sentence (rag.errors.user_message)."""
        try:
            return fn()
        except ForbiddenCollectionError as exc:
            return error(403, user_message(exc), "permission_error")
        except (NotFoundError, UnknownCollectionError) as exc:
            return error(404, user_message(exc), "not_found")
        except RagError as exc:
            return error(400, user_message(exc))
        except Exception as exc:  # the server keeps serving; the details go to the log, not the client
            return error(500, user_message(exc), "server_error")

    @router.get("/api/health", tags=["service"])
    def health(request: Request) -> Any:
        def run() -> dict[str, Any]:
            bound = allowed(request)
            # A key bound to collections learns nothing of the others, not even their size.
            chunks = rag.store.count() if bound is None else \
                sum(c.chunks for c in rag.collections() if c.name in bound)
            # pid: the CLI checks it against DATA_DIR/server.json to know it reached the server that owns the store.
            return {"status": "ok", "chunks": chunks, "generator": rag.generator.name, "pid": os.getpid()}

        return guarded(run)

    @router.post("/api/search", tags=["retrieval"])
    def search(req: SearchRequest, request: Request) -> Any:
        def run() -> dict[str, Any]:
            hits = rag.search(req.query, req.k, sources=req.sources or None,
                              collection=read_scope(request, req.collection))
            return {"query": req.query, "k": req.k or rag.settings.top_k, "hits": [h.to_dict() for h in hits]}

        return guarded(run)

    @router.post("/api/ask", tags=["answers"])
    def ask(req: AskRequest, request: Request) -> Any:
        history = [tuple(t) for t in req.history] or None
        if not req.stream:
            return guarded(lambda: linked_answer(rag.ask(req.question, history, k=req.k, sources=req.sources or None,
                                                         collection=read_scope(request, req.collection)), s.files_dir))
        return stream_answer(lambda events: _ndjson(events, s.files_dir), "application/x-ndjson", req.question,
                             history, req.k, req.sources, request, req.collection)

    @router.get("/api/sources", tags=["sources"])
    def sources(request: Request, collection: Annotated[list[CollectionName] | None, Query(
            max_length=s.max_collection_filters)] = None) -> Any:
        def run() -> list[dict[str, Any]]:
            bound = allowed(request)
            if bound is not None and not collection:
                return [i.to_dict() for i in rag.sources() if i.collection in bound]
            return [i.to_dict() for i in rag.sources(collection=read_scope(request, collection))]

        return guarded(run)

    @router.get("/api/collections", tags=["sources"])
    def collections(request: Request) -> Any:
        bound = allowed(request)
        return guarded(lambda: [c.to_dict() for c in summarize(rag.sources())
                                if bound is None or c.name in bound])

    @router.delete("/api/collections/{name}", tags=["sources"])
    def delete_collection(name: str, request: Request) -> Any:
        def run() -> dict[str, Any]:
            where = write_scope(request, check_name(name, s))
            bound = allowed(request)
            if bound is not None:  # a bound key is told only of its own collections
                existing = {i.collection for i in rag.store.sources()}
                if where not in existing:
                    raise UnknownCollectionError(unknown_message(where, [n for n in bound if n in existing]))
            return {"deleted": rag.delete_collection(where).to_dict()}

        return guarded(run)

    @router.delete("/api/sources/{source:path}", tags=["sources"])
    def delete(source: str, request: Request, collection: Annotated[CollectionName | None, Query()] = None) -> Any:
        return guarded(lambda: {"deleted": rag.delete(source, collection=write_scope(request, collection))})

    @router.post("/api/ingest/wikipedia", tags=["sources"])
    def ingest_wikipedia(req: WikipediaRequest, request: Request) -> Any:
        def run() -> dict[str, Any]:
            where = write_scope(request, req.collection)
            return rag.ingest([rag.wikipedia_job(t, collection=where) for t in req.titles]).to_dict()

        return guarded(run)

    @router.post("/api/ingest/text", tags=["sources"])
    def ingest_text(req: TextRequest, request: Request) -> Any:
        if len(req.text.encode("utf-8")) > s.max_text_bytes:
            return error(413, f"{req.name} is over the {s.max_text_bytes / 2**20:.0f} MB limit for a text; "
                              "split it or raise RAG_MAX_TEXT_BYTES", "request_too_large")
        return guarded(lambda: rag.add_text(req.text, name=req.name,
                                            collection=write_scope(request, req.collection)).to_dict())

    @router.post("/api/ingest/file", tags=["sources"])
    def ingest_file(request: Request, file: UploadFile = File(...),
                    password: str | None = Form(default=None, max_length=NAME_CHARS),
                    collection: str | None = Form(default=None, max_length=NAME_CHARS)) -> Any:
        def run() -> dict[str, Any]:
            where = write_scope(request, collection)
            # The body was capped at the edge; copy the received file out of the web server's
            # spool so the facade can stage it (RAG.upload: stage, ingest, commit, one lock).
            s.data_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".upload-", dir=s.data_dir) as tmp:
                raw = Path(tmp) / "upload.pdf"
                with raw.open("wb") as out:
                    shutil.copyfileobj(file.file, out, 1 << 20)
                return rag.upload(raw, name=file.filename or "upload", password=password or None,
                                  collection=where).to_dict()

        return guarded(run)

    @router.get(FILES_ROUTE + "/{name}", include_in_schema=False)
    def serve_file(name: str, request: Request) -> Any:
        return serve_stored(request, DEFAULT_COLLECTION, name)

    @router.get(FILES_ROUTE + "/{collection}/{name}", include_in_schema=False)
    def serve_collection_file(collection: str, name: str, request: Request) -> Any:
        if collection == DEFAULT_COLLECTION:  # one URL per file: the default's are at /files/<name>
            raise HTTPException(status_code=404, detail="No such file")
        try:
            check_name(collection, s)
        except RagError:
            raise HTTPException(status_code=404, detail="No such file") from None
        return serve_stored(request, collection, name)

    def serve_stored(request: Request, collection: str, name: str) -> Any:
        bound = allowed(request)
        if bound is not None and collection not in bound:
            return error(403, str(forbidden(collection, bound)), "permission_error")
        found = stored_kind(s.files_dir, name, collection)
        if found is None:
            raise HTTPException(status_code=404, detail="No such file")
        path, kind = found
        media_type, disposition, extra = _SERVED[kind]
        return FileResponse(path, media_type=media_type, content_disposition_type=disposition, filename=path.name,
                            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache", **extra})

    @router.get("/v1/models", tags=["openai"])
    def models() -> Any:
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "rag"}]}

    @router.post("/v1/chat/completions", tags=["openai"])
    def chat_completions(req: ChatRequest, request: Request) -> Any:
        turns = [(m.role, _text(m.content)) for m in req.messages if m.role in ("user", "assistant")]
        if not turns or turns[-1][0] != "user" or not turns[-1][1].strip():
            return error(400, "The last message must be a non-empty user message: the question to answer.")
        if len(turns[-1][1]) > s.max_question_chars:
            return error(422, f"The question (the last user message) is over {s.max_question_chars} characters; "
                              "shorten it, or raise RAG_MAX_QUESTION_CHARS")
        question, history = turns[-1][1], _pairs(turns[:-1])
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if not req.stream:
            def run() -> dict[str, Any]:
                answer = rag.ask(question, history or None, k=req.k, sources=req.sources or None,
                                 collection=read_scope(request, req.collection))
                return {
                    "id": completion_id, "object": "chat.completion", "created": created, "model": req.model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": answer.text}}],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                    **_extras(answer, s.files_dir),
                }

            return guarded(run)
        return stream_answer(lambda events: _sse(completion_id, created, req.model, events, s.files_dir),
                             "text/event-stream", question, history or None, req.k, req.sources, request,
                             req.collection)

    return router


# How each kind of stored file is served. An uploaded HTML page is a stranger's markup on our
# origin: it opens sandboxed (its own origin, no scripts), so it can show its sections but
# never reach the API with the user's cookie. Word files are downloads; text is shown as text.
_SERVED: dict[str, tuple[str, str, dict[str, str]]] = {
    "pdf": ("application/pdf", "inline", {}),
    "html": ("text/html; charset=utf-8", "inline",
             {"Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"}),
    "text": ("text/plain; charset=utf-8", "inline", {}),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "attachment", {}),
}


def _sse(completion_id: str, created: int, model: str, events: Iterator[Any], files_dir: Path) -> Iterator[str]:
    """OpenAI's streaming wire format: ``data: {chunk}`` events, the last with the sources, then [DONE]."""

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    final = None
    for kind, value in _events(events):
        if kind == "delta":
            yield chunk({"content": value})
        elif kind == "answer":
            final = value
        else:
            yield chunk({"content": f"\n\n{value[0]}"})
    yield chunk({}, "stop", **(_extras(final, files_dir) if final is not None else {}))
    yield "data: [DONE]\n\n"


def _ndjson(events: Iterator[Any], files_dir: Path) -> Iterator[str]:
    """/api/ask's stream: one JSON object per line, ``{"delta"}`` pieces, then ``{"answer"}`` or ``{"error"}``."""
    for kind, value in _events(events):
        if kind == "delta":
            body: dict[str, Any] = {"delta": value}
        elif kind == "answer":
            body = {"answer": linked_answer(value, files_dir)}
        else:
            body = {"error": {"message": value[0], "type": value[1]}}
        yield json.dumps(body, ensure_ascii=False) + "\n"


def _events(events: Iterator[Any]) -> Iterator[tuple[str, Any]]:
    """An answer stream as ("delta", text), ("answer", Answer) or ("error", (message, type)) events.

    The stream has already started when a generator fails midway, so the failure becomes the
    last event instead of an exception (the details of an unexpected one go to the log).
    """
    try:
        for event in events:
            if isinstance(event, str):
                if event:
                    yield "delta", event
            else:
                yield "answer", event
    except RagError as exc:
        yield "error", (str(exc), "invalid_request_error")
    except Exception:
        log.exception("streaming answer failed")
        yield "error", ("The server could not finish this answer; see its log for details.", "server_error")


def _extras(answer: Any, files_dir: Path) -> dict[str, Any]:
    data = linked_answer(answer, files_dir)
    return {"sources": data["sources"], "citations": data["citations"], "rag": {
        "query": data["query"], "generator": data["generator"], "prompt_format": data["prompt_format"],
        "refused": data["refused"]}}


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def _pairs(turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(user, assistant) pairs from alternating chat turns; a user turn without a reply pairs with ''."""
    pairs: list[tuple[str, str]] = []
    pending: str | None = None
    for role, text in turns:
        if role == "user":
            if pending is not None:
                pairs.append((pending, ""))
            pending = text
        elif pending is not None:
            pairs.append((pending, text))
            pending = None
    if pending is not None:
        pairs.append((pending, ""))
    return pairs
