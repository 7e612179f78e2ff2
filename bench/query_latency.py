"""Query latency through the product's retriever, dense and hybrid, FTS5 and tantivy, up to 1M chunks.

Run (from the repo root):

    .venv/bin/python -m bench.query_latency                      # 10k and 100k chunks, 500 timed queries
    .venv/bin/python -m bench.query_latency --sizes 10000,100000,1000000 --store-dir /tmp/ql --json
    .venv/bin/python -m bench.query_latency --sizes 1000000 --store-dir /tmp/ql --build-only   # fill only
    .venv/bin/python -m bench.query_latency --quick              # smoke run: 5k chunks, 60 queries

The stores are synthetic in size, real in content: MiniLM vectors of a real base set
(SQuAD half-a chunks as the product cuts them, plus single SQuAD sentences) are
repeated with small Gaussian perturbations, renormalised, until the store holds each size
(each copy keeps its base text, under its own source). Embedding 1M real chunks would take
days on this machine; the perturbed copies keep Chroma's HNSW work realistic. Every size
has its own store (``--store-dir``: kept and reused between runs, so a 1M build that took an
hour is paid once; without it, a temporary directory): Chroma, and beside it both keyword
indexes over the same chunk ids, the SQLite FTS5 one (``rag.keyword_fts5``, the index before
tantivy) and the tantivy one (``rag.keyword``, the product's).

Queries are SQuAD questions, one at a time, warm (a warm-up round first). For each query,
each query encoder and each intra-op thread count compared, we time back to back: the dense
retriever (embed + Chroma), the hybrid retriever over each keyword index (embed + Chroma +
BM25 on a worker thread + fusion), the embedder alone, Chroma alone and each BM25 search
alone; with ``--inline`` also hybrid with BM25 run inline instead of on the worker thread, and
hybrid as the retriever did it before it read the keyword candidates' vectors on the worker
thread (``fetch_after``: those vectors read after the dense search), and hybrid reading every
candidate's text and metadata with its score (``all_texts``: before fusion ranked ids and cosines
and read the winners' chunks only), for same-run ratios.
With ``--recall`` (on by default at 1M), Chroma's HNSW top 10 is compared with exact search
(numpy over every stored vector) on that many questions. When .venv-bench has LlamaIndex its
retriever is timed too, in a subprocess, on the same questions (``--no-peer`` skips it).

``--json`` prints one JSON object last, ``{"results": [{"size", "retriever", "index", "p50_ms",
"p95_ms", ...}]}``, one row per size, retriever (dense|hybrid) and keyword index (fts5|tantivy;
dense rows carry the index the store was opened with, its figures do not depend on it).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    BENCH_VENV_PYTHON,
    RESULTS_DIR,
    load_squad,
    note,
    now,
    peak_rss_mb,
    print_table,
    rss_mb,
    product_documents,
    run_child,
    sample_questions,
    setup_offline,
    summarize_ms,
    write_json,
)

GOALS = {100_000: {"p50_ms": 10.0, "p95_ms": 20.0}, 1_000_000: {"p95_ms": 50.0}}  # hybrid, on 2 cores
INDEXES = ("fts5", "tantivy")
STEP = 10_000  # chunks generated and written per step


def base_set(max_sentences: int, max_articles: int | None, workdir: Path):
    """Real chunks (product chunking of SQuAD paragraphs) and sentences, as product Chunks."""
    from dataclasses import replace

    from rag.text import sentence_spans
    from rag.service import RAG
    from rag.types import chunk_id

    rag = RAG(workdir)
    articles = load_squad(max_articles=max_articles)
    chunks = [c for a in articles for c in rag.indexer.chunk(product_documents(a))]
    sentences = []
    for a in articles:
        for doc in product_documents(a):
            for s, e in sentence_spans(doc.text):
                body = doc.text[s:e]
                if len(body) >= 40:
                    sentences.append(replace(chunks[0], id=chunk_id(doc.source, "sentence", None, s, body),
                                             source=doc.source, title=doc.title, url=doc.url, text=body,
                                             start=s, end=e, tokens=0))
    step = max(1, len(sentences) // max_sentences) if max_sentences else 0
    sentences = sentences[::step][:max_sentences] if max_sentences else []
    return rag, articles, chunks + sentences, len(chunks), len(sentences)


def base_vectors(rag, base) -> tuple[np.ndarray, float | None]:
    """The base texts' MiniLM vectors, cached in bench/results/cache/ keyed by the texts and the model."""
    key = hashlib.sha256("\x1e".join([str(rag.settings.model_dir or "bundled")]
                                      + [c.text for c in base]).encode()).hexdigest()[:16]
    cache = RESULTS_DIR / "cache" / f"query-latency-base-{key}.npy"
    if cache.is_file():
        note(f"base vectors from {cache}")
        return np.load(cache), None
    t = now()
    vecs = rag.embedder.embed([c.text for c in base])
    took = now() - t
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vecs)
    return vecs, took


