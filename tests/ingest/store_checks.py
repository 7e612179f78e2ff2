"""Checks on a whole store, shared by the ingestion tests: snapshots, equality, a killed ingestion, and
the real PDFs they ingest cut to some of their pages."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from rag import RAG
from tests.conftest import ROOT


def snapshot(rag: RAG) -> dict[str, tuple[str, dict, list[float]]]:
    """Store contents without the wall-clock field that differs between runs by design."""
    out = {}
    for id_, (text, meta, vec) in rag.store.dump().items():
        meta.pop("added_at", None)
        out[id_] = (text, meta, vec)
    return out


def assert_same_store(a: dict, b: dict) -> None:
    """Two snapshots hold the same ids, texts, metadata and (to 1e-4) vectors."""
    assert a.keys() == b.keys()
    for id_ in a:
        assert a[id_][0] == b[id_][0] and a[id_][1] == b[id_][1]
        np.testing.assert_allclose(a[id_][2], b[id_][2], atol=1e-4)


def run_and_kill(args: list[str], data_dir: Path, kill_after: int) -> int:
    """Run `rag ARGS` with small write batches and SIGKILL it once ``kill_after`` chunks were embedded."""
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir), "RAG_INGEST_BATCH": "16", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    buf, done = b"", 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        byte = proc.stderr.read1(4096) if hasattr(proc.stderr, "read1") else proc.stderr.read(1)
        if not byte:
            break
        buf = (buf + byte)[-4096:]
        counts = re.findall(rb"(\d+)/(\d+) \[", buf)
        if counts:
            done = int(counts[-1][0])
            if done >= kill_after:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"ingestion finished before the kill point (rc={proc.returncode})"
    return done


def pdf_pages(source: Path, pages: slice, dest: Path) -> Path:
    """Write the ``pages`` of the real PDF ``source`` to ``dest`` (a shorter or changed real document)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(source).pages[pages]:
        writer.add_page(page)
    with dest.open("wb") as f:
        writer.write(f)
    return dest
