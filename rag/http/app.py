"""The server of ``rag serve``: one FastAPI app, its doors, and the uvicorn server that runs it.

Run it with ``rag serve`` (http://127.0.0.1:7860; ``--headless`` for the API without the
page), or from Python::

    from rag import RAG
    from rag.http.app import create_server
    server = create_server(RAG(), "127.0.0.1", 7860).start()   # background thread
    ...
    server.stop()

The app is the HTTP API (``rag.http.api``: REST, OpenAI-compatible, ``/files``), the citation
viewer (``rag.http.viewer``: ``/view``) and, unless
headless, the Gradio page (``ui.app``) mounted at ``/``; only then is Gradio imported.
Requests pass, outermost first: ``rag.http.guard.EdgeGuard`` (Host, Origin, content type,
body size), ``rag.http.auth.RequireLogin`` (when a key or login is set), CORS for the
origins in ``RAG_ALLOWED_ORIGINS`` only (which also turns Gradio's own CORS off: it answers
any localhost origin), then the routes.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from rag.service import RAG

log = logging.getLogger(__name__)

ASK_CONCURRENCY = 4
LOGIN_MESSAGE = "Log in with the user name and password of the server's RAG_AUTH."
KEY_LOGIN_MESSAGE = "Log in with any user name and the server's RAG_API_KEY as the password."


def create_app(rag: RAG, *, headless: bool = False, ask_concurrency: int = ASK_CONCURRENCY,
               blocks: Any = None, routers: Sequence[Any] = (), bound_host: str | None = None) -> Any:
    """The FastAPI app over ``rag``: the HTTP API, and the page unless ``headless``.

    Args:
        rag: the facade to serve.
        headless: serve ``/api``, ``/v1`` and ``/files`` only, without importing Gradio.
        ask_concurrency: how many questions the page answers at once.
        blocks: the page (default: ``ui.app.build_app(rag)``); ignored when headless.
        routers: more FastAPI ``APIRouter``s to serve; their routes win over the page's.
        bound_host: the address the server listens on (an allowed Host when it is a name).

    Returns:
        The ``fastapi.FastAPI`` app (its ``routes`` include the mounted page's).
    """
    from fastapi import FastAPI
    from starlette.middleware.cors import CORSMiddleware

    from rag.http.api import build_api, install_error_handlers
    from rag.http.auth import RequireLogin, page_login
    from rag.http.guard import EdgeGuard
    from rag.http.viewer import build_viewer

    settings = rag.settings
    app = FastAPI(title="rag", docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
    install_error_handlers(app)
    app.include_router(build_api(rag))
    app.include_router(build_viewer(rag))
    for router in routers:
        app.include_router(router)
    # Our CORS, added before the page is mounted: Gradio then leaves CORS to it, and no origin but
    # those listed gets a grant (none by default: the page is same-origin and needs none).
    app.add_middleware(CORSMiddleware, allow_origins=list(settings.origins), allow_credentials=True,
                       allow_methods=["*"], allow_headers=["*"])
    gradio_app = None
    if not headless:
        import gradio as gr

        from ui.app import CSS, build_app, upload_dir

        blocks = blocks or build_app(rag, ask_concurrency=ask_concurrency)
        login = page_login(settings)
        app = gr.mount_gradio_app(app, blocks, path="/", show_error=False, max_file_size=settings.max_pdf_bytes,
                                  footer_links=["api"], css=CSS, auth=login,
                                  auth_message=(LOGIN_MESSAGE if settings.login else KEY_LOGIN_MESSAGE)
                                  if login else None)
        gradio_app = _gradio_app(app)
        if gradio_app is not None:
            # Uploads land under this store's data directory, not Gradio's machine-wide temp dir
            # (where another Gradio server would serve them); the page removes each once ingested.
            gradio_app.uploaded_file_dir = str(upload_dir(settings))
        # Gradio refuses file inputs that name a server path outside its upload folder only once
        # the Blocks "has launched", which mount_gradio_app never marks; without this, a client
        # could have any readable server file copied into the cache and ingested.
        blocks.has_launched = True
    app.add_middleware(RequireLogin, settings=settings, session_user=_session_user(gradio_app))
    app.add_middleware(EdgeGuard, settings=settings, bound_host=bound_host)
    return app


def route_table(app: Any, prefix: str = "") -> list[tuple[str, frozenset[str]]]:
    """Every route ``app`` serves as (path template, methods), the mounted page's and routers' included.

    Args:
        app: a Starlette/FastAPI app (or router).
        prefix: the path it is mounted under.

    Returns:
        ("/api/ask", {"POST"}) pairs; websocket routes have the method "WEBSOCKET".
    """
    from starlette.routing import Mount

    table: list[tuple[str, frozenset[str]]] = []
    for route in getattr(app, "routes", []):
        included = getattr(route, "original_router", None)  # FastAPI's lazily included router
        if included is not None:
            table += route_table(included, prefix + getattr(route.include_context, "prefix", ""))
        elif isinstance(route, Mount):
            table += route_table(route.app, prefix + route.path)
        elif hasattr(route, "path"):
            methods = getattr(route, "methods", None) or {"WEBSOCKET"}
            table.append((prefix + route.path, frozenset(methods)))
    return table


def _gradio_app(app: Any) -> Any:
    """The Gradio ``App`` mounted in ``app``, or None."""
    from starlette.routing import Mount

    for route in app.routes:
        if isinstance(route, Mount) and hasattr(route.app, "tokens") and hasattr(route.app, "cookie_id"):
            return route.app
    return None


def _session_user(gradio_app: Any) -> Callable[[dict[str, str]], str | None]:
    """Given a request's cookies, the user logged in on the mounted Gradio page, or None.

    Reads Gradio's own session store (``App.tokens``, keyed by the ``access-token-<cookie_id>``
    cookie its ``/login`` sets); a test logs in through the page's ``/login`` and opens
    ``/files`` with the cookie, so a Gradio change that breaks this shows.
    """

    def user(cookies: dict[str, str]) -> str | None:
        if gradio_app is None:
            return None
        cid = gradio_app.cookie_id
        token = cookies.get(f"access-token-{cid}") or cookies.get(f"access-token-unsecure-{cid}")
        return gradio_app.tokens.get(token) if token else None

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


class Server:
    """The app on a uvicorn server bound to ``host:port`` (port 0: a free one).

    ``start()`` serves from a background thread (tests); ``serve_forever()`` blocks and
    stops on Ctrl-C (the CLI).
    """

    def __init__(self, rag: RAG, host: str = "127.0.0.1", port: int = 7860, *, headless: bool = False,
                 ask_concurrency: int = ASK_CONCURRENCY, routers: Sequence[Any] = (),
                 log_level: str = "warning") -> None:
        import uvicorn

        self.rag = rag
        self.host = host
        self.headless = headless
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port = self._sock.getsockname()[1]
        self.blocks = None
        if not headless:
            from ui.app import build_app

            self.blocks = build_app(rag, ask_concurrency=ask_concurrency)
        self.app = create_app(rag, headless=headless, blocks=self.blocks, routers=routers, bound_host=host)
        config = uvicorn.Config(self.app, log_level=log_level, timeout_graceful_shutdown=2,
                                ws="none", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self, timeout: float = 60) -> "Server":
        """Serve in a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="rag-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start on {self.url}")
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
        gradio_app = _gradio_app(self.app) if not self.headless else None
        if gradio_app is not None and hasattr(gradio_app, "stop_event"):
            # End the sessions' heartbeat streams (as Blocks.close does), else shutdown waits for them.
            gradio_app.stop_event.set()
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

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def create_server(rag: RAG, host: str = "127.0.0.1", port: int = 7860, **kwargs: Any) -> Server:
    """A server for the app over ``rag`` bound to ``host:port`` (call ``.start()`` or ``.serve_forever()``).

    Args:
        rag: the facade to serve.
        host: the address to listen on.
        port: the port (0: a free one).
        **kwargs: ``headless``, ``ask_concurrency``, ``routers``, ``log_level`` (see :class:`Server`).
    """
    return Server(rag, host, port, **kwargs)
