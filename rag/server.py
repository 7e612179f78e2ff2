"""The headless HTTP API: REST routes and an OpenAI-compatible chat endpoint over the facade.

Mounted in the same FastAPI app as the Gradio UI (``ui/app.py``), so one
``rag serve`` process answers browsers, scripts and OpenAI clients alike. The
schema is published at ``/openapi.json`` (browsable at ``/docs``).

Routes:
    GET    /api/health                 status, chunk count, generator, pid
    POST   /api/search                 {"query", "k"?, "sources"?} -> {"query", "k", "hits"}
    POST   /api/ask                    {"question", "history"?, "k"?, "sources"?, "stream"?} -> Answer
                                       (stream: NDJSON lines {"delta"}..., then {"answer"})
    GET    /api/sources                [SourceInfo]
    DELETE /api/sources/{source}       {"deleted": n}
    POST   /api/ingest/file            multipart: file (PDF), password? -> IngestReport
    POST   /api/ingest/wikipedia       {"titles": [...]} -> IngestReport
    POST   /api/ingest/text            {"name", "text"} -> IngestReport (what `rag ingest notes.md` sends)
    GET    /v1/models                  the one model, "rag"
    POST   /v1/chat/completions        OpenAI chat completions (stream or not); answers carry
                                       "sources" and "citations" as extra fields; the request
                                       may add "k" and "sources" as /api/ask takes them

When ``RAG_API_KEY`` or ``RAG_AUTH`` is set, ``ui.app.create_app`` guards these routes with
``rag.auth.RequireLogin`` (401 with the same JSON error shape otherwise).
"""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime,
# and the request models live inside build_api so importing this module stays cheap.

import itertools
import json
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from rag.errors import NotFoundError, RagError
from rag.settings import MAX_TOP_K

log = logging.getLogger(__name__)

MODEL_ID = "rag"


