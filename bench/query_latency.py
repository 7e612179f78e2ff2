"""Query latency through the product's retriever, dense and hybrid, at 10k and 100k chunks.

Run (from the repo root):

    .venv/bin/python -m bench.query_latency            # 10k and 100k chunks, 500 timed queries each
    .venv/bin/python -m bench.query_latency --quick    # smoke run: 5k chunks, 100 queries

The stores are synthetic in size, real in content: MiniLM vectors of a real base set
(SQuAD half-a chunks as the product cuts them, plus single SQuAD sentences) are
repeated with small Gaussian perturbations, renormalised, until the store holds 10k and
then 100k chunks (each copy keeps its base text). Embedding 100k real chunks would take
hours on this machine; the perturbed copies keep Chroma's HNSW work realistic. Chunks
are written with the product's store (Chroma + the SQLite FTS5 keyword index) directly.

Queries are SQuAD questions, one at a time, warm (a warm-up round first). For each
query, each query encoder (ONNX Runtime, the product's default, and torch, the baseline in
the same run) and each intra-op thread count compared (default and 1: with other work on the
cores, 2 threads on a short query wait on each other), we time, back to back: the
dense retriever (embed + Chroma search), the hybrid retriever (embed + Chroma + BM25 + fusion),
the embedder alone, the Chroma search alone (query vector precomputed) and the BM25 search
alone. When .venv-bench has LlamaIndex, its retriever
(VectorStoreIndex.from_vector_store over the same Chroma collection) is timed too, in a
subprocess, on the same questions.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import shutil
import sys
import tempfile
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

GOAL_P50_MS, GOAL_P95_MS = 15.0, 30.0


def base_set(max_sentences: int, max_articles: int | None, workdir: Path):
    """Real chunks (product chunking of SQuAD paragraphs) and sentences, as product Chunks."""
    from dataclasses import replace

    from rag.text import sentence_spans
    from rag.types import chunk_id

    from rag.service import RAG

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


def disk_mb(path: Path) -> float:
    """Bytes under ``path``, in MiB."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def fill(base_vecs: np.ndarray, n: int, start: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Vectors start..n-1: copy c of base i is base i plus N(0, sigma^2) per dimension, renormalised."""
    b = len(base_vecs)
    idx = np.arange(start, n)
    vecs = base_vecs[idx % b].copy()
    copies = idx // b
    noisy = copies > 0
    vecs[noisy] += rng.normal(0.0, sigma, size=(int(noisy.sum()), base_vecs.shape[1])).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs.astype(np.float32)


def fill_chunks(base, start: int, n: int):
    """Chunks start..n-1: base texts and metadata; copies get their own source and every one a unique id."""
    import hashlib
    from dataclasses import replace

    b = len(base)
    out = []
    for i in range(start, n):
        c = base[i % b]
        copy = i // b
        src = c.source if copy == 0 else f"{c.source} (copy {copy})"
        out.append(replace(c, id=hashlib.sha256(f"bench-ql:{i}".encode()).hexdigest()[:32], source=src))
    return out


def measure_product(rag, queries: list[str], warmup: int, threads: list[int],
                    encoders: list[str]) -> dict[str, Any]:
    """Interleaved per query, per query encoder and per thread count: dense and hybrid search, and their parts.

    threads: intra-op thread counts to compare (0 = the process default, what the product uses
    unless RAG_TORCH_THREADS is set). encoders: the query encoders compared ("onnx", the
    default, and "torch", the baseline). Settings are switched per query so every one sees the
    same load.
    """
    import torch

    from rag.embed import get_embedder
    from rag.retrieve import Retriever

    default = torch.get_num_threads()
    store = rag.store
    s = rag.settings
    variants = []
    for encoder in encoders:
        for th in threads:
            embedder = get_embedder(s.model_dir or None, threads=th, query_encoder=encoder, cache_dir=s.cache_dir)
            embedder.warm_up()
            is_default = encoder == s.query_encoder and th == s.torch_threads
            dense = Retriever(embedder, store, mode="dense")
            hybrid = Retriever(embedder, store, mode="hybrid", keyword_weight=s.keyword_weight,
                               candidates=s.fusion_candidates)
            variants.append((f"{encoder} {th or default} thr", th or default, embedder, dense, hybrid, is_default))
    torch.set_num_threads(default)
    keys = ("dense", "hybrid", "embed_only", "store_query_only", "keyword_only")
    samples = {label: {k: [] for k in keys} for label, *_ in variants}
    try:
        for i, q in enumerate(queries):
            for label, th, embedder, dense, hybrid, _ in variants:
                torch.set_num_threads(th)
                t = now()
                dense.search(q, k=5)
                full = now() - t
                t = now()
                hybrid.search(q, k=5)
                hyb = now() - t
                t = now()
                v = embedder.embed([q])[0]
                emb = now() - t
                t = now()
                store.query(v, 5)
                srch = now() - t
                t = now()
                store.keyword_query(q, s.fusion_candidates)
                kw = now() - t
                if i >= warmup:
                    for key, val in zip(keys, (full, hyb, emb, srch, kw)):
                        samples[label][key].append(val)
    finally:
        torch.set_num_threads(default)
    return {label: {k: summarize_ms(v) for k, v in samples[label].items()}
            | {"default": is_default, "query_path": embedder.query_path}
            for label, _, embedder, _, _, is_default in variants}


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
        client = chromadb.PersistentClient(path=args.store_dir, settings=ChromaSettings(anonymized_telemetry=False))
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

