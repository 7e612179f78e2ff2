"""Use a running ``rag serve`` instead of opening its store: the server file and an HTTP client.

Chroma's embedded store (``PersistentClient``) belongs to one process: a running server keeps
its HNSW index in memory and never sees another process's writes, and two processes writing
the same directory can corrupt it. So ``rag serve`` records itself in ``DATA_DIR/server.json``
(its URL and pid; removed when it stops), and the CLI, finding a live server there, sends its
commands to that server's HTTP API (``rag.http.api``) through :class:`RemoteRAG`.

A server file is stale, and ignored, when its process is gone or nothing listens at its URL.
A process that accepts the connection but does not answer is *not* ignored (opening the store
beside it could corrupt it): that is an error asking to try again.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import quote

import httpx

from rag.http.auth import client_headers
from rag.errors import NotFoundError, RemoteError
from rag.settings import Settings
from rag.types import Answer, CollectionInfo, Hit, IngestReport, SourceInfo

SERVER_FILE = "server.json"
PROBE_TIMEOUT = 10.0  # seconds the health check may take; the server may be busy answering others
REQUEST_TIMEOUT = 120.0
WIKIPEDIA_BATCH = 50  # the API's limit on titles per request


@dataclass(frozen=True)
class ServerInfo:
    """What ``server.json`` says: where the server listens and which process it is."""

    url: str
    pid: int


def server_file(data_dir: str | Path) -> Path:
    """Where a server records itself for ``data_dir``."""
    return Path(data_dir) / SERVER_FILE


def connect_url(host: str, port: int) -> str:
    """The URL a local client uses to reach a server bound to ``host:port`` (wildcards become loopback)."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def write_server_file(data_dir: str | Path, url: str, pid: int | None = None) -> Path:
    """Record a running server for ``data_dir`` (written whole, via a rename, so readers never see half).

    Args:
        data_dir: the store's directory.
        url: where the server answers, e.g. ``http://127.0.0.1:7860/``.
        pid: the server's process id (default: this process).

    Returns:
        The file written.
    """
    path = server_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{SERVER_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"url": url, "pid": pid or os.getpid()}), encoding="utf-8")
    os.replace(tmp, path)
    return path


def remove_server_file(data_dir: str | Path, pid: int | None = None) -> bool:
    """Remove the server file if it names ``pid`` (default: this process); another server's file stays.

    Returns:
        True when a file was removed.
    """
    info = read_server_file(data_dir)
    if info is None or info.pid != (pid or os.getpid()):
        return False
    server_file(data_dir).unlink(missing_ok=True)
    return True