def disk_mb(path: Path) -> float:
    """Bytes under ``path``, in MiB."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20 if path.exists() else 0.0


def fill(base_vecs: np.ndarray, lo: int, hi: int, sigma: float) -> np.ndarray:
    """Vectors lo..hi-1: copy c of base i is base i plus N(0, sigma^2) per dimension, renormalised.

    The noise is seeded by ``lo``, so a step regenerates identically when a build resumes.
    """
    rng = np.random.default_rng([0, lo])
    b = len(base_vecs)
    idx = np.arange(lo, hi)
    vecs = base_vecs[idx % b].copy()
    noisy = (idx // b) > 0
    vecs[noisy] += rng.normal(0.0, sigma, size=(int(noisy.sum()), base_vecs.shape[1])).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs.astype(np.float32)


def fill_chunks(base, lo: int, hi: int):
    """Chunks lo..hi-1: base texts and metadata; copies get their own source and every one a unique id."""
    from dataclasses import replace

    b = len(base)
    out = []
    for i in range(lo, hi):
        c = base[i % b]
        copy = i // b
        src = c.source if copy == 0 else f"{c.source} (copy {copy})"
        out.append(replace(c, id=hashlib.sha256(f"bench-ql:{i}".encode()).hexdigest()[:32], source=src))
    return out


def open_keyword_index(kind: str, root: Path):
    """The keyword index ``kind`` (fts5 | tantivy) of a bench store."""
    if kind == "fts5":
        from rag.keyword_fts5 import Fts5KeywordIndex

        return Fts5KeywordIndex(root / "keyword.sqlite3")
    from rag.keyword import KeywordIndex

    return KeywordIndex(root / "tantivy")


class BenchStore:
    """One size's store: Chroma, the vectors as a .npy (for exact search), and both keyword indexes."""

    def __init__(self, root: Path, size: int, dim: int, key: str) -> None:
        from rag.store import ChromaStore

        self.root, self.size = root, size
        root.mkdir(parents=True, exist_ok=True)
        self.manifest_path = root / "manifest.json"
        manifest = json.loads(self.manifest_path.read_text()) if self.manifest_path.is_file() else {}
        if manifest.get("key") != key or manifest.get("size") != size:
            if manifest:
                note(f"{root}: built from another base set or size; rebuilding")
                for child in root.iterdir():
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
            manifest = {"key": key, "size": size, "chroma": 0, "build": []}
        self.manifest = manifest
        self.chroma = ChromaStore(root / "chroma", collection="bench")
        vec_path = root / "vectors.npy"
        if vec_path.is_file():
            self.vectors = np.load(vec_path, mmap_mode="r+")
        else:
            self.vectors = np.lib.format.open_memmap(vec_path, mode="w+", dtype=np.float32, shape=(size, dim))
        self.keywords: dict[str, Any] = {}

    def save(self) -> None:
        self.manifest_path.write_text(json.dumps(self.manifest, indent=1))

    def fill_chroma(self, base, base_vecs: np.ndarray, sigma: float, upto: int, stop_at: float | None = None) -> int:
        """Write vectors (Chroma and the .npy) up to ``upto`` chunks, resuming where a previous run stopped.

        Returns:
            How many chunks the store holds: ``upto``, or fewer when ``stop_at`` (a time.time()) passed first.
        """
        start = self.manifest["chroma"]
        for lo in range(start, upto, STEP):
            if stop_at is not None and time.time() >= stop_at:
                note(f"deadline reached at {lo:,} chunks")
                return lo
            hi = min(lo + STEP, upto)
            t, cpu = time.perf_counter(), time.process_time()
            vecs = fill(base_vecs, lo, hi, sigma)
            self.vectors[lo:hi] = vecs
            self.chroma.add(fill_chunks(base, lo, hi), vecs)
            wall = time.perf_counter() - t
            # Wall vs this process's CPU time says whether the build is CPU-bound or waiting
            # (on the other jobs sharing the cores, on the disk); the load average says which.
            step = {"hi": hi, "wall_s": round(wall, 2), "cpu_s": round(time.process_time() - cpu, 2),
                    "per_s": round((hi - lo) / wall, 1), "rss_mb": round(rss_mb()), "load1": os.getloadavg()[0],
                    "at": time.strftime("%H:%M:%S")}
            self.manifest["build"].append(step)
            self.manifest["chroma"] = hi
            self.vectors.flush()
            self.save()
            note(f"{self.root.name}: chroma {hi:,}/{self.size:,} ({step['per_s']:.0f}/s, cpu/wall "
                 f"{step['cpu_s'] / max(wall, 1e-9):.2f}, load {step['load1']:.1f}, RSS {step['rss_mb']} MiB)")
        return self.manifest["chroma"]

    def fill_keywords(self, base, kind: str, upto: int) -> None:
        """Bring keyword index ``kind`` up to ``upto`` chunks (the same ids as Chroma)."""
        index = self.keywords.get(kind) or open_keyword_index(kind, self.root)
        self.keywords[kind] = index
        # An index the product rebuilt empty (its schema changed since this store was filled)
        # holds fewer chunks than the manifest says: fill it again from the start.
        start = self.manifest.get(kind, 0)
        if start and index.count() < start:
            note(f"{kind} index holds {index.count():,} of the {start:,} chunks filled before; refilling")
            start = 0
        if start >= upto:
            return
        t, cpu = time.perf_counter(), time.process_time()
        for lo in range(start, upto, STEP):
            hi = min(lo + STEP, upto)
            index.add(fill_chunks(base, lo, hi))
            self.manifest[kind] = hi
            self.save()
        took = time.perf_counter() - t
        self.manifest[f"{kind}_insert_per_s"] = round((upto - start) / took, 1)
        self.manifest[f"{kind}_insert_per_cpu_s"] = round((upto - start) / max(time.process_time() - cpu, 1e-9), 1)
        self.save()
        note(f"{kind} index {upto:,} chunks ({self.manifest[f'{kind}_insert_per_s']:.0f}/s)")


