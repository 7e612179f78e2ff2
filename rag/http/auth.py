"""Optional login for ``rag serve``: which requests may use the server, and what a client sends.

Two settings turn it on (both empty by default, see ``rag.settings``):

- ``auth`` (``RAG_AUTH=user:password``): Gradio's login page guards the browser chat and its
  Gradio API; the same login is accepted as HTTP Basic everywhere.
- ``api_key`` (``RAG_API_KEY``): a bearer token, ``Authorization: Bearer <key>``, which is what
  OpenAI clients send as their ``api_key``. With a key but no ``auth``, the page's login takes
  any user name and the key as the password (``page_login``), so the page is locked too.

A third, ``collection_keys`` (``RAG_COLLECTION_KEYS='{"<key>": ["team-a"]}'``), binds further
bearer keys to collections: such a key is accepted on ``/api/``, ``/v1/`` and ``/files/`` only
(403 elsewhere: the page's Gradio API has no collection checks), and the request carries its
collections in the ASGI scope (:data:`SCOPE_KEY`), which every route of ``rag.http.api``
applies: it reads, lists, writes and deletes only in them, and a request naming another
collection is refused with a 403.

When any is set, every route of the app needs the key, the login, or the page's login
cookie (the cookie only where the page itself goes: its Gradio routes and ``GET /files/``,
which the chat's citation links open; never ``/api/`` or ``/v1/``), except the few in
:data:`PUBLIC_PATHS`: the login page and its static assets, and the API schema. Anything else
gets a 401 with a JSON error in the API's shape. Secrets are compared in constant time and
never appear in messages or logs.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Any, Awaitable, Callable, Mapping

from rag.settings import Settings

# Open without a login, and why: "/" is the login form while nobody is logged in (Gradio serves
# the page's shell and no data); /login takes the credentials; /logout only ends a session; the
# rest are the page's static files (scripts, styles, icons: the same for every install) and the
# HTTP API's schema (route shapes, no data). Everything else, found or not, needs credentials.
PUBLIC_PATHS = frozenset({"/", "/login", "/login/", "/logout", "/favicon.ico", "/theme.css", "/robots.txt",
                          "/manifest.json", "/pwa_icon", "/gradio_api/theme.css", "/openapi.json", "/docs",
                          "/docs/oauth2-redirect"})
PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon/")
# Where a browser session (the page's login cookie) is not enough: programs send the key or Basic.
API_PREFIXES = ("/api/", "/v1/")
# The routes a key bound to collections may use (each of them applies the binding).
BOUND_PREFIXES = API_PREFIXES + ("/files/",)
# Where RequireLogin puts the collections of a bound key for the routes (absent: every collection).
SCOPE_KEY = "rag.collections"


def login_required(settings: Settings) -> bool:
    """Whether the server asks for credentials at all (``auth``, ``api_key`` or ``collection_keys`` is set)."""
    return bool(settings.api_key or settings.login or settings.key_collections)


def bound_collections(header: str | None, settings: Settings) -> tuple[str, ...] | None:
    """The collections of the bound key an ``Authorization: Bearer`` header carries, or None for no bound key.

    Every bound key is compared (in constant time), so timing does not tell which one matched.
    """
    if not header or not settings.key_collections:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    sent = value.strip().encode("utf-8")
    found = None
    for key, names in settings.key_collections.items():
        if hmac.compare_digest(sent, key.encode("utf-8")) and found is None:
            found = names
    return found


def check_authorization(header: str | None, settings: Settings) -> bool:
    """Whether an ``Authorization`` header carries this server's API key or login.

    Args:
        header: the header's value, e.g. ``Bearer abc`` or ``Basic dXNlcjpwdw==``; None when absent.
        settings: the server's settings (``api_key``, ``auth``).

    Returns:
        True for ``Bearer <api_key>`` (when a key is set) or ``Basic <user:password>`` (when a
        login is set) with the right value; False otherwise.
    """
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and settings.api_key:
        return hmac.compare_digest(value.encode("utf-8"), settings.api_key.encode("utf-8"))
    if scheme.lower() == "basic" and settings.login:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        want_user, want_password = settings.login
        # Both comparisons run whatever the first says, so timing does not tell which part was wrong.
        user_ok = hmac.compare_digest(user.encode("utf-8"), want_user.encode("utf-8"))
        password_ok = hmac.compare_digest(password.encode("utf-8"), want_password.encode("utf-8"))
        return bool(sep) and user_ok and password_ok
    return False


def page_login(settings: Settings) -> Callable[[str, str], bool] | tuple[str, str] | None:
    """What the page's login accepts: ``auth``'s user and password, else any user with the API key.

    Returns:
        Gradio's ``auth`` argument: a (user, password) pair, a check function, or None (no login).
    """
    if settings.login:
        return settings.login
    if settings.api_key:
        key = settings.api_key.encode("utf-8")
        return lambda _user, password: hmac.compare_digest(str(password).encode("utf-8"), key)
    return None


def is_public(path: str) -> bool:
    """Whether ``path`` is open without a login (see :data:`PUBLIC_PATHS`)."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def client_headers(settings: Settings) -> dict[str, str]:
    """The ``Authorization`` header a client (the CLI) sends: the API key, else the login, else none."""
    if settings.api_key:
        return {"Authorization": f"Bearer {settings.api_key}"}
    if settings.login:
        user, password = settings.login
        token = base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")
        return {"Authorization": f"Basic {token}"}
    return {}


