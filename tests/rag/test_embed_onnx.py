"""The ONNX query path: the same vectors and rankings as torch, cached, and safe when it fails."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from rag import embed_onnx
from rag.errors import ConfigError
from rag.settings import Settings
from tests.conftest import require_shared


@pytest.fixture(scope="module")
def torch_embedder(embedder):
    """The same MiniLM with single texts kept on torch (its own instance, so the path is pinned)."""
    from rag.embed import MiniLMEmbedder

    return MiniLMEmbedder(query_encoder="torch")


def _squad_questions(n: int) -> list[str]:
    from rag.eval.squad import load_squad

    out = [q.text for q in load_squad(require_shared("squad", "squad-dev-v1.1-half-a.json")).questions]
    return out[:: max(1, len(out) // n)][:n]


def test_queries_run_on_onnx_and_match_torch_on_real_questions(embedder, torch_embedder) -> None:
    assert embedder.query_path == "onnx" and torch_embedder.query_path == "torch"
    texts = _squad_questions(200) + ["", "a", "x " * 400, "naïve café — 北京 \U0001f600", "bad \ud800 surrogate"]
    got = np.vstack([embedder.embed([t]) for t in texts])
    want = np.vstack([torch_embedder.embed([t]) for t in texts])
    cosines = np.sum(got * want, axis=1)
    assert got.dtype == np.float32 and got.shape == (len(texts), 384)
    assert float(cosines.min()) > 0.9999, texts[int(cosines.argmin())]


def test_retrieval_is_identical_with_either_query_path(rag, torch_embedder) -> None:
    from rag.eval.squad import load_squad
    from rag.retrieve import Retriever

    squad = load_squad(require_shared("squad", "squad-dev-v1.1-half-a.json"), limit_articles=3)
    for doc in squad.documents:
        rag.add_text(doc.text, name=doc.source, title=doc.title)
    questions = [q.text for q in squad.questions[::5]][:80]
    onnx = Retriever(rag.embedder, rag.store, mode="dense")
    torch_ = Retriever(torch_embedder, rag.store, mode="dense")
    assert rag.embedder.query_path == "onnx"
    for q in questions:
        a, b = onnx.search(q, k=5), torch_.search(q, k=5)
        assert [h.chunk.id for h in a] == [h.chunk.id for h in b], q
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-4)


def test_export_is_cached_and_reused(embedder, tmp_path: Path) -> None:
    from rag.embed import MiniLMEmbedder

    first = MiniLMEmbedder(cache_dir=tmp_path)
    assert first.query_path == "onnx"
    files = list((tmp_path / "onnx").glob("*.onnx"))
    assert len(files) == 1 and files[0].name.startswith("all-MiniLM-L6-v2-")
    stamp = files[0].stat().st_mtime_ns
    second = MiniLMEmbedder(cache_dir=tmp_path)
    assert second.query_path == "onnx"
    assert list((tmp_path / "onnx").glob("*")) == files and files[0].stat().st_mtime_ns == stamp


def test_a_corrupt_cached_graph_is_rebuilt(embedder, tmp_path: Path) -> None:
    from rag.embed import MiniLMEmbedder

    path = embed_onnx.cached_graph_path(embedder.model_dir, tmp_path, embedder.name)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an onnx graph")
    fresh = MiniLMEmbedder(cache_dir=tmp_path)
    assert fresh.query_path == "onnx"
    assert path.stat().st_size > 1_000_000
    text = "Which NFL team represented the AFC at Super Bowl 50?"
    assert float(fresh.embed([text])[0] @ embedder.embed([text])[0]) > 0.9999


def test_a_failed_export_falls_back_to_torch_with_a_warning(embedder, tmp_path, monkeypatch, caplog) -> None:
    from rag.embed import MiniLMEmbedder

    def broken_export(transformer, path):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(embed_onnx, "export", broken_export)
    fallback = MiniLMEmbedder(cache_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="rag.embed_onnx"):
        assert fallback.query_path == "torch"
    assert "exporter exploded" in caplog.text and "embedded with torch instead" in caplog.text
    text = "what classifier is used?"
    assert float(fallback.embed([text])[0] @ embedder.embed([text])[0]) > 0.9999


def test_a_graph_that_disagrees_with_torch_is_not_used(embedder, tmp_path, monkeypatch, caplog) -> None:
    from rag.embed import MiniLMEmbedder

    real = embed_onnx.OnnxQueryEncoder.encode_ids
    monkeypatch.setattr(embed_onnx.OnnxQueryEncoder, "encode_ids", lambda self, ids: -real(self, ids))
    wrong = MiniLMEmbedder(cache_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="rag.embed_onnx"):
        assert wrong.query_path == "torch"
    assert "differ from torch" in caplog.text


def test_an_unwritable_cache_falls_back_to_torch(embedder, tmp_path, caplog) -> None:
    from rag.embed import MiniLMEmbedder

    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the cache directory should be")
    fallback = MiniLMEmbedder(cache_dir=blocked)
    with caplog.at_level(logging.WARNING, logger="rag.embed_onnx"):
        assert fallback.query_path == "torch"
    assert "RAG_CACHE_DIR" in caplog.text
    assert fallback.embed(["still answers"]).shape == (1, 384)


def test_query_encoder_setting_is_checked() -> None:
    assert Settings.from_env({}).query_encoder == "onnx"
    assert Settings.from_env({"RAG_QUERY_ENCODER": "torch"}).query_encoder == "torch"
    assert Settings.from_env({"RAG_QUERY_ENCODER": "onnx-int8"}).query_encoder == "onnx-int8"
    with pytest.raises(ConfigError, match=r"query_encoder='tensorrt' is not one of onnx, onnx-int8, torch"):
        Settings.from_env({"RAG_QUERY_ENCODER": "tensorrt"})
    assert Settings.from_env({"RAG_CACHE_DIR": "~/x"}).cache_dir == Path("~/x").expanduser()


def test_the_int8_query_encoder_is_cached_beside_fp32_and_stays_close_to_torch(torch_embedder, tmp_path: Path) -> None:
    from rag.embed import MiniLMEmbedder

    int8 = MiniLMEmbedder(cache_dir=tmp_path, query_encoder="onnx-int8")
    assert int8.query_path == "onnx-int8"
    names = {p.name for p in (tmp_path / "onnx").glob("*.onnx")}
    fp32 = [n for n in names if not n.endswith("-int8.onnx")]
    assert len(names) == 2 and len(fp32) == 1 and names == {fp32[0], fp32[0][: -len(".onnx")] + "-int8.onnx"}
    texts = _squad_questions(200)
    got = np.vstack([int8.embed([t]) for t in texts])
    want = np.vstack([torch_embedder.embed([t]) for t in texts])
    cosines = np.sum(got * want, axis=1)
    # Close, not equal: int8 weights move each vector a little (bench.int8_quality measures
    # what that does to retrieval); a broken quantization would fall far below.
    assert float(cosines.min()) > embed_onnx.MIN_INT8_PROBE_COSINE and float(cosines.mean()) > 0.99
    assert float(cosines.max()) < 0.99999  # it really is the quantized graph, not fp32


def test_the_int8_chunk_encoder_embeds_batches_close_to_torch_in_order(torch_embedder, tmp_path: Path) -> None:
    from rag.embed import MiniLMEmbedder
    from rag.eval.squad import load_squad

    int8 = MiniLMEmbedder(cache_dir=tmp_path, doc_encoder="onnx-int8", batch_size=8)
    assert int8.doc_path == "onnx-int8" and torch_embedder.doc_path == "torch"
    article = load_squad(require_shared("squad", "squad-dev-v1.1-half-a.json"), limit_articles=1).documents[0]
    paragraphs = article.text.split("\n")[:40]
    assert len(paragraphs) == 40
    # Lengths mixed on purpose (longest-first batching must give each vector back to its text),
    # one text past MiniLM's limit (cut as torch cuts it).
    texts = paragraphs + ["a", "x " * 600, "naïve café — 北京"]
    got = int8.embed(texts)
    want = torch_embedder.embed(texts)
    cosines = np.sum(got * want, axis=1)
    assert got.shape == want.shape and got.dtype == np.float32
    assert float(cosines.min()) > embed_onnx.MIN_INT8_PROBE_COSINE and float(cosines.mean()) > 0.99
    assert float(cosines.max()) < 0.99999
    # each text's vector is its own: its nearest torch vector is the same text's
    assert (np.argmax(got @ want.T, axis=1) == np.arange(len(texts))).mean() > 0.95


def test_ingestion_with_the_int8_chunk_encoder_finds_what_torch_finds(tmp_path: Path) -> None:
    from rag import RAG
    from rag.eval.squad import load_squad

    squad = load_squad(require_shared("squad", "squad-dev-v1.1-half-a.json"), limit_articles=2)
    found = {}
    for encoder in ("torch", "onnx-int8"):
        rag = RAG(tmp_path / encoder, doc_encoder=encoder, cache_dir=tmp_path / "cache")
        assert rag.embedder.doc_path == encoder
        for doc in squad.documents:
            rag.add_text(doc.text, name=doc.source, title=doc.title)
        found[encoder] = [rag.search(q.text, k=1)[0].chunk.text for q in squad.questions[::10][:40]]
    same = sum(a == b for a, b in zip(found["torch"], found["onnx-int8"])) / len(found["torch"])
    assert same >= 0.9