def exact_recall(store: BenchStore, embedder, queries: list[str], base_size: int, k: int = 10) -> dict[str, Any]:
    """Chroma's HNSW top k against exact cosine search over every stored vector.

    Two recalls: of the exact top k's chunk ids (strict), and of the base texts they are copies
    of (what a reader sees: past a few copies of each base text, the exact top k is a set of
    near-tied perturbed copies of the same few texts, and which copies HNSW returns is noise).
    """
    n = store.manifest["chroma"]
    ids = [c.id for c in fill_chunks_ids(n)]
    position = {id_: i for i, id_ in enumerate(ids)}
    vectors = np.array(store.vectors[:n])  # in memory once, not read from the .npy per question
    qv = embedder.embed(queries)
    recalls, text_recalls, times = [], [], []
    for v in qv:
        t = now()
        got = [position[h.chunk.id] for h in store.chroma.query(v, k)]
        times.append(now() - t)
        scores = np.asarray(vectors @ v)
        top = np.argpartition(-scores, k)[:k]
        recalls.append(len(set(got) & set(top.tolist())) / k)
        want_texts = {int(i) % base_size for i in top}
        text_recalls.append(len({i % base_size for i in got} & want_texts) / len(want_texts))
    return {"queries": len(queries), "k": k, "recall": float(np.mean(recalls)),
            "min_recall": float(np.min(recalls)), "base_text_recall": float(np.mean(text_recalls)),
            "chroma": summarize_ms(times)}


class _Id:
    __slots__ = ("id",)

    def __init__(self, id_: str) -> None:
        self.id = id_


def fill_chunks_ids(n: int) -> list[_Id]:
    """Only the ids fill_chunks gives chunks 0..n-1 (cheap, for exact search at 1M)."""
    return [_Id(hashlib.sha256(f"bench-ql:{i}".encode()).hexdigest()[:32]) for i in range(n)]


