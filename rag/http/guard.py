"""The door of ``rag serve``: which requests reach the app at all, and how big they may be.

A server on loopback is reachable from every web page its user opens, so before any route
runs, :class:`EdgeGuard` (ASGI middleware, outermost) refuses:

- a ``Host`` that is not an IP address, ``localhost``, the bound name or one of
  ``RAG_ALLOWED_HOSTS``: a page whose DNS name is re-pointed at 127.0.0.1 (DNS rebinding)
  sends its own name as Host;
- an ``Origin`` other than the server's own (the Host it was reached at) or one of
  ``RAG_ALLOWED_ORIGINS``, on any request (``Origin: null`` too): browsers send it on every
  cross-origin fetch, every POST and every preflight, so no page of another site or port can
  read or write through the page's Gradio API, ``/api`` or ``/v1``;
- without an Origin, a request the browser marks ``Sec-Fetch-Site: cross-site`` or
  ``same-site`` (another port of 127.0.0.1 is the same site), except a plain link followed to
  a page (``Sec-Fetch-Mode: navigate``), and a state-changing request whose ``Referer`` is
  foreign;
- a POST to ``/api/`` or ``/v1/`` in a content type an HTML form can send
  (``application/x-www-form-urlencoded``, ``multipart/form-data``, ``text/plain``, none)
  without the header ``X-Requested-With`` (which no page of another site can add without a
  preflight, and the preflight is refused): the CLI sends it with its uploads;
- a body over its limit: ``Content-Length`` is checked before the app runs, and the bytes
  actually received are counted, so a chunked body is cut off at the limit, never buffered
  whole (uploads: ``max_pdf_bytes``; a text source: ``max_text_bytes``; anything else:
  ``max_request_bytes``).

Every login cookie the app sets is rewritten to ``SameSite=Strict``, and pages may not be
framed by other sites. Refusals are JSON in the API's error shape, one sentence each.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

from rag.settings import Settings

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain", ""})
WRITE_PREFIXES = ("/api/", "/v1/")
UPLOAD_PATHS = ("/api/ingest/file", "/gradio_api/upload")
TEXT_PATHS = ("/api/ingest/text",)
# Room for the multipart framing and form fields around an uploaded file.
UPLOAD_OVERHEAD = 1 << 20


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


def host_name(netloc: str) -> str:
    """The host part of ``host[:port]`` (IPv6 brackets removed), lower-case."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1:netloc.find("]")] if "]" in netloc else netloc[1:]
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def _netloc(url: str) -> str:
    """``host:port`` of a URL, with the scheme's default port made explicit, lower-case."""
    parts = urlsplit(url.strip().lower())
    if not parts.hostname:
        return ""
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


