"""`rag serve` starts the app on loopback, serves the page and the API, and stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ui.app import is_loopback


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("0.0.0.0", False), ("192.168.1.5", False), ("example.org", False)])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


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
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