def measure(store: BenchStore, queries: list[str], warmup: int, threads: list[int], encoders: list[str],
            settings, inline: bool) -> dict[str, Any]:
    """Interleaved per query: dense, hybrid over each keyword index, and their parts."""
    import torch

    from rag.embed import get_embedder
    from rag.retrieve import Retriever
    from rag.store import CombinedStore

    default = torch.get_num_threads()
    s = settings
    stores = {kind: CombinedStore(store.chroma, index) for kind, index in store.keywords.items()}
    variants = []
    for encoder in encoders:
        for th in threads:
            embedder = get_embedder(s.model_dir or None, threads=th, query_encoder=encoder, cache_dir=s.cache_dir)
            embedder.warm_up()
            is_default = encoder == s.query_encoder and th == s.torch_threads
            dense = Retriever(embedder, stores[INDEXES[-1]], mode="dense")
            hybrids = {kind: Retriever(embedder, st, mode="hybrid", keyword_weight=s.keyword_weight,
                                       candidates=s.fusion_candidates) for kind, st in stores.items()}
            # The ranking as it was read before: every candidate's text and metadata with it.
            whole = {kind: Retriever(embedder, WholeHits(st), mode="hybrid", keyword_weight=s.keyword_weight,
                                     candidates=s.fusion_candidates) for kind, st in stores.items()}
            variants.append((f"{encoder} {th or default} thr", th or default, embedder, dense, hybrids, is_default,
                             whole))
    torch.set_num_threads(default)
    keys = ["dense", "embed_only", "store_query_only", "store_query_50"]
    for kind in stores:
        keys += [f"hybrid_{kind}", f"keyword_only_{kind}", f"fetch_{kind}", f"fetched_{kind}"]
        keys += [f"hybrid_inline_{kind}", f"hybrid_fetch_after_{kind}", f"hybrid_all_texts_{kind}"] if inline else []
    samples = {label: {k: [] for k in keys} for label, *_ in variants}
    try:
        for i, q in enumerate(queries):
            for label, th, embedder, dense, hybrids, _, whole in variants:
                torch.set_num_threads(th)
                got: dict[str, float] = {}
                t = now()
                dense.search(q, k=5)
                got["dense"] = now() - t
                for kind, hybrid in hybrids.items():
                    t = now()
                    hybrid.search(q, k=5)
                    got[f"hybrid_{kind}"] = now() - t
                    if inline:
                        t = now()
                        hybrid_inline(hybrid, q, 5)
                        got[f"hybrid_inline_{kind}"] = now() - t
                        t = now()
                        hybrid_fetch_after(hybrid, q, 5)
                        got[f"hybrid_fetch_after_{kind}"] = now() - t
                        t = now()
                        whole[kind].search(q, k=5)
                        got[f"hybrid_all_texts_{kind}"] = now() - t
                t = now()
                v = embedder.embed([q])[0]
                got["embed_only"] = now() - t
                t = now()
                store.chroma.query(v, 5)
                got["store_query_only"] = now() - t
                t = now()
                dense_ids = {h.chunk.id for h in store.chroma.query(v, s.fusion_candidates)}
                got["store_query_50"] = now() - t
                for kind, st in stores.items():
                    t = now()
                    kw = st.keyword_query(q, s.fusion_candidates)
                    got[f"keyword_only_{kind}"] = now() - t
                    # What hybrid pays on top of both searches: the stored vectors of the
                    # keyword-only candidates (for their cosine), read from Chroma.
                    missing = [i for i, _ in kw if i not in dense_ids]
                    t = now()
                    store.chroma.get_with_vectors(missing)
                    got[f"fetch_{kind}"] = now() - t
                    got[f"fetched_{kind}"] = len(missing) / 1000.0  # summarize_ms multiplies by 1000
                if i >= warmup:
                    for key, val in got.items():
                        samples[label][key].append(val)
    finally:
        torch.set_num_threads(default)
    return {label: {k: summarize_ms(v) for k, v in samples[label].items()}
            | {"default": is_default, "query_path": embedder.query_path}
            for label, _, embedder, _, _, is_default, _ in variants}


class WholeHits:
    """A store without the cheaper reads (``nearest``, ``vectors_of``): the retriever then reads
    every candidate's chunk with its score, as it did before fusion ranked ids."""

    def __init__(self, store) -> None:
        self._store = store
        self.keyword_query = store.keyword_query

    def query(self, *args, **kw):
        return self._store.query(*args, **kw)

    def get_with_vectors(self, *args, **kw):
        return self._store.get_with_vectors(*args, **kw)


