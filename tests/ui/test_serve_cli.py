"""`rag serve` starts the app on loopback, serves the page and the API, and stops on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rag.http.app import is_loopback


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("0.0.0.0", False), ("192.168.1.5", False), ("example.org", False)])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host, env, expected", [
    ("127.0.0.1", {}, None),
    ("0.0.0.0", {"RAG_AUTH": "alice:pw"}, None),
    ("0.0.0.0", {}, "Warning: listening on 0.0.0.0, not loopback, with no login: anyone who can reach this machine "
                    "can read and change your documents. Set RAG_AUTH=user:password (the chat page) and "
                    "RAG_API_KEY=<key> (programs), or use --host 127.0.0.1."),
    # The key now locks the page and its Gradio API too (its login takes the key as the password).
    ("192.168.1.5", {"RAG_API_KEY": "k"}, None),
])
def test_exposure_warning_names_the_fix(host: str, env: dict, expected: str | None) -> None:
    from rag.settings import Settings
    from rag.cli import exposure_warning

    warning = exposure_warning(host, Settings.from_env(env))
    if expected is None:
        assert warning is None
    else:
        assert warning is not None and warning.startswith(expected)


def test_rag_serve_runs_and_stops(tmp_path: Path) -> None:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "--data-dir", str(tmp_path / "data"), "serve",
                             "--port", "0"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        url = None
        deadline = time.monotonic() + 240
        lines = []
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stderr.readline()
            lines.append(line)
            if m := re.search(r"Serving on (http://127\.0\.0\.1:\d+/)", line):
                url = m.group(1)
        assert url, "".join(lines)
        assert not any("Warning: listening" in line for line in lines)
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and "gradio" in page.text.lower()
        assert httpx.get(url + "files/none.pdf", timeout=30).status_code == 404
        assert httpx.get(url + "gradio_api/info", timeout=30).json()["named_endpoints"].keys() >= {
            "/ask", "/upload", "/sources", "/delete", "/add_wikipedia"}
        assert json.loads((tmp_path / "data" / "server.json").read_text())["url"] == url
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert not (tmp_path / "data" / "server.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
