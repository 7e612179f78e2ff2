"""Ingestion on a real local Ray cluster (started by the test): same store as local, idempotent, worker kills."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from tests.conftest import require_shared

ray = pytest.importorskip("ray", reason="needs the ray extra: pip install -e '.[ray]'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """`ray start --head` on 127.0.0.1 with its own temp dir, stopped by its process group."""
    port = _free_port()
    # Ray's socket paths must stay short: a temp dir of its own directly under /tmp.
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    ray_bin = Path(sys.executable).with_name("ray")
    proc = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--num-cpus=2", f"--temp-dir={temp}", "--include-dashboard=false", "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ray start exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    else:
        pytest.fail("the Ray head did not start within 120 s")
    yield address
    ray.shutdown()
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # raylet and friends can take their time: the test is done with them
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _corpus(tmp_path: Path) -> list:
    """Real text: two SQuAD articles as text sources and one real PDF."""
    import json

    from rag.types import Document

    squad = json.loads(require_shared("squad", "squad-dev-v1.1-half-a.json").read_text(encoding="utf-8"))
    docs = []
    for article in squad["data"][:2]:
        text = "\n\n".join(p["context"] for p in article["paragraphs"][:12])
        docs.append(Document(source=f"{article['title']}.txt", text=text, kind="text", title=article["title"]))
    pdf = require_shared("pdfs", "sample-files", "004-pdflatex-4-pages_pdflatex-4-pages.pdf")
    return docs, pdf


def _embedding_actor_pids() -> list[int]:
    """PIDs of the running MiniLM actors (the bench's reading of /proc, one copy)."""
    from bench.ray_ingest import actor_pids

    return actor_pids()


def _jobs(rag, docs, pdf) -> list:
    from ingest.index import SourceJob

    return [SourceJob(d.source, lambda d=d: [d]) for d in docs] + [rag.pdf_job(pdf)]


def _state(rag) -> dict:
    return {i: (text, {k: v for k, v in meta.items() if k != "added_at"}, vec)
            for i, (text, meta, vec) in rag.store.dump().items()}


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a
    for i in a:
        assert a[i][0] == b[i][0] and a[i][1] == b[i][1]
        np.testing.assert_allclose(a[i][2], b[i][2], atol=1e-5)


def _ray_rag(tmp_path: Path, address: str, name: str, **kw):
    from ingest.distributed import RayBatchEmbedder
    from rag import RAG

    rag = RAG(tmp_path / name, ingest_batch=32)
    rag.indexer.embed_batches = RayBatchEmbedder(address, batch_size=16, **kw).embed_batches
    return rag


def test_an_unreachable_cluster_is_one_sentence(tmp_path: Path) -> None:
    from ingest.distributed import RayBatchEmbedder
    from rag.errors import RagError

    ray.shutdown()
    port = _free_port()
    with pytest.raises(RagError, match=rf"Cannot connect to the Ray cluster at '127.0.0.1:{port}'.*ray start --head"):
        list(RayBatchEmbedder(f"127.0.0.1:{port}").embed_batches([["some text"]]))


def test_ray_ingestion_equals_local_and_is_idempotent(cluster: str, tmp_path: Path, embedder) -> None:
    from rag import RAG

    docs, pdf = _corpus(tmp_path)
    local = RAG(tmp_path / "local", ingest_batch=32)
    local.ingest(_jobs(local, docs, pdf))
    remote = _ray_rag(tmp_path, cluster, "ray")
    report = remote.ingest(_jobs(remote, docs, pdf))
    assert len(report.added) == 3 and not report.skipped
    _assert_same(_state(remote), _state(local))
    again = remote.ingest(_jobs(remote, docs, pdf))
    assert not again.added and not again.replaced and len(again.unchanged) == 3
    assert again.chunks_written == 0


def test_a_killed_worker_loses_and_duplicates_nothing(cluster: str, tmp_path: Path, embedder) -> None:
    from rag import RAG

    docs, pdf = _corpus(tmp_path)
    local = RAG(tmp_path / "local", ingest_batch=32)
    local.ingest(_jobs(local, docs, pdf))
    remote = _ray_rag(tmp_path, cluster, "ray", actors=2)
    embed = remote.indexer.embed_batches
    killed: list[int] = []

    def kill_one_actor_after_first_batch(batches):
        for n, vectors in enumerate(embed(batches)):
            if n == 0:
                alive = _embedding_actor_pids()
                assert alive, "no embedding actor was running"
                os.kill(alive[0], signal.SIGKILL)
                killed.append(alive[0])
            yield vectors

    remote.indexer.embed_batches = kill_one_actor_after_first_batch
    report = remote.ingest(_jobs(remote, docs, pdf))
    assert killed and not report.skipped
    _assert_same(_state(remote), _state(local))
    ids = list(remote.store.dump())
    assert len(ids) == len(set(ids)) == remote.store.count()


def test_actors_embed_with_the_configured_chunk_encoder(tmp_path: Path, embedder) -> None:
    """RAG_DOC_ENCODER reaches the actors: a store gets the same vectors with Ray as without."""
    from ingest.distributed import _EmbedActor
    from rag import RAG
    from rag.embed import MiniLMEmbedder

    wired = RAG(tmp_path / "data", ray_address="127.0.0.1:6379", doc_encoder="onnx-int8").indexer.embed_batches
    assert wired.__self__.doc_encoder == "onnx-int8" and wired.__self__.address == "127.0.0.1:6379"

    texts = ["The Normans gave their name to Normandy.", "Super Bowl 50 was played at Levi's Stadium.", "Kiel"]
    batch = {"i": np.arange(3), "text": np.asarray(texts, dtype=object)}
    int8 = _EmbedActor(None, 1, doc_encoder="onnx-int8", cache_dir=str(tmp_path / "cache"))(batch)
    local = MiniLMEmbedder(cache_dir=tmp_path / "cache", doc_encoder="onnx-int8").embed(texts)
    np.testing.assert_allclose(int8["v"], local, atol=1e-6)
    torch_ = _EmbedActor(None, 1)(batch)["v"]
    np.testing.assert_allclose(torch_, embedder.embed(texts), atol=1e-5)
    assert np.abs(int8["v"] - torch_).max() > 1e-3  # a different encoder, not the same vectors twice