def hybrid_inline(retriever, query: str, k: int):
    """The hybrid retriever's ranking with BM25 run on the calling thread (no worker thread)."""
    from rag.retrieve import minmax_fusion

    keyword = dict(retriever.store.keyword_query(query, retriever.candidates))
    vector = retriever.embedder.embed([query])[0]
    dense = {h.chunk.id: h for h in retriever.store.query(vector, retriever.candidates)}
    retriever._hits(list(keyword), vector, dense)
    fused = minmax_fusion({i: h.score for i, h in dense.items()}, keyword, retriever.keyword_weight)
    return [dense[i] for i in fused[:k]]


def hybrid_fetch_after(retriever, query: str, k: int):
    """The hybrid ranking as the retriever did it before: BM25 on the worker thread, the
    keyword-only candidates' vectors read from Chroma after the dense search (not beside it)."""
    from rag.retrieve import _keyword_pool, minmax_fusion

    pending = _keyword_pool().submit(retriever.store.keyword_query, query, retriever.candidates, None)
    vector = retriever.embedder.embed([query])[0]
    dense = {h.chunk.id: h for h in retriever.store.query(vector, retriever.candidates)}
    keyword = dict(pending.result())
    retriever._hits(list(keyword), vector, dense)
    fused = minmax_fusion({i: h.score for i, h in dense.items()}, keyword, retriever.keyword_weight)
    return [dense[i] for i in fused[:k]]


# -- LlamaIndex child (runs in .venv-bench) ---------------------------------------------------

def child_llamaindex(args) -> None:
    setup_offline()
    result: dict[str, Any] = {"python": sys.executable}
    try:
        import chromadb
        from chromadb.config import Settings as ChromaSettings
        from llama_index.core import VectorStoreIndex
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding
        from llama_index.vector_stores.chroma import ChromaVectorStore
    except Exception as exc:  # noqa: BLE001
        result["skipped"] = f"{type(exc).__name__}: {exc} (interpreter {sys.executable})"
        Path(args.result).write_text(json.dumps(result))
        return
    try:
        from rag.embed import bundled_model_dir

        queries = json.loads(Path(args.queries_file).read_text())
        client = chromadb.PersistentClient(path=args.child_store, settings=ChromaSettings(anonymized_telemetry=False))
        collection = client.get_collection(args.collection)
        result["count"] = collection.count()
        embed = HuggingFaceEmbedding(model_name=str(bundled_model_dir()))
        index = VectorStoreIndex.from_vector_store(ChromaVectorStore(chroma_collection=collection), embed_model=embed)
        retriever = index.as_retriever(similarity_top_k=5)
        for q in queries[: args.warmup]:
            retriever.retrieve(q)
        full, emb = [], []
        for q in queries[args.warmup :]:
            t = now()
            nodes = retriever.retrieve(q)
            full.append(now() - t)
            t = now()
            embed.get_query_embedding(q)
            emb.append(now() - t)
        result["returned"] = len(nodes)
        result["search"] = summarize_ms(full)
        result["embed_only"] = summarize_ms(emb)
        result["peak_rss_mb"] = peak_rss_mb()
        import torch

        result["torch_threads"] = torch.get_num_threads()
    except Exception as exc:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        result["error"] = f"{type(exc).__name__}: {exc}"
    Path(args.result).write_text(json.dumps(result))


# -- main -----------------------------------------------------------------------------------

