"""OpenAICompatGenerator against a real third-party server: llama-cpp-python's own, serving the SmolLM2 GGUF.

The server (``python -m llama_cpp.server``, the llamacpp extra with its ``server`` packages) is
started on a free loopback port for this module and stopped after it; the product talks to it
only through ``RAG_LLM=openai:http://127.0.0.1:PORT/v1#smollm2``, streamed. Skipped with a reason
when llama-cpp-python or its server packages are not installed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from rag import RAG
from rag.types import Answer
from tests.rag.generate.conftest import DENMARK, need_llama_cpp

SERVER_PACKAGES = ("llama_cpp.server", "sse_starlette", "starlette_context", "uvicorn", "fastapi", "pydantic_settings")
ALIAS = "smollm2"
START_TIMEOUT = 180.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL (``.../v1``) of a running llama-cpp-python server."""
    need_llama_cpp()
    missing = [m for m in SERVER_PACKAGES if find_spec(m.split(".")[0]) is None or find_spec(m) is None]
    if missing:
        pytest.skip(f"needs llama-cpp-python's server packages ({', '.join(missing)} missing): "
                    "pip install -e '.[llamacpp]'")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf), "--model_alias", ALIAS,
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"],
            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer within {START_TIMEOUT:.0f} s: "
                            f"{log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_server_serves_the_smollm2_gguf(llama_server: str) -> None:
    models = httpx.get(f"{llama_server}/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [ALIAS]


def test_answers_over_an_ingested_pdf_through_a_real_openai_compatible_server(table_pdf_store: Path,
                                                                              llama_server: str) -> None:
    rag = RAG(table_pdf_store, llm=f"openai:{llama_server}#{ALIAS}", max_new_tokens=32)
    *pieces, answer = list(rag.ask_stream(DENMARK, k=1))
    print("llama_cpp.server answered:", answer.text)
    assert isinstance(answer, Answer) and len(pieces) > 1 and all(isinstance(p, str) and p for p in pieces)
    assert answer.generator == f"openai:{ALIAS}@{llama_server}" and answer.prompt_format == "chat-template"
    assert answer.text.strip() and answer.sources[0].page == 3 and not answer.refused