def build_api(rag: Any):
    """An APIRouter with the REST and OpenAI-compatible routes over ``rag``.

    Args:
        rag: the ``RAG`` facade the routes call.

    Returns:
        A ``fastapi.APIRouter``.
    """
    from fastapi import APIRouter, File, Form, UploadFile
    from fastapi.responses import JSONResponse, StreamingResponse
    from pydantic import BaseModel, Field

    class SearchRequest(BaseModel):
        query: str = Field(min_length=1, max_length=100_000)
        k: int | None = Field(default=None, ge=1, le=MAX_TOP_K)
        sources: list[str] | None = None

    class AskRequest(BaseModel):
        question: str = Field(min_length=1, max_length=100_000)
        history: list[tuple[str, str]] = Field(default_factory=list, max_length=50)
        k: int | None = Field(default=None, ge=1, le=MAX_TOP_K)
        sources: list[str] | None = None
        # true: newline-delimited JSON, {"delta": text} as the generator writes, then {"answer": ...}.
        stream: bool = False

    class WikipediaRequest(BaseModel):
        titles: list[str] = Field(min_length=1, max_length=50)

    class TextRequest(BaseModel):
        name: str = Field(min_length=1, max_length=500)
        text: str

    class Message(BaseModel):
        role: Literal["system", "user", "assistant", "developer", "tool"]
        content: str | list[dict[str, Any]] | None = None

    class ChatRequest(BaseModel):
        model: str = MODEL_ID
        messages: list[Message] = Field(min_length=1, max_length=100)
        stream: bool = False
        max_tokens: int | None = Field(default=None, ge=1)
        temperature: float | None = None
        # Extensions (the openai package sends them with extra_body=...): chunks to retrieve, and
        # the sources to search, as /api/ask takes them.
        k: int | None = Field(default=None, ge=1, le=MAX_TOP_K)
        sources: list[str] | None = None

    router = APIRouter()

    def stream_answer(render: Callable[[Iterator[Any]], Iterator[str]], media_type: str, question: str,
                      history: Any, k: int | None, sources: list[str] | None) -> Any:
        """A streamed answer in ``render``'s wire format; a question refused up front is a 400."""
        try:
            events = rag.ask_stream(question, history, k=k, sources=sources or None)
            first = next(events, None)  # fail before the 200 is sent where we can
        except RagError as exc:
            return error(400, str(exc))
        started = itertools.chain([first] if first is not None else [], events)
        return StreamingResponse(render(started), media_type=media_type)

    def error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)

    def guarded(fn):
        """Run a route; the project's errors become a 4xx with their one sentence."""
        try:
            return fn()
        except NotFoundError as exc:
            return error(404, str(exc), "not_found")
        except RagError as exc:
            return error(400, str(exc))
        except Exception:  # the server keeps serving; the details go to the log, not the client
            log.exception("request failed")
            return error(500, "The server could not complete this request; see its log for details.", "server_error")

    @router.get("/api/health", tags=["service"])
    def health() -> Any:
        # pid: the CLI checks it against DATA_DIR/server.json to know it reached the server that owns the store.
        return guarded(lambda: {"status": "ok", "chunks": rag.store.count(), "generator": rag.generator.name,
                                "pid": os.getpid()})

    @router.post("/api/search", tags=["retrieval"])
    def search(req: SearchRequest) -> Any:
        def run() -> dict[str, Any]:
            hits = rag.search(req.query, req.k, sources=req.sources or None)
            return {"query": req.query, "k": req.k or rag.settings.top_k, "hits": [h.to_dict() for h in hits]}

        return guarded(run)

    @router.post("/api/ask", tags=["answers"])
    def ask(req: AskRequest) -> Any:
        history = [tuple(t) for t in req.history] or None
        if not req.stream:
            return guarded(lambda: rag.ask(req.question, history, k=req.k, sources=req.sources or None).to_dict())
        return stream_answer(_ndjson, "application/x-ndjson", req.question, history, req.k, req.sources)

    @router.get("/api/sources", tags=["sources"])
    def sources() -> Any:
        return guarded(lambda: [s.to_dict() for s in rag.sources()])

    @router.delete("/api/sources/{source:path}", tags=["sources"])
    def delete(source: str) -> Any:
        def run() -> dict[str, Any]:
            from ingest.uploads import remove_file

            deleted = rag.delete(source)
            remove_file(rag.settings.files_dir, source)  # an uploaded PDF's stored copy goes with it
            return {"deleted": deleted}

        return guarded(run)

    @router.post("/api/ingest/wikipedia", tags=["sources"])
    def ingest_wikipedia(req: WikipediaRequest) -> Any:
        return guarded(lambda: rag.ingest([rag.wikipedia_job(t) for t in req.titles]).to_dict())

    @router.post("/api/ingest/text", tags=["sources"])
    def ingest_text(req: TextRequest) -> Any:
        def run() -> dict[str, Any]:
            from ingest.index import SourceJob
            from rag.types import Document

            limit = rag.settings.max_pdf_bytes
            if len(req.text.encode("utf-8")) > limit:
                raise RagError(f"{req.name} is over the {limit / 2**20:.0f} MB upload limit; "
                               "split it or raise RAG_MAX_PDF_BYTES")
            doc = Document(source=req.name, text=req.text, kind="text", title=req.name)
            return rag.ingest([SourceJob(req.name, lambda: [doc])]).to_dict()

        return guarded(run)

    @router.post("/api/ingest/file", tags=["sources"])
    def ingest_file(file: UploadFile = File(...), password: str | None = Form(default=None)) -> Any:
        def run() -> dict[str, Any]:
            from ingest.uploads import NotAPDFError, stage_upload

            with tempfile.TemporaryDirectory() as tmp:
                raw = Path(tmp) / "upload.pdf"
                limit = rag.settings.max_pdf_bytes
                size = 0
                with raw.open("wb") as out:
                    while block := file.file.read(1 << 20):
                        size += len(block)
                        if size > limit:
                            raise RagError(f"{file.filename} is over the {limit / 2**20:.0f} MB upload limit; "
                                           "split it or raise RAG_MAX_PDF_BYTES")
                        out.write(block)
                try:
                    staged = stage_upload(rag.settings.files_dir, raw, file.filename or "upload.pdf")
                except NotAPDFError as exc:
                    raise RagError(str(exc)) from None
            # Keep the file (so citations link to it) only when it was ingested; a refused upload
            # must not replace a good copy stored before.
            try:
                report = rag.ingest([rag.pdf_job(staged.path, password=password or None, name=staged.name)])
            except BaseException:
                staged.discard()
                raise
            if staged.name in report.skipped:
                staged.discard()
            else:
                staged.commit()
            return report.to_dict()

        return guarded(run)

    @router.get("/v1/models", tags=["openai"])
    def models() -> Any:
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "rag"}]}

    @router.post("/v1/chat/completions", tags=["openai"])
    def chat_completions(req: ChatRequest) -> Any:
        turns = [(m.role, _text(m.content)) for m in req.messages if m.role in ("user", "assistant")]
        if not turns or turns[-1][0] != "user" or not turns[-1][1].strip():
            return error(400, "The last message must be a non-empty user message: the question to answer.")
        question, history = turns[-1][1], _pairs(turns[:-1])
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if not req.stream:
            def run() -> dict[str, Any]:
                answer = rag.ask(question, history or None, k=req.k, sources=req.sources or None)
                return {
                    "id": completion_id, "object": "chat.completion", "created": created, "model": req.model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": answer.text}}],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                    **_extras(answer),
                }

            return guarded(run)
        return stream_answer(lambda events: _sse(completion_id, created, req.model, events), "text/event-stream",
                             question, history or None, req.k, req.sources)

    return router


def _sse(completion_id: str, created: int, model: str, events: Iterator[Any]) -> Iterator[str]:
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
    yield chunk({}, "stop", **(_extras(final) if final is not None else {}))
    yield "data: [DONE]\n\n"


def _ndjson(events: Iterator[Any]) -> Iterator[str]:
    """/api/ask's stream: one JSON object per line, ``{"delta"}`` pieces, then ``{"answer"}`` or ``{"error"}``."""
    for kind, value in _events(events):
        if kind == "delta":
            body: dict[str, Any] = {"delta": value}
        elif kind == "answer":
            body = {"answer": value.to_dict()}
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


def _extras(answer: Any) -> dict[str, Any]:
    data = answer.to_dict()
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