def flat_rows(results: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per size, retriever and keyword index, for --json and the table."""
    rows = []
    for size, res in results.items():
        for variant, o in res["ours"].items():
            common = {"size": size, "variant": variant, "default_variant": o["default"],
                      "embed_p50_ms": o["embed_only"]["p50_ms"], "chroma_p50_ms": o["store_query_only"]["p50_ms"],
                      "rss_mb": res["rss_mb"], "chroma_disk_mb": res["chroma_disk_mb"]}
            for kind in res["indexes"]:
                disk = res["keyword_disk_mb"][kind]
                extra = {"keyword_disk_mb": disk, "keyword_disk_gib_per_million": disk / 1024 * 1e6 / size,
                         "chroma_disk_gib_per_million": res["chroma_disk_mb"] / 1024 * 1e6 / size,
                         "keyword_insert_per_s": res["keyword_insert_per_s"].get(kind)}
                if kind == res["indexes"][-1]:
                    rows.append({**common, "retriever": "dense", "index": kind, "p50_ms": o["dense"]["p50_ms"],
                                 "p95_ms": o["dense"]["p95_ms"], **extra,
                                 **({"hnsw_recall@10": res["recall"]["recall"],
                                     "hnsw_base_text_recall@10": res["recall"]["base_text_recall"]}
                                    if res.get("recall") else {})})
                h = o[f"hybrid_{kind}"]
                row = {**common, "retriever": "hybrid", "index": kind, "p50_ms": h["p50_ms"], "p95_ms": h["p95_ms"],
                       "bm25_p50_ms": o[f"keyword_only_{kind}"]["p50_ms"],
                       "bm25_p95_ms": o[f"keyword_only_{kind}"]["p95_ms"],
                       "chroma50_p50_ms": o["store_query_50"]["p50_ms"],
                       "fetch_p50_ms": o[f"fetch_{kind}"]["p50_ms"],
                       "fetched_mean": o[f"fetched_{kind}"]["mean_ms"], **extra}
                if f"hybrid_inline_{kind}" in o:
                    row["inline_p50_ms"] = o[f"hybrid_inline_{kind}"]["p50_ms"]
                    row["inline_p95_ms"] = o[f"hybrid_inline_{kind}"]["p95_ms"]
                    row["fetch_after_p50_ms"] = o[f"hybrid_fetch_after_{kind}"]["p50_ms"]
                    row["fetch_after_p95_ms"] = o[f"hybrid_fetch_after_{kind}"]["p95_ms"]
                    row["all_texts_p50_ms"] = o[f"hybrid_all_texts_{kind}"]["p50_ms"]
                    row["all_texts_p95_ms"] = o[f"hybrid_all_texts_{kind}"]["p95_ms"]
                rows.append(row)
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 5k chunks, small base, 60 queries")
    p.add_argument("--sizes", default="10000,100000", help="store sizes, ascending (comma-separated)")
    p.add_argument("--queries", type=int, default=500, help="timed queries per size")
    p.add_argument("--queries-file", help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--threads", default="0", help="intra-op thread counts to compare per query (0 = default)")
    p.add_argument("--encoders", default="onnx", help="query encoders to compare (onnx is the product's default)")
    p.add_argument("--indexes", default=",".join(INDEXES), help="keyword indexes compared (fts5, tantivy)")
    p.add_argument("--inline", action="store_true",
                   help="also time hybrid with BM25 inline (no worker thread) and with the vectors fetched after")
    p.add_argument("--recall", type=int, default=None,
                   help="questions for HNSW recall@10 against exact search at the largest size (default 1000)")
    p.add_argument("--sentences", type=int, default=2500, help="single sentences added to the base set")
    p.add_argument("--sigma", type=float, default=0.02, help="per-dimension noise of the perturbed copies")
    p.add_argument("--store-dir", help="keep the stores here (one folder per size) and reuse them next run")
    p.add_argument("--build-only", action="store_true", help="fill the stores (Chroma) and stop")
    p.add_argument("--recall-only", action="store_true", help="only HNSW recall at the last size (no timing)")
    p.add_argument("--deadline", help="HH:MM (UTC): stop filling then and measure the size reached")
    p.add_argument("--json", action="store_true", help="print one JSON object {\"results\": [...]} last")
    p.add_argument("--no-peer", dest="peer", action="store_false", help="skip the LlamaIndex retriever")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child-store", help=argparse.SUPPRESS)
    p.add_argument("--collection", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child_llamaindex(args)
        return
    articles_cap = None
    if args.quick:
        args.sizes, args.queries, args.warmup, args.sentences = "5000", 60, 10, 100
        articles_cap = 1
    sizes = sorted(int(x) for x in args.sizes.split(","))
    threads = [int(x) for x in args.threads.split(",")]
    indexes = [x for x in args.indexes.split(",") if x]
    setup_offline()
    stop_at = None
    if args.deadline:
        import datetime as dt

        hh, mm = (int(x) for x in args.deadline.split(":"))
        today = dt.datetime.now(dt.timezone.utc)
        stop_at = today.replace(hour=hh, minute=mm, second=0, microsecond=0).timestamp()

    tmp = Path(tempfile.mkdtemp(prefix="bench-ql-"))
    root = Path(args.store_dir) if args.store_dir else tmp / "stores"
    results: dict[int, dict[str, Any]] = {}
    try:
        note("the real base set (product chunks of SQuAD half-a + sentences)")
        base_rag, articles, base, n_chunks, n_sent = base_set(args.sentences, articles_cap, tmp / "base")
        base_vecs, base_embed_s = base_vectors(base_rag, base)
        key = hashlib.sha256(base_vecs.tobytes() + repr(args.sigma).encode()).hexdigest()[:16]
        probe = fill(base_vecs, len(base), 2 * len(base), args.sigma)
        cos_to_base = float(np.mean(np.sum(probe * base_vecs, axis=1)))
        queries = [q.text for q in sample_questions(load_squad(max_articles=articles_cap), args.queries + args.warmup)]
        warm, timed = queries[: args.warmup], queries[args.warmup :]
        qfile = tmp / "queries.json"
        qfile.write_text(json.dumps(warm + timed))
        partial = RESULTS_DIR / "query_latency-partial.json"
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        # One store grows through the sizes (as a user's would): measured at each on the way.
        store = BenchStore(root / f"up-to-{sizes[-1]}", sizes[-1], base_vecs.shape[1], key)
        for size in sizes:
            if store.manifest["chroma"] > size:
                note(f"{size:,}: the kept store already holds {store.manifest['chroma']:,} chunks; not measured "
                     "(use another --store-dir)")
                continue
            reached = store.fill_chroma(base, base_vecs, args.sigma, size, stop_at)
            if args.build_only:
                continue
            if reached < size:
                if reached <= max(results, default=0):
                    break
                note(f"{size:,} not reached by the deadline: measuring the {reached:,} chunks filled")
                size = reached
            for kind in indexes:
                store.fill_keywords(base, kind, size)
            note(f"{size:,} chunks in the store ({store.chroma.count():,}); timing {len(timed)} queries")
            res: dict[str, Any] = {
                "count": store.chroma.count(), "indexes": indexes, "build": store.manifest["build"][-3:],
                "chroma_insert_per_s": (float(np.mean([b["per_s"] for b in store.manifest["build"]]))
                                        if store.manifest["build"] else None),
                "chroma_insert_per_cpu_s": (sum(b["hi"] - (b["hi"] - STEP) for b in store.manifest["build"])
                                            / max(sum(b["cpu_s"] for b in store.manifest["build"]), 1e-9)
                                            if store.manifest["build"] else None),
                "keyword_insert_per_s": {k: store.manifest.get(f"{k}_insert_per_s") for k in indexes},
                "chroma_disk_mb": disk_mb(store.root / "chroma"),
                "keyword_disk_mb": {k: disk_mb(store.root / "tantivy") if k == "tantivy" else
                                    sum(f.stat().st_size for f in store.root.glob("keyword.sqlite3*")) / 2**20
                                    for k in indexes},
            }
            if args.recall_only and size != sizes[-1]:
                continue
            res["ours"] = {} if args.recall_only else measure(
                store, warm + timed, args.warmup, threads, args.encoders.split(","), base_rag.settings, args.inline)
            last = size == sizes[-1] or reached < sizes[-1] and stop_at is not None and time.time() >= stop_at
            n_recall = args.recall if args.recall is not None else 1000
            if n_recall and last:
                note(f"{size:,}: HNSW recall@10 against exact search on {n_recall} questions")
                rq = [q.text for q in sample_questions(load_squad(max_articles=articles_cap), n_recall)]
                res["recall"] = exact_recall(store, base_rag.embedder, rq, len(base))
            # Memory per million chunks: read after the queries, when every store so far is open
            # and warm, so the growth from one size to the next is that size's store.
            res["rss_mb"] = rss_mb()
            results[size] = res
            if args.peer and BENCH_VENV_PYTHON.is_file():
                note(f"{size:,}: LlamaIndex retriever over the same collection")
                res["llamaindex"] = run_child(
                    BENCH_VENV_PYTHON, "bench.query_latency",
                    ["--child", "--child-store", str(store.root / "chroma"), "--collection", "bench",
                     "--queries-file", str(qfile), "--warmup", str(args.warmup)],
                    tmp / f"li-{size}.json", timeout=900)
            elif args.peer:
                res["llamaindex"] = {"skipped": f"{BENCH_VENV_PYTHON} not found (see bench/ingest.py for the install)"}
            # Keep what is measured so far: this machine is shared and long runs get cut short.
            partial.write_text(json.dumps({"args": vars(args), "results": results}, indent=2, default=str))
            for row in flat_rows({size: res}):
                note(f"{size:,}: {row['retriever']} {row['index']} ({row['variant']}): p50 {row['p50_ms']:.1f} ms, "
                     f"p95 {row['p95_ms']:.1f} ms")
            if reached < sizes[-1] and stop_at is not None and time.time() >= stop_at:
                break
        if args.build_only:
            return
        del base_rag
        gc.collect()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = flat_rows(results)
    path = write_json("query_latency", {
        "args": vars(args), "base_texts": len(base), "base_chunks": n_chunks, "base_sentences": n_sent,
        "base_embed_s": base_embed_s, "perturbation_sigma": args.sigma,
        "mean_cosine_copy_to_base": cos_to_base, "results": rows, "by_size": results,
        "goals_hybrid": GOALS,
    })

    print(f"Store contents: {len(base):,} real MiniLM vectors ({n_chunks:,} SQuAD half-a chunks as the product cuts "
          f"them + {n_sent:,} sentences), repeated with N(0, {args.sigma}^2)/dim noise and renormalised "
          f"(copy-to-base cosine {cos_to_base:.3f}) up to each size.", file=sys.stderr)
    print(f"Queries: {len(timed)} SQuAD questions, one at a time, k=5, after {args.warmup} warm-up queries. "
          f"dense = embed + Chroma; hybrid = embed + Chroma (50) + BM25 (50, worker thread) + score fusion.",
          file=sys.stderr)
    for size, res in results.items():
        li = res.get("llamaindex") or {}
        if li.get("skipped") or li.get("error"):
            print(f"NOTE {size:,}: LlamaIndex {li.get('skipped') or li.get('error')}", file=sys.stderr)
        if res.get("recall"):
            r = res["recall"]
            print(f"{size:,}: Chroma HNSW recall@10 vs exact {r['recall']:.4f} (min {r['min_recall']:.1f}; of base "
                  f"texts {r['base_text_recall']:.4f}) on "
                  f"{r['queries']} questions; Chroma p50 {r['chroma']['p50_ms']:.1f} / p95 {r['chroma']['p95_ms']:.1f} ms",
                  file=sys.stderr)
        print(f"{size:,} chunks: process RSS {res['rss_mb']:.0f} MiB, Chroma on disk {res['chroma_disk_mb']:.0f} MiB, "
              + ", ".join(f"{k} {v:.0f} MiB" for k, v in res["keyword_disk_mb"].items()), file=sys.stderr)
    print(f"JSON: {path}", file=sys.stderr)
    table = []
    for r in rows:
        table.append([f"{r['size']:,}", r["retriever"], r["index"], r["variant"], r["p50_ms"], r["p95_ms"],
                      r["embed_p50_ms"], r.get("chroma50_p50_ms", r["chroma_p50_ms"]), r.get("bm25_p50_ms"),
                      r.get("bm25_p95_ms"), r.get("fetch_p50_ms"), r.get("inline_p50_ms"),
                      r.get("fetch_after_p50_ms"), r.get("all_texts_p50_ms"), r["rss_mb"]])
    for size, res in results.items():
        li = res.get("llamaindex") or {}
        if "search" in li:
            table.append([f"{size:,}", "LlamaIndex", "-", f"torch {li.get('torch_threads')} thr",
                          li["search"]["p50_ms"], li["search"]["p95_ms"], li["embed_only"]["p50_ms"],
                          None, None, None, None, None, None, None, None])
    import contextlib

    # With --json, stdout carries the JSON object alone; the table goes to stderr.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        print_table(["chunks", "retriever", "index", "encoder", "p50 ms", "p95 ms", "embed p50", "chroma p50",
                     "bm25 p50", "bm25 p95", "fetch p50", "inline p50", "fetch-after p50", "all-texts p50", "RSS MiB"],
                    table,
                    title="\nQuery latency (goal, hybrid on 2 cores: 100k p50 <= 10 ms, p95 <= 20 ms; "
                          "1M p95 <= 50 ms)")
    if args.json:
        print(json.dumps({"results": rows}, default=float))


if __name__ == "__main__":
    main()