def refusal_message(settings: Settings, *, sent: bool) -> str:
    """The one sentence a refused request gets (it names the settings, never their values).

    Args:
        settings: the server's settings.
        sent: whether the request carried an ``Authorization`` header at all.
    """
    ways = []
    if settings.api_key:
        ways.append("the server's RAG_API_KEY as the header 'Authorization: Bearer <key>'")
    elif settings.key_collections:
        ways.append("a key of its RAG_COLLECTION_KEYS as the header 'Authorization: Bearer <key>'")
    if settings.login:
        ways.append("the user and password of its RAG_AUTH with HTTP Basic authentication")
    how = " or ".join(ways)
    if sent:
        return f"The credentials sent are not valid for this server; send {how}"
    return f"This server requires a login; send {how}"


class RequireLogin:
    """ASGI middleware: refuses every request but the public ones without valid credentials (401, JSON).

    Args:
        app: the ASGI app to guard.
        settings: the server's settings; with neither ``auth`` nor ``api_key`` set, everything passes.
        session_user: given the request's cookies, the logged-in user of a browser session or None
            (the page's own routes and its links to ``/files/`` work for a user who logged in).
    """

    def __init__(self, app: Any, settings: Settings,
                 session_user: Callable[[Mapping[str, str]], str | None] | None = None) -> None:
        self.app = app
        self.settings = settings
        self.session_user = session_user

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] not in ("http", "websocket") or not login_required(self.settings) or is_public(path):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        header = headers.get("authorization")
        session_ok = not path.startswith(API_PREFIXES) and self._has_session(headers.get("cookie"))
        scope.pop(SCOPE_KEY, None)  # only this middleware says what a request may see
        if check_authorization(header, self.settings) or session_ok:
            await self.app(scope, receive, send)
            return
        bound = bound_collections(header, self.settings)
        if bound is not None:
            if path.startswith(BOUND_PREFIXES):
                await self.app({**scope, SCOPE_KEY: bound}, receive, send)
                return
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _refuse(send, 403, "This API key is bound to collections, so it may use only /api/, /v1/ and "
                                     "/files/; use the server's RAG_API_KEY or its login for the chat page",
                          "permission_error")
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        challenge = 'Bearer realm="rag"' if self.settings.api_key or self.settings.key_collections \
            else 'Basic realm="rag"'
        await _refuse(send, 401, refusal_message(self.settings, sent=bool(header)), "authentication_error",
                      challenge)

    def _has_session(self, cookie_header: str | None) -> bool:
        if not cookie_header or self.session_user is None:
            return False
        from starlette.requests import cookie_parser

        try:
            return self.session_user(cookie_parser(cookie_header)) is not None
        except Exception:  # a broken session lookup must fail closed, never open
            return False


async def _refuse(send: Callable[[dict[str, Any]], Awaitable[None]], status: int, message: str, kind: str,
                  challenge: str | None = None) -> None:
    """Answer with the API's JSON error shape."""
    body = json.dumps({"error": {"message": message, "type": kind}}).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode("ascii"))]
    if challenge:
        headers.append((b"www-authenticate", challenge.encode("ascii")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
