"""Crash-safe writes: every source is exactly its old or exactly its new version after any kill.

In-process tests stop a write at a chosen step the way a crash does (nothing after that
step runs, no clean-up) and reopen the data directory; the kill tests SIGKILL a real
`rag serve` during an upload or a re-upload of the 117-page lecture and restart it.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from ingest.files import STAGING, stage_upload
from ingest.journal import Journal
from rag import RAG
from tests.conftest import ROOT
from tests.ingest.store_checks import pdf_pages

NAME = "lecture.pdf"
TEXT_V1 = " ".join(f"Paragraph {i} says the river Thames flows through town {i}." for i in range(120))
TEXT_V2 = TEXT_V1.replace("Thames", "Severn")  # every chunk changes


class Crash(BaseException):
    """Stands for SIGKILL: raised at a chosen step, with the in-process clean-up disabled."""


def _crash_at(monkeypatch: pytest.MonkeyPatch, rag: RAG, method: str, after_calls: int) -> None:
    """Make ``rag.store.<method>`` die on its call number ``after_calls`` and stop the journal from tidying up."""
    original = getattr(rag.store, method)
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after_calls:
            raise Crash(method)
        return original(*args, **kwargs)

    monkeypatch.setattr(rag.store, method, dying)
    _die_without_cleanup(monkeypatch, rag)


def _die_without_cleanup(monkeypatch: pytest.MonkeyPatch, rag: RAG) -> None:
    """A killed process repairs and removes nothing; the kernel only releases its locks."""
    from ingest.files import StagedFile

    def release(obj) -> None:
        for attr in ("fd", "_lock_fd"):
            if getattr(obj, attr, None) is not None:
                os.close(getattr(obj, attr))
                setattr(obj, attr, None)

    monkeypatch.setattr(rag.journal, "abort", lambda store, entry: release(entry))
    monkeypatch.setattr(StagedFile, "discard", release)


def _text_ids(rag: RAG, text: str, name: str) -> set[str]:
    from rag.types import Document

    return {c.id for c in rag.indexer.chunk([Document(source=name, text=text, kind="text", title=name)])}


def assert_consistent(data_dir: Path) -> RAG:
    """Both indexes hold the same ids, every source is complete, no manifest or staging folder is left."""
    rag = RAG(data_dir)
    store = rag.store  # opening settles what a crash left
    chroma_ids = set(store.vectors.dump())
    assert store.keywords.all_ids() == chroma_ids
    for info in rag.sources():
        assert store.ids_for(info.source, complete=True) == store.ids_for(info.source, complete=False)
        assert info.chunks == len(store.ids_for(info.source))
    journal = data_dir / "journal"
    assert not journal.exists() or list(journal.iterdir()) == []
    staging = data_dir / "files" / STAGING
    assert not staging.exists() or list(staging.iterdir()) == []
    return rag


@pytest.mark.parametrize("calls", [1, 2])
def test_a_replacement_killed_while_adding_chunks_rolls_back_to_the_old_version(
        rag: RAG, monkeypatch: pytest.MonkeyPatch, calls: int) -> None:
    rag.settings = rag.settings.replace(ingest_batch=2)
    rag.add_text(TEXT_V1, name="thames.txt")
    old = rag.store.ids_for("thames.txt")
    assert len(old) >= 6
    _crash_at(monkeypatch, rag, "add", calls)
    with pytest.raises(Crash):
        rag.add_text(TEXT_V2, name="thames.txt")
    assert rag.store.ids_for("thames.txt", complete=False) != old  # the crash left a mix on disk

    after = assert_consistent(rag.settings.data_dir)
    assert after.store.ids_for("thames.txt") == old
    assert [s.source for s in after.sources()] == ["thames.txt"]


def test_a_new_source_killed_midway_is_gone_not_half_listed(rag: RAG, monkeypatch: pytest.MonkeyPatch) -> None:
    rag.settings = rag.settings.replace(ingest_batch=2)
    rag.add_text("Mount Fuji is the highest mountain in Japan.", name="fuji.txt")
    _crash_at(monkeypatch, rag, "add", 2)
    with pytest.raises(Crash):
        rag.add_text(TEXT_V1, name="thames.txt")
    assert rag.store.ids_for("thames.txt", complete=False)

    after = assert_consistent(rag.settings.data_dir)
    assert [s.source for s in after.sources()] == ["fuji.txt"]
    assert all(h.source == "fuji.txt" for h in after.search("river Thames town", k=5))


def test_a_replacement_killed_while_deleting_stale_chunks_rolls_forward(
        rag: RAG, monkeypatch: pytest.MonkeyPatch) -> None:
    rag.add_text(TEXT_V1, name="thames.txt")
    new = _text_ids(rag, TEXT_V2, "thames.txt")
    _crash_at(monkeypatch, rag, "delete_ids", 0)
    with pytest.raises(Crash):
        rag.add_text(TEXT_V2, name="thames.txt")

    after = assert_consistent(rag.settings.data_dir)
    assert after.store.ids_for("thames.txt") == new


def test_an_upload_killed_before_its_file_moved_keeps_the_old_file_beside_the_old_chunks(
        rag: RAG, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.pdfgen import make_pdf

    v1, v2 = tmp_path / "v1.pdf", tmp_path / "v2.pdf"
    make_pdf(["The first version talks about apples. " * 30], v1)
    make_pdf(["The second version talks about pears. " * 30, "And a second page about plums."], v2)
    rag.upload(v1, name="fruit.pdf")
    old = rag.store.ids_for("fruit.pdf")
    _crash_at(monkeypatch, rag, "add", 0)
    with pytest.raises(Crash):
        rag.upload(v2, name="fruit.pdf")
    assert list((rag.settings.files_dir / STAGING).iterdir())  # the killed upload's staged copy

    after = assert_consistent(rag.settings.data_dir)
    assert after.store.ids_for("fruit.pdf") == old
    assert (after.settings.files_dir / "fruit.pdf").read_bytes() == v1.read_bytes()


def test_an_upload_killed_after_its_chunks_are_in_rolls_forward_with_its_file(
        rag: RAG, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.pdfgen import make_pdf

    v1, v2 = tmp_path / "v1.pdf", tmp_path / "v2.pdf"
    make_pdf(["The first version talks about apples. " * 30], v1)
    make_pdf(["The second version talks about pears. " * 30], v2)
    rag.upload(v1, name="fruit.pdf")
    monkeypatch.setattr("ingest.files.StagedFile.commit", lambda self: (_ for _ in ()).throw(Crash("commit")))
    _die_without_cleanup(monkeypatch, rag)
    with pytest.raises(Crash):
        rag.upload(v2, name="fruit.pdf")
    assert (rag.settings.files_dir / "fruit.pdf").read_bytes() == v1.read_bytes()
    monkeypatch.undo()

    after = assert_consistent(rag.settings.data_dir)
    assert (after.settings.files_dir / "fruit.pdf").read_bytes() == v2.read_bytes()
    [page] = {h.chunk.text for h in after.search("pears", k=1)}
    assert "pears" in page


def test_a_killed_delete_finishes_on_restart(rag: RAG, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.pdfgen import make_pdf

    pdf = tmp_path / "gone.pdf"
    make_pdf(["A page about deletion. " * 40], pdf)
    rag.upload(pdf)
    rag.add_text("Mount Fuji is the highest mountain in Japan.", name="fuji.txt")
    _crash_at(monkeypatch, rag, "delete_ids", 0)
    with pytest.raises(Crash):
        rag.delete("gone.pdf")

    after = assert_consistent(rag.settings.data_dir)
    assert [s.source for s in after.sources()] == ["fuji.txt"]
    assert not (after.settings.files_dir / "gone.pdf").exists()


def test_a_live_write_of_another_process_is_not_repaired(rag: RAG, tmp_path: Path) -> None:
    """A manifest whose writer still holds its lock is left alone; once the lock is free it is settled."""
    rag.add_text(TEXT_V1, name="thames.txt")
    old = rag.store.ids_for("thames.txt")
    other = Journal(rag.journal.folder, rag.settings.files_dir)
    entry = other.begin(rag.store, "thames.txt", old=old, new=_text_ids(rag, TEXT_V2, "thames.txt"))
    code = ("import sys; from ingest.journal import Journal; from rag import RAG; r = RAG(sys.argv[1]); "
            "print(len(r.journal.recover(r.store)))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    held = subprocess.run([sys.executable, "-c", code, str(rag.settings.data_dir)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert held.stdout.strip() == "0" and entry.path.exists(), held.stderr
    os.close(entry.fd)  # the writer "dies": its lock goes with its descriptor
    entry.fd = None
    assert Journal(rag.journal.folder, rag.settings.files_dir).recover(rag.store) == ["thames.txt"]
    assert not entry.path.exists() and rag.store.ids_for("thames.txt") == old


def test_a_staged_upload_of_a_live_process_survives_the_sweep(tmp_path: Path) -> None:
    from ingest.files import sweep_staging
    from tests.pdfgen import make_pdf

    pdf = tmp_path / "in.pdf"
    make_pdf(["text"], pdf)
    files = tmp_path / "files"
    live = stage_upload(files, pdf, "live.pdf")
    dead = stage_upload(files, pdf, "dead.pdf")
    os.close(dead._lock_fd)  # its process died
    dead._lock_fd = None
    assert sweep_staging(files) == 1
    assert live.path.exists() and not dead.path.exists()
    live.discard()
    assert list((files / STAGING).iterdir()) == []


# -- kill -9 of a real `rag serve` ---------------------------------------------------------------


class Server:
    """`rag serve` on a data directory in a subprocess."""

    def __init__(self, data_dir: Path) -> None:
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT),
               "RAG_INGEST_BATCH": "16"}
        self.proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "--data-dir", str(data_dir), "serve",
                                      "--port", "0"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        deadline = time.monotonic() + 300
        self.url = None
        while self.url is None and time.monotonic() < deadline and self.proc.poll() is None:
            line = self.proc.stderr.readline()
            lines.append(line)
            if m := re.search(r"Serving on (http://127\.0\.0\.1:\d+/)", line):
                self.url = m.group(1)
        assert self.url, "".join(lines)
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # keep the pipe drained

    def upload(self, path: Path) -> httpx.Response:
        with path.open("rb") as f:
            # X-Requested-With: the server refuses multipart writes without it (rag.http.guard).
            return httpx.post(self.url + "api/ingest/file", files={"file": (NAME, f, "application/pdf")},
                              timeout=900, headers={"X-Requested-With": "test"})

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(60)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.kill()


def _upload_in_background(server: Server, path: Path) -> threading.Thread:
    def send() -> None:
        try:
            server.upload(path)
        except httpx.HTTPError:
            pass  # the server was killed under it

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def versions(pdf_dir: Path, tmp_path_factory: pytest.TempPathFactory, embedder):
    """The lecture (v1), a changed lecture (v2: its first three pages dropped), their chunk ids, and a v1 store."""
    from ingest.pdf import read_pdf

    folder = tmp_path_factory.mktemp("versions")
    v1 = folder / "v1.pdf"
    shutil.copyfile(next(pdf_dir.rglob("009-*.pdf")), v1)
    v2 = pdf_pages(v1, slice(3, None), folder / "v2.pdf")
    indexer = RAG(folder / "ids").indexer
    ids = {v: {c.id for c in indexer.chunk(read_pdf(p, name=NAME))} for v, p in (("v1", v1), ("v2", v2))}
    assert ids["v1"] and ids["v2"] and not ids["v1"] & ids["v2"]
    return {"v1": v1, "v2": v2, "ids": ids, "folder": folder}


def _installed_v1(versions) -> Path:
    """A data directory holding v1, uploaded through the server (made once, copied per kill point)."""
    template = versions["folder"] / "v1-installed"
    if not template.exists():
        server = Server(template)
        try:
            started = time.monotonic()
            reply = server.upload(versions["v1"])
            versions["seconds"] = time.monotonic() - started
            assert reply.status_code == 200 and reply.json()["added"] == {NAME: len(versions["ids"]["v1"])}
        finally:
            server.stop()
    return template


def _kill_and_check(versions, data_dir: Path, upload: Path, delay: float, before: str | None) -> str:
    """Upload ``upload``, SIGKILL the server ``delay`` s later, restart it and check the one-version promise.

    Returns:
        Which version the source ended at: "none", "v1" or "v2".
    """
    server = Server(data_dir)
    thread = _upload_in_background(server, upload)
    time.sleep(delay)
    server.kill()
    thread.join(60)

    server = Server(data_dir)  # start-up settles the interrupted write
    try:
        listed = {s["source"]: s["chunks"] for s in httpx.get(server.url + "api/sources", timeout=60).json()}
        served = httpx.get(server.url + f"files/{NAME}", timeout=60)
    finally:
        server.stop()
    rag = assert_consistent(data_dir)
    ids = rag.store.ids_for(NAME, complete=False)
    outcome = next((v for v, expected in versions["ids"].items() if ids == expected), "none" if not ids else None)
    assert outcome is not None, f"{len(ids)} chunks: a mix of versions"
    assert outcome in {before or "none", "v2" if before else "v1"}
    if outcome == "none":
        assert NAME not in listed and served.status_code == 404
    else:
        assert listed[NAME] == len(ids)
        assert served.status_code == 200
        assert hashlib.sha256(served.content).digest() == hashlib.sha256(versions[outcome].read_bytes()).digest()
    return outcome


def test_a_server_killed_mid_upload_restarts_with_no_half_document(pdf_dir: Path, tmp_path: Path) -> None:
    """The finding's case: killed while the lecture's chunks are being written, then restarted."""
    data_dir = tmp_path / "data"
    lecture = tmp_path / NAME
    shutil.copyfile(next(pdf_dir.rglob("009-*.pdf")), lecture)
    server = Server(data_dir)
    thread = _upload_in_background(server, lecture)
    journal = data_dir / "journal"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not (journal.exists() and any(journal.glob("*.json"))):
        time.sleep(0.05)  # the manifest appears when the text is read and chunk writing starts
    assert any(journal.glob("*.json")), "the upload never reached its write phase"
    time.sleep(random.Random(14).uniform(1.0, 4.0))
    server.kill()
    thread.join(60)
    assert any(journal.glob("*.json")), "the upload finished before the kill; nothing was interrupted"
    assert list((data_dir / "files" / STAGING).iterdir())

    server = Server(data_dir)
    try:
        assert httpx.get(server.url + "api/sources", timeout=60).json() == []
        assert httpx.post(server.url + "api/search", json={"query": "Topologie"}, timeout=60).json()["hits"] == []
        assert httpx.get(server.url + f"files/{NAME}", timeout=60).status_code == 404
    finally:
        server.stop()
    assert_consistent(data_dir)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_ten_random_kill_points_across_upload_and_reupload(versions, tmp_path: Path) -> None:
    template = _installed_v1(versions)
    full = versions.get("seconds", 120.0)
    rng = random.Random(2026)
    outcomes = []
    for point in range(10):
        reupload = point % 2 == 1
        data_dir = tmp_path / f"point{point}"
        if reupload:
            shutil.copytree(template, data_dir)
        delay = rng.uniform(0.0, full * 1.1)
        outcomes.append(_kill_and_check(versions, data_dir, versions["v2" if reupload else "v1"], delay,
                                        "v1" if reupload else None))
    # The random points reached both sides of the commit, not only the start or the end.
    assert len(set(outcomes)) >= 2, outcomes