def _host_netloc(host: str, scheme: str) -> str:
    return _netloc(f"{scheme}://{host}")


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class EdgeGuard:
    """ASGI middleware enforcing the Host, Origin, content-type and size rules above.

    Args:
        app: the ASGI app to guard.
        settings: ``allowed_origins``, ``allowed_hosts`` and the size limits.
        bound_host: the address the server listens on (a name there is an allowed Host).
    """

    def __init__(self, app: Any, settings: Settings, bound_host: str | None = None) -> None:
        self.app = app
        self.settings = settings
        self.hosts = set(settings.hosts) | {"localhost"}
        if bound_host and not is_ip(bound_host) and bound_host not in ("", "0.0.0.0", "::"):
            self.hosts.add(bound_host.lower())
        self.origins = {_netloc(o) for o in settings.origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self.refusal(scope, headers)
        if refusal is not None:
            status, message, kind = refusal
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _send_error(send, status, message, kind)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        limit, what = self.limit(str(scope.get("path", "")))
        declared = headers.get("content-length", "")
        if declared.strip().isdigit() and int(declared) > limit:
            await _send_error(send, 413, what, "request_too_large")
            return
        await self._bounded(scope, receive, send, limit, what)

    # -- the rules ------------------------------------------------------------------------
    def refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str, str] | None:
        """Why this request is refused, as (status, one sentence, error type), or None."""
        method = str(scope.get("method", "GET")).upper()
        path = str(scope.get("path", ""))
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        host = headers.get("host", "")
        name = host_name(host)
        if host and "*" not in self.hosts and not (is_ip(name) or name in self.hosts):
            return (403, f"This server does not answer to the host name {name!r} (a page whose name points at "
                         "this machine is refused); open it at its address, e.g. http://127.0.0.1, or add the "
                         "name to RAG_ALLOWED_HOSTS", "forbidden_host")
        own = _host_netloc(host, scheme) if host else ""
        origin = headers.get("origin")
        if origin is not None:
            where = _netloc(origin) if origin.strip().lower() != "null" else ""
            if not where or (where != own and where not in self.origins):
                return (403, f"Requests from pages of other sites (Origin {origin[:100]!r}) are refused; open the "
                             "chat at this server's own address, or add that origin to RAG_ALLOWED_ORIGINS",
                        "forbidden_origin")
        else:
            site = headers.get("sec-fetch-site", "")
            navigation = method in ("GET", "HEAD") and headers.get("sec-fetch-mode") == "navigate"
            if site in ("cross-site", "same-site") and not navigation:
                return (403, "Requests from pages of other sites are refused; open the chat at this server's "
                             "own address", "forbidden_origin")
            referer = headers.get("referer")
            if method in UNSAFE_METHODS and referer and _netloc(referer) not in (own, *self.origins):
                return (403, "Requests from pages of other sites (by their Referer) are refused; open the chat "
                             "at this server's own address", "forbidden_origin")
        if method == "POST" and path.startswith(WRITE_PREFIXES):
            kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if kind in FORM_TYPES and "x-requested-with" not in headers:
                return (415, f"A POST to {path} in {kind or 'no'} content type needs the header "
                             "'X-Requested-With' (any value), which a page of another site cannot send; send JSON, "
                             "or add the header", "invalid_request_error")
        return None

    def limit(self, path: str) -> tuple[int, str]:
        """The most body bytes a request to ``path`` may send, and the sentence a bigger one gets."""
        s = self.settings
        if path.startswith(UPLOAD_PATHS):
            return (s.max_pdf_bytes + UPLOAD_OVERHEAD,
                    f"The upload is over the {_mb(s.max_pdf_bytes)} limit; split the file or raise RAG_MAX_PDF_BYTES")
        if path in TEXT_PATHS:
            return (s.max_text_bytes + s.max_request_bytes,
                    f"The text is over the {_mb(s.max_text_bytes)} limit; split it or raise RAG_MAX_TEXT_BYTES")
        return (s.max_request_bytes,
                f"The request body is over the {_mb(s.max_request_bytes)} limit; send less, or raise "
                "RAG_MAX_REQUEST_BYTES")

    # -- plumbing -------------------------------------------------------------------------
    async def _bounded(self, scope: Scope, receive: Receive, send: Send, limit: int, what: str) -> None:
        """Run the app, counting body bytes; past ``limit`` answer 413 and feed the app a disconnect."""
        state = {"received": 0, "started": False, "refused": False}

        async def counted_receive() -> dict[str, Any]:
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["refused"] = True
                    if not state["started"]:
                        state["started"] = True
                        await _send_error(send, 413, what, "request_too_large")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            if state["refused"]:
                return  # the 413 went out; whatever the app says after the cut-off is dropped
            if message["type"] == "http.response.start":
                state["started"] = True
                message = {**message, "headers": _hardened(message.get("headers", []))}
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not state["refused"]:
                raise


def _hardened(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Response headers with every cookie ``SameSite=Strict`` and framing by other sites forbidden."""
    out = []
    framed = False
    for key, value in headers:
        lower = key.lower()
        if lower == b"set-cookie":
            parts = [p for p in value.split(b";") if not p.strip().lower().startswith(b"samesite")]
            value = b";".join([*parts, b" SameSite=Strict"])
        framed = framed or lower == b"x-frame-options"
        out.append((key, value))
    if not framed:
        out.append((b"x-frame-options", b"SAMEORIGIN"))
    return out


async def _send_error(send: Send, status: int, message: str, kind: str) -> None:
    body = json.dumps({"error": {"message": message, "type": kind}}).encode("utf-8")
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode("ascii")),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
