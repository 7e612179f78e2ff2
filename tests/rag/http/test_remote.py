"""The CLI while `rag serve` runs: commands go through the real server, searches never fail during an ingest."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from rag.cli import main
from rag.http.remote import pid_alive, read_server_file, remove_server_file, server_file, write_server_file
from tests.conftest import ROOT

API_KEY = "test-key-7f3a9c"
ZEN = "011-google-doc-document_google-doc-document.pdf"  # "Errors should never pass silently", one page
MORE = ["004-pdflatex-4-pages_pdflatex-4-pages.pdf", "026-latex-multicolumn_multicolumn.pdf"]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", "CI": os.environ.get("CI", ""),
           **extra}
    return {k: v for k, v in env.items() if v != ""}


def _cli(*args: str, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=_env(**extra_env), timeout=300)


def no_gradio_path(tmp_path: Path) -> str:
    """A PYTHONPATH under which ``import gradio`` fails, as on a machine without the ``ui`` extra."""
    blocker = tmp_path / "no-gradio" / "gradio"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("gradio is not installed here", name="gradio")\n')
    return os.pathsep.join([str(blocker.parent), str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)


@pytest.fixture
def served(_isolated_data_dir: Path, tmp_path: Path):
    """`rag serve --headless --port 0` as its own process on this test's RAG_DATA_DIR, with an API key.

    Gradio cannot be imported in it: the API, /files and the CLI's use of the server work without it.
    """
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--port", "0", "--headless"], cwd=ROOT,
                            text=True, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            env=_env(RAG_API_KEY=API_KEY, RAG_INGEST_BATCH="8", PYTHONPATH=no_gradio_path(tmp_path)))
    lines: list[str] = []
    url = None
    deadline = time.monotonic() + 300
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        line = proc.stderr.readline()
        lines.append(line)
        if m := re.search(r"Serving on (http://127\.0\.0\.1:\d+/)", line):
            url = m.group(1)
    if url is None:
        proc.kill()
        proc.wait()
        pytest.fail("rag serve did not start:\n" + "".join(lines))
    threading.Thread(target=lambda: [lines.append(x) for x in proc.stderr], daemon=True).start()
    try:
        yield proc, url, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_commands_go_through_the_running_server(served, pdf_dir: Path, _isolated_data_dir: Path,
                                                    tmp_path: Path) -> None:
    proc, url, server_log = served
    info = read_server_file(_isolated_data_dir)
    assert info is not None and info.url == url and info.pid == proc.pid
    auth = {"Authorization": f"Bearer {API_KEY}"}
    samples = pdf_dir / "sample-files"

    first = _cli("ingest", str(pdf_dir / "pypdf-resources" / "crazyones.pdf"), "--json", RAG_API_KEY=API_KEY)
    assert first.returncode == 0, first.stderr
    assert f"Using the server running at {url}" in first.stderr
    report = json.loads(first.stdout)
    assert list(report) == ["added", "replaced", "unchanged", "skipped"] and list(report["added"]) == ["crazyones.pdf"]
    assert report["added"]["crazyones.pdf"] >= 1 and not any(report[k] for k in ("replaced", "unchanged", "skipped"))

    # Searches against the server while the CLI ingests three more PDFs (in steps of 8 chunks).
    searches: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def search_forever() -> None:
        with httpx.Client(base_url=url, headers=auth, timeout=60) as http:
            while not stop.is_set():
                try:
                    r = http.post("api/search", json={"query": "the misfits, the rebels, the troublemakers", "k": 3})
                    if r.status_code != 200:
                        failures.append(f"HTTP {r.status_code}: {r.text[:200]}")
                    elif r.json()["hits"][0]["source"] != "crazyones.pdf":
                        failures.append(f"wrong top hit: {r.json()['hits'][0]['source']}")
                    else:
                        searches.append(r.json()["hits"][0]["source"])
                except Exception as exc:  # every failure is reported below
                    failures.append(repr(exc))

    thread = threading.Thread(target=search_forever)
    thread.start()
    try:
        started = time.monotonic()
        ingest = _cli("ingest", str(samples / ZEN), *(str(samples / m) for m in MORE), RAG_API_KEY=API_KEY)
        during = len(searches)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join(120)
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    assert "Using the server running at" in ingest.stderr
    assert re.search(r"Ingested 3 source\(s\): 3 added, 0 replaced, 0 unchanged; \d+ chunk\(s\) written\.", ingest.stdout)
    assert not failures, failures[:5]
    assert during >= 3, f"only {during} searches ran during the {elapsed:.1f} s ingest"

    # The server sees the new documents at once (an in-process ingest would not reach its index).
    hits = httpx.post(f"{url}api/search", json={"query": "Errors should never pass silently", "k": 1},
                      headers=auth, timeout=60).json()["hits"]
    assert hits[0]["source"] == ZEN
    found = _cli("search", "Errors should never pass silently", "-k", "2", "--json", RAG_API_KEY=API_KEY)
    out = json.loads(found.stdout)
    assert out["query"] == "Errors should never pass silently" and out["k"] == 2 and len(out["hits"]) == 2
    assert set(out["hits"][0]) == {"id", "score", "text", "source", "kind", "title", "url", "section", "page",
                                   "start", "end", "collection"}
    assert (out["hits"][0]["source"], out["hits"][0]["page"], out["hits"][0]["kind"]) == (ZEN, 1, "pdf")
    # Its url is the server's viewer at the cited passage.
    assert out["hits"][0]["url"] == f"{url}view/{ZEN}?page=1&chunk={out['hits'][0]['id']}#cited"
    # The upload is stored beside the server's store, so its citations open it.
    assert (_isolated_data_dir / "files" / ZEN).read_bytes() == (samples / ZEN).read_bytes()

    # The other commands, in-process through click (no server-side difference), with the key from settings.
    runner = CliRunner()
    env = {"RAG_API_KEY": API_KEY}
    listed = runner.invoke(main, ["sources", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert sorted(s["source"] for s in json.loads(listed.stdout)) == sorted(["crazyones.pdf", ZEN, *MORE])
    text = tmp_path / "notes.md"
    text.write_text("The lighthouse keeper Marta Velasquez painted the tower red in 1911.", encoding="utf-8")
    noted = runner.invoke(main, ["ingest", str(text), "--json"], env=env)
    assert json.loads(noted.stdout)["added"] == {"notes.md": 1}
    answer = runner.invoke(main, ["ask", "Who painted the lighthouse tower red?", "--json"], env=env)
    assert answer.exit_code == 0, answer.output
    answered = json.loads(answer.stdout)
    assert answered["citations"][0]["source"] == "notes.md" and "Velasquez" in answered["answer"]
    assert set(answered) == {"answer", "citations", "sources", "query", "generator", "prompt_format", "refused"}
    human = runner.invoke(main, ["search", "Who painted the lighthouse?", "-k", "1"], env=env)
    assert human.stdout.startswith("1. [") and "notes.md" in human.stdout

    deleted = runner.invoke(main, ["delete", ZEN], env=env)
    assert deleted.exit_code == 0 and f"Deleted {ZEN} (" in deleted.stdout
    assert not (_isolated_data_dir / "files" / ZEN).exists()
    after = json.loads(runner.invoke(main, ["search", "Errors should never pass silently", "--json"], env=env).stdout)
    assert ZEN not in {h["source"] for h in after["hits"]}
    missing = runner.invoke(main, ["delete", ZEN], env=env)
    assert missing.exit_code == 1 and f"No source named '{ZEN}' is indexed" in missing.stderr

    # Without the key the server refuses, and the CLI says so instead of opening the store beside it.
    refused = _cli("sources", RAG_API_KEY="")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith(f"Error: The server running at {url} owns ")
    assert "requires a login" in refused.stderr and API_KEY not in refused.stderr

    # A second server on the same store is refused.
    second = _cli("serve", "--port", "0", RAG_API_KEY=API_KEY)
    assert second.returncode == 1
    assert f"is already running at {url} (pid {proc.pid})" in second.stderr

    # A clean stop removes the server file; the CLI then works on the store itself.
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    assert not server_file(_isolated_data_dir).exists()
    here = runner.invoke(main, ["sources", "--json"])
    assert here.exit_code == 0 and "Using the server" not in here.stderr
    assert sorted(s["source"] for s in json.loads(here.stdout)) == sorted(["crazyones.pdf", "notes.md", *MORE])
    assert not any(API_KEY in line for line in server_log)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("content", [
    "dead pid",
    "live pid, nothing listening",
    "not json {",
    '{"url": "http://127.0.0.1:1/"}',
])
def test_a_stale_or_broken_server_file_is_ignored(content: str, _isolated_data_dir: Path) -> None:
    if content == "dead pid":
        write_server_file(_isolated_data_dir, f"http://127.0.0.1:{_free_port()}/", pid=_dead_pid())
    elif content == "live pid, nothing listening":
        write_server_file(_isolated_data_dir, f"http://127.0.0.1:{_free_port()}/", pid=os.getpid())
    else:
        _isolated_data_dir.mkdir(parents=True)
        server_file(_isolated_data_dir).write_text(content, encoding="utf-8")
    result = CliRunner().invoke(main, ["sources", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [] and "Using the server" not in result.stderr


def test_server_file_is_removed_only_by_its_own_server(_isolated_data_dir: Path) -> None:
    write_server_file(_isolated_data_dir, "http://127.0.0.1:7860/", pid=4242)
    assert read_server_file(_isolated_data_dir).pid == 4242
    assert remove_server_file(_isolated_data_dir) is False  # not this process's file
    assert server_file(_isolated_data_dir).exists()
    assert remove_server_file(_isolated_data_dir, pid=4242) is True
    assert not server_file(_isolated_data_dir).exists()
    assert pid_alive(os.getpid()) and not pid_alive(_dead_pid())