def read_server_file(data_dir: str | Path) -> ServerInfo | None:
    """The server file's contents, or None when there is none or it is unreadable."""
    try:
        data = json.loads(server_file(data_dir).read_text(encoding="utf-8"))
        return ServerInfo(url=str(data["url"]), pid=int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    try:
        # Field 3 of /proc/PID/stat is the state; Z is a process that exited but was not reaped.
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def find_server(settings: Settings) -> "RemoteRAG | None":
    """The live server that owns ``settings.data_dir``, or None when there is none (or its file is stale).

    Args:
        settings: this process's settings (``data_dir``; ``api_key`` or ``auth`` are sent to the server).

    Returns:
        A client for the server, or None.

    Raises:
        RemoteError: a server owns the directory but refused the credentials or did not answer.
    """
    info = read_server_file(settings.data_dir)
    if info is None or not pid_alive(info.pid):
        return None
    client = RemoteRAG(info.url, settings, pid=info.pid)
    try:
        health = client.health(timeout=PROBE_TIMEOUT)
    except RemoteError as exc:
        if exc.status is None and isinstance(exc.__cause__, httpx.ConnectError):
            client.close()
            return None  # nothing listens there any more: a stale file
        client.close()
        if exc.status in (401, 403):
            raise RemoteError(f"The server running at {info.url} owns {settings.data_dir} and refused this "
                              f"command: {exc}", exc.status) from None
        raise
    if health.get("status") != "ok" or health.get("pid") != info.pid:
        client.close()
        return None  # some other program answers at that address now
    client.server_generator = str(health.get("generator") or "")
    return client


class RemoteRAG:
    """The facade's calls (search, ask, sources, delete, ingest) made on a running server over HTTP.

    Results are the same types ``rag.RAG`` returns (``Hit``, ``Answer``, ``SourceInfo``,
    ``IngestReport``), rebuilt from the API's JSON; errors are the project's own.
    """

    remote = True

    def __init__(self, url: str, settings: Settings, *, pid: int | None = None) -> None:
        """Connect to the server at ``url``.

        Args:
            url: its base URL, e.g. ``http://127.0.0.1:7860/``.
            settings: this process's settings: ``top_k`` for searches, and the credentials to send.
            pid: the server's process id, when known.
        """
        self.url = url.rstrip("/") + "/"
        self.settings = settings
        self.pid = pid
        self.server_generator: str | None = None  # the server's generator name, once its health was read
        # X-Requested-With: the server refuses form-encoded writes without it (a page of another
        # site cannot send it), and uploads are multipart.
        self._http = httpx.Client(base_url=self.url, headers={**client_headers(settings), "X-Requested-With": "rag"},
                                  timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=5.0))

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> "RemoteRAG":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def generator_notice(self) -> str | None:
        """None: the server decides how answers are made (its page shows the notice)."""
        return None

    # -- calls ---------------------------------------------------------------------------------
    def health(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The server's ``/api/health``: status, chunks, generator, pid."""
        return self._call("GET", "api/health", timeout=timeout or REQUEST_TIMEOUT)

    def search(self, query: str, k: int | None = None, *, sources: Sequence[str] | None = None,
               collection: str | Sequence[str] | None = None) -> list[Hit]:
        """Like ``RAG.search``, on the server (``k`` defaults to this process's ``top_k``)."""
        body = {"query": query, "k": k or self.settings.top_k, "sources": list(sources) if sources else None,
                "collection": _names(collection)}
        return [Hit.from_dict(h) for h in self._call("POST", "api/search", json=body)["hits"]]

    def ask(self, question: str, history: Sequence[tuple[str, str]] | None = None, *, k: int | None = None,
            sources: Sequence[str] | None = None, collection: str | Sequence[str] | None = None) -> Answer:
        """Like ``RAG.ask``, answered by the server's generator."""
        body = {"question": question, "history": [list(t) for t in history or []], "k": k,
                "sources": list(sources) if sources else None, "collection": _names(collection)}
        # No read timeout: a language model on a CPU may take minutes; Ctrl-C stops waiting.
        return Answer.from_dict(self._call("POST", "api/ask", json=body, timeout=None))

    def ask_stream(self, question: str, history: Sequence[tuple[str, str]] | None = None, *,
                   k: int | None = None, sources: Sequence[str] | None = None,
                   collection: str | Sequence[str] | None = None) -> Iterator[str | Answer]:
        """Like ``RAG.ask_stream``: the text as the server's generator writes it, then the Answer.

        Raises:
            RemoteError: the server refused the question, failed midway, or could not be reached.
        """
        body = {"question": question, "history": [list(t) for t in history or []], "k": k,
                "sources": list(sources) if sources else None, "collection": _names(collection), "stream": True}
        answered = False
        with self._transport_errors(None):
            # No read timeout, as in ask(): the first piece may take a while on a CPU.
            with self._http.stream("POST", "api/ask", json=body,
                                   timeout=httpx.Timeout(None, connect=5.0)) as response:
                if response.status_code >= 400:
                    response.read()
                    raise RemoteError(_error_message(response), response.status_code)
                for raw in response.iter_lines():
                    if not raw.strip():
                        continue
                    try:
                        event = json.loads(raw)
                    except ValueError:
                        raise RemoteError(f"The server at {self.url} sent a line that is not JSON in its answer "
                                          "stream; is it a rag server of this version?") from None
                    if "delta" in event:
                        yield str(event["delta"])
                    elif "answer" in event:
                        answered = True
                        yield Answer.from_dict(event["answer"])
                    elif "error" in event:
                        raise RemoteError(str(event["error"].get("message") or event["error"]))
        if not answered:
            raise RemoteError(f"The server at {self.url} ended the answer before it was complete; ask again")

    def sources(self, *, collection: str | Sequence[str] | None = None) -> list[SourceInfo]:
        """Like ``RAG.sources``."""
        params = [("collection", c) for c in _names(collection) or []]
        return [SourceInfo.from_dict(s) for s in self._call("GET", "api/sources", params=params)]

    def collections(self) -> list[CollectionInfo]:
        """Like ``RAG.collections``."""
        return [CollectionInfo.from_dict(c) for c in self._call("GET", "api/collections")]

    def delete_collection(self, name: str) -> CollectionInfo:
        """Like ``RAG.delete_collection``."""
        return CollectionInfo.from_dict(self._call("DELETE", "api/collections/" + quote(name, safe=""))["deleted"])

    def delete(self, source: str, *, collection: str | None = None) -> int:
        """Like ``RAG.delete`` (the server also removes an uploaded PDF's stored copy).

        Raises:
            NotFoundError: no such source.
        """
        params = {"collection": collection} if collection else None
        try:
            return int(self._call("DELETE", "api/sources/" + quote(source, safe=""), params=params)["deleted"])
        except RemoteError as exc:
            if exc.status == 404:
                raise NotFoundError(source, str(exc)) from None
            raise

    def ingest_file(self, path: str | Path, *, password: str | None = None,
                    collection: str | None = None) -> IngestReport:
        """Upload one PDF to be ingested; a file the server refuses is reported in ``skipped``.

        The server stores it under ``DATA_DIR/files`` (so citations link to it) under a
        sanitized name, which is also its source name.
        """
        path = Path(path)
        try:
            data = {k: v for k, v in (("password", password), ("collection", collection)) if v}
            with path.open("rb") as fh:
                return self._ingest("api/ingest/file", path.name, files={"file": (path.name, fh, "application/pdf")},
                                    data=data or None)
        except OSError:
            return IngestReport(skipped={path.name: f"No file at '{path}'; check the path"})

    def ingest_text(self, name: str, text: str, *, collection: str | None = None) -> IngestReport:
        """Ingest plain text as source ``name`` (what ``rag ingest notes.md`` does in-process)."""
        return self._ingest("api/ingest/text", name, json={"name": name, "text": text, "collection": collection})

    def ingest_wikipedia(self, titles: Sequence[str], *, collection: str | None = None) -> IngestReport:
        """Ingest Wikipedia pages by exact title, in batches the API accepts."""
        report = IngestReport()
        for i in range(0, len(titles), WIKIPEDIA_BATCH):
            batch = list(titles[i:i + WIKIPEDIA_BATCH])
            report.merge(IngestReport.from_dict(
                self._call("POST", "api/ingest/wikipedia", json={"titles": batch, "collection": collection},
                           timeout=None)))
        return report

    # -- plumbing ------------------------------------------------------------------------------
    def _ingest(self, path: str, name: str, **kwargs: Any) -> IngestReport:
        try:
            # No read timeout: embedding a long PDF on a busy CPU takes minutes.
            return IngestReport.from_dict(self._call("POST", path, timeout=None, **kwargs))
        except RemoteError as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (401, 403):
                return IngestReport(skipped={name: str(exc)})  # this source is refused; the batch goes on
            raise

    @contextmanager
    def _transport_errors(self, timeout: float | None) -> Iterator[None]:
        """Turn httpx's connection and timeout errors into one-sentence RemoteErrors."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise RemoteError(f"The server at {self.url} did not answer within {timeout or 0:.0f} s; it may be "
                              "busy, so try again, or stop it to work on the store directly") from exc
        except httpx.TransportError as exc:
            raise RemoteError(f"Could not reach the server at {self.url} ({type(exc).__name__}); check that "
                              "`rag serve` is still running") from exc

    def _call(self, method: str, path: str, *, timeout: float | None = REQUEST_TIMEOUT, **kwargs: Any) -> Any:
        with self._transport_errors(timeout):
            response = self._http.request(method, path, timeout=httpx.Timeout(timeout, connect=5.0), **kwargs)
        if response.status_code >= 400:
            raise RemoteError(_error_message(response), response.status_code)
        try:
            return response.json()
        except ValueError:
            raise RemoteError(f"The server at {self.url} sent a response that is not JSON "
                              f"(HTTP {response.status_code}); is it a rag server?", response.status_code) from None


def _names(collection: str | Sequence[str] | None) -> list[str] | None:
    """A ``collection`` argument as the API's list (None: every collection)."""
    if collection is None:
        return None
    names = [collection] if isinstance(collection, str) else list(collection)
    return names or None


def _error_message(response: httpx.Response) -> str:
    """The one sentence in an error response: our ``{"error": {"message"}}``, FastAPI's ``detail``, or the status."""
    try:
        body = response.json()
    except ValueError:
        return f"The server answered HTTP {response.status_code}"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        detail = body.get("detail")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            where = ".".join(str(p) for p in detail[0].get("loc", [])[1:])
            return f"The server refused the request: {where + ': ' if where else ''}{detail[0].get('msg', detail[0])}"
        if detail:
            return f"The server refused the request: {detail}"
    return f"The server answered HTTP {response.status_code}"
