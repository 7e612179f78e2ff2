"""Does an int8 MiniLM cost retrieval quality? SciFact nDCG@10 and SQuAD hit@5, fp32 vs int8, one run.

Run (from the repo root):

    .venv/bin/python -m bench.int8_quality                 # SQuAD half-a (all questions) + SciFact test
    .venv/bin/python -m bench.int8_quality --reuse         # reuse the cached pools and vectors
    .venv/bin/python -m bench.int8_quality --limit-questions 1000 --speed-texts 256

The corpora are ingested once through the product (``bench.tune_retrieval``'s pools: the
product's chunks, its stored fp32 vectors and its BM25 candidates per query). Then the
chunks and the queries are embedded again through the product's own encoders: torch fp32 (and
the fp32 ONNX question encoder) and the int8 ones, ``RAG_DOC_ENCODER=onnx-int8`` and
``RAG_QUERY_ENCODER=onnx-int8`` (MiniLM exported to ONNX and quantized with
``onnxruntime.quantization.quantize_dynamic``, 8-bit unsigned weights, one scale per output channel:
``rag.embed_onnx``), and each pairing is scored with the product's ranking (hybrid: min-max
score fusion at the default keyword weight over the top ``fusion_candidates`` of each list)
and with dense ranking alone:

* fp32 / fp32 — the product today (the pool's own cosines);
* int8 documents / fp32 questions — faster ingestion, questions as today;
* fp32 documents / int8 questions — a faster question encoder, the store as today;
* int8 / int8.

The fp32 re-embedding is scored too, as the control: it must reproduce the product's figures
(a non-zero delta there would mean the comparison, not int8, moved them).
The adoption rule (README, Ingestion): int8 is taken only where every delta is >= -0.005.

Speed, in the same run and interleaved in blocks: chunks/s of the torch and the int8 chunk
encoders on the same chunk texts (batches of 32), and the median single-question latency of the
fp32 and int8 question encoders.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS_DIR, note, print_table, setup_offline, write_json

ADOPT_MAX_DROP = 0.005


def _cached_vectors(name: str, reuse: bool, make) -> np.ndarray:
    path = RESULTS_DIR / "cache" / f"int8-{name}.npy"
    if reuse and path.is_file():
        return np.load(path)
    vecs = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vecs)
    return vecs


def _queries_one_by_one(embedder, queries: list[str]) -> tuple[np.ndarray, float]:
    """Vectors of ``queries`` embedded one at a time (as the product embeds a question), and median ms."""
    out = np.zeros((len(queries), 384), dtype=np.float32)
    times = []
    for i, q in enumerate(queries):
        t = time.perf_counter()
        out[i] = embedder.embed([q])[0]
        times.append(time.perf_counter() - t)
    return out, float(np.median(times) * 1000)


def speed(encoders: dict[str, Any], texts: list[str], block: int = 64) -> dict[str, float]:
    """chunks/s of each chunk encoder on ``texts``, interleaved in blocks so each sees the same load."""
    spent = {name: 0.0 for name in encoders}
    for lo in range(0, len(texts), block):
        part = texts[lo : lo + block]
        for name, embedder in encoders.items():
            t = time.perf_counter()
            embedder.embed(part)
            spent[name] += time.perf_counter() - t
    return {name: len(texts) / s for name, s in spent.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--squad", default=None, help="SQuAD file (default: the shared half-a)")
    ap.add_argument("--scifact", default=None, help="SciFact directory (default: the shared one)")
    ap.add_argument("--limit-questions", type=int, default=None, help="SQuAD questions (default: all)")
    ap.add_argument("--speed-texts", type=int, default=512, help="chunk texts timed per encoder")
    ap.add_argument("--reuse", action="store_true", help="reuse cached pools and int8 vectors")
    args = ap.parse_args(argv)
    setup_offline()

    from bench import tune_retrieval as tr
    from rag import RAG
    from rag.eval.beir import _index_chunks, load_beir
    from rag.eval.squad import load_squad
    from rag.settings import Settings
    from ingest.index import SourceJob

    settings = Settings.from_env()
    alpha = 1 - settings.keyword_weight
    depth = settings.fusion_candidates

    import tempfile

    squad = load_squad(args.squad or str(tr.SHARED / "squad" / "squad-dev-v1.1-half-a.json"))
    questions = squad.questions[: args.limit_questions]
    beir = load_beir(args.scifact or str(tr.SHARED / "beir" / "scifact"), split="test")
    qids = [q for q in beir.qrels if q in beir.queries]

    def squad_pool() -> Any:
        with tempfile.TemporaryDirectory() as tmp:
            rag = RAG(Path(tmp))
            rag.ingest([SourceJob(d.source, lambda d=d: [d]) for d in squad.documents], progress=True)
            return tr.build_pool(rag, [q.text for q in questions])

    def scifact_pool() -> Any:
        with tempfile.TemporaryDirectory() as tmp:
            rag = RAG(Path(tmp))
            _index_chunks(rag, beir, True)
            # The train queries' pool from the same ingestion, for bench.tune_retrieval --reuse.
            train = load_beir(args.scifact or str(tr.SHARED / "beir" / "scifact"), split="train")
            train_qids = [q for q in train.qrels if q in train.queries]
            tr.cached_pool("scifact-train", False,
                           lambda: tr.build_pool(rag, [train.queries[q] for q in train_qids]))
            return tr.build_pool(rag, [beir.queries[q] for q in qids])

    note("pools: the product's chunks, fp32 vectors and BM25 candidates (bench.tune_retrieval)")
    pools = {
        "squad": (tr.cached_pool(f"squad-{len(questions)}", args.reuse, squad_pool), [q.text for q in questions]),
        "scifact": (tr.cached_pool("scifact-test", args.reuse, scifact_pool), [beir.queries[q] for q in qids]),
    }

    from rag.embed import MiniLMEmbedder

    model_dir = settings.model_dir or None
    fp32 = MiniLMEmbedder(model_dir, query_encoder="onnx", doc_encoder="torch", cache_dir=settings.cache_dir)
    int8 = MiniLMEmbedder(model_dir, query_encoder="onnx-int8", doc_encoder="onnx-int8", cache_dir=settings.cache_dir)
    if (int8.query_path, int8.doc_path) != ("onnx-int8", "onnx-int8"):
        raise SystemExit("the int8 encoders could not be loaded here (see the warning above)")

    def score(corpus: str, pool: Any, cosine: np.ndarray) -> dict[str, float]:
        p = dataclasses.replace(pool, cosine=cosine)
        fns = tr.configs(p)
        hybrid = fns[f"minmax a={alpha:g}"]() if f"minmax a={alpha:g}" in fns else None
        if hybrid is None or depth != 50:
            raise SystemExit(f"this bench scores the defaults (keyword_weight 0.5, fusion_candidates 50); "
                             f"got {settings.keyword_weight}, {depth}")
        if corpus == "squad":
            return {"hybrid_hit@5": tr.score_squad(p, questions, hybrid)["hit@5"],
                    "dense_hit@5": tr.score_squad(p, questions, p.cosine)["hit@5"]}
        return {"hybrid_ndcg@10": tr.score_beir(p, qids, beir.qrels, hybrid)["ndcg@10"],
                "dense_ndcg@10": tr.score_beir(p, qids, beir.qrels, p.cosine)["ndcg@10"]}

    results: dict[str, Any] = {"pairings": {}}
    query_ms: dict[str, float] = {}
    for corpus, (pool, queries) in pools.items():
        note(f"{corpus}: {len(pool.ids):,} chunks, {len(queries):,} queries: embedding with fp32 and int8")
        docs = {"fp32": _cached_vectors(f"{corpus}-docs-torch", args.reuse, lambda: fp32.embed(pool.texts)),
                "int8": _cached_vectors(f"{corpus}-docs-product-int8", args.reuse, lambda: int8.embed(pool.texts))}
        qv: dict[str, np.ndarray] = {}
        for name, enc in (("fp32", fp32), ("int8", int8)):
            qv[name], ms = _queries_one_by_one(enc, queries)
            query_ms[f"{corpus}_{name}"] = ms
        rows = {"product (stored vectors, fp32 questions)": score(corpus, pool, pool.cosine)}
        for d in ("fp32", "int8"):
            for q in ("fp32", "int8"):
                label = f"docs {d} / questions {q}"
                rows[label] = score(corpus, pool, qv[q] @ docs[d].T)
        results["pairings"][corpus] = rows

    note(f"speed: {args.speed_texts} SciFact chunks per encoder, interleaved")
    texts = pools["scifact"][0].texts[: args.speed_texts]
    results["chunks_per_s"] = speed({"torch_fp32": fp32, "onnx_int8": int8}, texts)
    results["question_ms_median"] = query_ms
    path = write_json("int8_quality", results)

    table = []
    for corpus, rows in results["pairings"].items():
        base = next(iter(rows.values()))
        for label, r in rows.items():
            for key, val in r.items():
                table.append([corpus, label, key, val, val - base[key]])
    print_table(["corpus", "pairing", "metric", "value", "delta vs product"], table,
                title="int8 MiniLM: retrieval quality (adopt only where every delta >= -0.005)")
    cps = results["chunks_per_s"]
    print(f"\nchunks/s on {len(texts)} SciFact chunks: torch fp32 {cps['torch_fp32']:.1f}, int8 "
          f"{cps['onnx_int8']:.1f} ({cps['onnx_int8'] / cps['torch_fp32']:.2f}x torch)")
    print("question encoder median ms: " + ", ".join(f"{k} {v:.2f}" for k, v in query_ms.items()))
    print(f"JSON: {path}")


if __name__ == "__main__":
    main()