def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 5k chunks, small base, 60 queries")
    p.add_argument("--sizes", default="10000,100000", help="store sizes, ascending (comma-separated)")
    p.add_argument("--queries", type=int, default=500, help="timed queries per size")
    p.add_argument("--queries-file", help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--threads", default="0,1",
                   help="intra-op thread counts to compare per query (0 = default, one per core)")
    p.add_argument("--encoders", default="onnx,torch",
                   help="query encoders to compare (onnx is the product's default, torch the baseline)")
    p.add_argument("--sentences", type=int, default=2500, help="single sentences added to the base set")
    p.add_argument("--sigma", type=float, default=0.02, help="per-dimension noise of the perturbed copies")
    p.add_argument("--no-peer", dest="peer", action="store_false", help="skip the LlamaIndex retriever")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--store-dir", help=argparse.SUPPRESS)
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
    setup_offline()

    tmp = Path(tempfile.mkdtemp(prefix="bench-ql-"))
    try:
        note("embedding the real base set (product chunks of SQuAD half-a + sentences)")
        base_rag, articles, base, n_chunks, n_sent = base_set(args.sentences, articles_cap, tmp / "base")
        embedder = base_rag.embedder
        # The base vectors are cached (bench/results/cache/), keyed by the texts and the model.
        key = hashlib.sha256("\x1e".join([str(base_rag.settings.model_dir or "bundled")]
                                          + [c.text for c in base]).encode()).hexdigest()[:16]
        cache = RESULTS_DIR / "cache" / f"query-latency-base-{key}.npy"
        if cache.is_file():
            base_vecs, base_embed_s = np.load(cache), None
            note(f"base set: {len(base)} texts ({n_chunks} chunks + {n_sent} sentences), vectors from {cache}")
        else:
            t = now()
            base_vecs = embedder.embed([c.text for c in base])
            base_embed_s = now() - t
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, base_vecs)
            note(f"base set: {len(base)} texts ({n_chunks} chunks + {n_sent} sentences) embedded in "
                 f"{base_embed_s:.1f}s")
        rng = np.random.default_rng(0)
        probe = fill(base_vecs, 2 * len(base), len(base), args.sigma, rng)
        cos_to_base = float(np.mean(np.sum(probe * base_vecs, axis=1)))
        queries = [q.text for q in sample_questions(load_squad(max_articles=articles_cap), args.queries + args.warmup)]
        warm = queries[: args.warmup]
        timed = queries[args.warmup :]
        qfile = tmp / "queries.json"
        qfile.write_text(json.dumps(warm + timed))

        from rag.service import RAG

        data_dir = tmp / "store"
        rag = RAG(data_dir)
        store = rag.store  # Chroma and the keyword index, written together as ingestion does
        filled = 0
        results: dict[int, dict[str, Any]] = {}
        partial = RESULTS_DIR / "query_latency-partial.json"
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        for size in sizes:
            t = now()
            inserted = size - filled
            step = 10_000
            for lo in range(filled, size, step):
                hi = min(lo + step, size)
                store.add(fill_chunks(base, lo, hi), fill(base_vecs, hi, lo, args.sigma, rng))
                note(f"inserted {hi:,}/{size:,}")
            insert_s = now() - t
            filled = size
            note(f"{size:,} chunks in the store ({store.count():,}); timing {len(timed)} queries")
            rag.embedder  # noqa: B018 - the shared, already loaded embedder
            res = {"count": store.count(), "insert_s": insert_s, "insert_per_s": inserted / insert_s,
                   "chroma_disk_mb": disk_mb(rag.settings.store_dir),
                   "keyword_disk_mb": disk_mb(rag.settings.data_dir / "keyword")}
            res["ours"] = measure_product(rag, warm + timed, args.warmup, threads, args.encoders.split(","))
            # For the scale-out estimate (memory per million chunks): read after the queries, when
            # every compared encoder is loaded at every size, so the growth is the store's alone.
            res["rss_mb"] = rss_mb()
            results[size] = res
            if args.peer and BENCH_VENV_PYTHON.is_file():
                note(f"{size:,}: LlamaIndex retriever over the same collection")
                res["llamaindex"] = run_child(
                    BENCH_VENV_PYTHON, "bench.query_latency",
                    ["--child", "--store-dir", str(rag.settings.store_dir), "--collection", rag.settings.collection,
                     "--queries-file", str(qfile), "--warmup", str(args.warmup)],
                    tmp / f"li-{size}.json", timeout=900)
            elif args.peer:
                res["llamaindex"] = {"skipped": f"{BENCH_VENV_PYTHON} not found (see bench/ingest.py for the install)"}
            # Keep what is measured so far: this machine is shared and long runs get cut short.
            partial.write_text(json.dumps({"args": vars(args), "results": results}, indent=2, default=str))
            for label, o in res["ours"].items():
                note(f"{size:,}: ours {label}: dense p50 {o['dense']['p50_ms']:.1f} ms, "
                     f"p95 {o['dense']['p95_ms']:.1f} ms; hybrid p50 {o['hybrid']['p50_ms']:.1f} ms, "
                     f"p95 {o['hybrid']['p95_ms']:.1f} ms (partial results in {partial})")
        del rag, store, base_rag
        gc.collect()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    path = write_json("query_latency", {
        "args": vars(args), "base_texts": len(base), "base_chunks": n_chunks, "base_sentences": n_sent,
        "base_embed_s": base_embed_s, "perturbation_sigma": args.sigma,
        "mean_cosine_copy_to_base": cos_to_base, "results": results,
        "goal": {"p50_ms": GOAL_P50_MS, "p95_ms": GOAL_P95_MS, "at": 100_000},
    })

    print()
    print(f"Store contents: {len(base):,} real MiniLM vectors ({n_chunks:,} SQuAD half-a chunks as the product cuts "
          f"them + {n_sent:,} sentences), repeated with N(0, {args.sigma}^2)/dim noise and renormalised "
          f"(copy-to-base cosine {cos_to_base:.3f}) up to each size; written with the product's store.")
    print(f"Queries: {len(timed)} SQuAD questions, one at a time, k=5, after {args.warmup} warm-up queries. "
          f"dense = embed + Chroma; hybrid = embed + Chroma (50) + BM25 (50) + score fusion.")
    for size, res in results.items():
        li = res.get("llamaindex") or {}
        if li.get("skipped") or li.get("error"):
            print(f"NOTE {size:,}: LlamaIndex {li.get('skipped') or li.get('error')}")
    print(f"JSON: {path}")
    rows = []
    for size, res in results.items():
        for variant, o in res["ours"].items():
            for mode in ("dense", "hybrid"):
                label = f"ours {mode}, {variant}" + (" (default)" if o["default"] else "")
                rows.append([f"{size:,}", label, o[mode]["p50_ms"], o[mode]["p95_ms"],
                             o["embed_only"]["p50_ms"], o["store_query_only"]["p50_ms"], o["keyword_only"]["p50_ms"],
                             res["insert_per_s"]])
        li = res.get("llamaindex") or {}
        if "search" in li:
            rows.append([f"{size:,}", f"LlamaIndex retriever, torch {li.get('torch_threads')} thr",
                         li["search"]["p50_ms"], li["search"]["p95_ms"], li["embed_only"]["p50_ms"], None, None, None])
    for size, res in results.items():
        print(f"{size:,} chunks: process RSS {res['rss_mb']:.0f} MiB, Chroma on disk {res['chroma_disk_mb']:.0f} MiB, "
              f"keyword index {res['keyword_disk_mb']:.0f} MiB")
    print_table(["chunks", "retriever", "p50 ms", "p95 ms", "embed p50", "chroma p50", "bm25 p50",
                 "insert/s"], rows, title=f"\nQuery latency (goal at 100k: p50 <= {GOAL_P50_MS:.0f} ms, "
                                          f"p95 <= {GOAL_P95_MS:.0f} ms)")


if __name__ == "__main__":
    main()
