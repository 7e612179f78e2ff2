"""A loopback server that speaks OpenAI's chat completions SSE protocol byte for byte.

What OpenAICompatGenerator talks to in tests, since no vLLM/TGI server can run here: it frames
``chat.completion.chunk`` events exactly as vLLM and OpenAI do and writes them in small pieces,
as a streaming server flushes them. The ``server`` fixture (tests/rag/conftest.py) wraps it.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator


def sse_chunk(content: str | None = None, *, role: str | None = None, finish: str | None = None) -> bytes:
    """One ``chat.completion.chunk`` event exactly as vLLM and OpenAI frame it."""
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    event = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "tiny",
             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


def completion(pieces: list[str], *, done: bool = True) -> bytes:
    body = sse_chunk(role="assistant", content="")
    body += b"".join(sse_chunk(p) for p in pieces)
    body += sse_chunk(finish="stop")
    return body + (b"data: [DONE]\n\n" if done else b"")


@dataclass
class FakeServer:
    """Records requests; ``reply(request_json) -> (status, content_type, body bytes)`` decides the answer."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    reply: Callable[[dict[str, Any]], tuple[int, str, bytes]] = lambda body: (200, "text/event-stream",
                                                                               completion(["Hello", " world"]))


@contextmanager
def openai_server() -> Iterator[FakeServer]:
    """A loopback chat-completions server on a free port; ``FakeServer.url`` ends in ``/v1``."""
    state = FakeServer(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            state.requests.append({"path": self.path, "headers": dict(self.headers), "json": body})
            status, ctype, payload = state.reply(body)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            # Byte by byte in small writes, as a streaming server flushes them.
            for i in range(0, len(payload), 7):
                self.wfile.write(payload[i:i + 7])
                self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
