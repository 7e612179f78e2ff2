"""Tune retrieval: score many ranking configurations over ONE ingestion of SQuAD and SciFact.

Tuning aid, run by hand; `rag eval` gives the reported figures. Each corpus is ingested
once through the product (same chunking, same MiniLM, same SQLite FTS5 BM25 index); then,
per query, the cosine of every chunk (exact, from the stored vectors) and the BM25 scores
of the top keyword candidates are collected, and each configuration is a pure re-ranking
of those, so differences between configurations are never ingestion noise.

Tune on visible data only: SQuAD half-a and SciFact's *train* qrels (its test qrels are
reported once, by `rag eval beir`).

    python -m bench.tune_retrieval                 # both corpora
    python -m bench.tune_retrieval --only squad --limit-questions 2000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from bench.common import note, write_json

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEPTH = 100  # keyword candidates read per query, as deep as the retriever's fusion ever looks


@dataclass
class Pool:
    """Everything a configuration may use: per query, cosine to every chunk and BM25 of the top chunks."""

    ids: list[str]
    sources: list[str]
    texts: list[str]
    cosine: np.ndarray  # (queries, chunks)
    bm25: np.ndarray  # (queries, chunks), 0 where not among the keyword candidates
    kw_rank: np.ndarray  # (queries, chunks), rank among keyword candidates (1-based), 0 where absent


def build_pool(rag, queries: list[str], *, embed_title: bool = False) -> Pool:
    """Dump the store, embed the queries, and read the keyword candidates of each query.

    embed_title: re-embed every chunk as "title\ntext" (an experiment: the product embeds the text).
    """
    dump = rag.store.dump()  # id -> (text, metadata, vector)
    ids = list(dump)
    index = {i: n for n, i in enumerate(ids)}
    texts = [dump[i][0] for i in ids]
    sources = [dump[i][1]["source"] for i in ids]
    vectors = np.asarray([dump[i][2] for i in ids], dtype=np.float32)
    if embed_title:
        note("re-embedding chunks with their titles")
        vectors = rag.embedder.embed([f"{dump[i][1].get('title', '')}\n{dump[i][0]}" for i in ids])
    note(f"embedding {len(queries)} queries")
    qvecs = rag.embedder.embed(queries)
    cosine = qvecs @ vectors.T
    bm25 = np.zeros_like(cosine)
    kw_rank = np.zeros(cosine.shape, dtype=np.int32)
    for qi, q in enumerate(queries):
        for r, (cid, score) in enumerate(rag.store.keyword_query(q, DEPTH), start=1):
            bm25[qi, index[cid]] = score
            kw_rank[qi, index[cid]] = r
    return Pool(ids, sources, texts, cosine, bm25, kw_rank)


def cached_pool(name: str, reuse: bool, make: Callable[[], Pool]) -> Pool:
    """The pool from bench/results/cache when asked to reuse it, else made and saved there."""
    import pickle

    from bench.common import RESULTS_DIR

    path = RESULTS_DIR / "cache" / f"tune-{name}.pkl"
    if reuse and path.is_file():
        note(f"reusing {path}")

        class _Unpickler(pickle.Unpickler):
            # A pool pickled by `python -m bench.tune_retrieval` names its class __main__.Pool.
            def find_class(self, module: str, name: str):
                return Pool if name == "Pool" else super().find_class(module, name)

        with path.open("rb") as f:
            return _Unpickler(f).load()
    pool = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(pool))
    return pool


def ranks_of(scores: np.ndarray) -> np.ndarray:
    """1-based rank of every column per row (best = 1)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    rows = np.arange(scores.shape[0])[:, None]
    ranks[rows, order] = np.arange(1, scores.shape[1] + 1)
    return ranks


def _minmax(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    src = np.where(mask, x, np.nan)
    lo = np.nanmin(src, axis=1, keepdims=True)
    hi = np.nanmax(src, axis=1, keepdims=True)
    return np.where(mask, (x - lo) / np.maximum(hi - lo, 1e-9), 0.0)


def minmax_fusion(pool: Pool, alpha: float, n: int = 50, dense_rank: np.ndarray | None = None) -> np.ndarray:
    """The retriever's min-max fusion: alpha * cosine' + (1 - alpha) * BM25' over the union of each list's top n.

    Each side is min-max normalised over that union (BM25 0 where a chunk is not a keyword
    candidate); chunks outside the union score -1.
    """
    dense_rank = ranks_of(pool.cosine) if dense_rank is None else dense_rank
    union = (dense_rank <= n) | ((pool.kw_rank > 0) & (pool.kw_rank <= n))
    bm = np.where(pool.kw_rank <= n, pool.bm25, 0.0)
    fused = alpha * _minmax(pool.cosine, union) + (1 - alpha) * _minmax(bm, union)
    return np.where(union, fused, -1.0)


def configs(pool: Pool) -> dict[str, Callable[[], np.ndarray]]:
    """Named scoring functions: each returns a (queries, chunks) score matrix, higher is better."""
    dense_rank = ranks_of(pool.cosine)
    in_kw = pool.kw_rank > 0

    def rrf(w: float, c: float = 60.0, depth: int = 50) -> np.ndarray:
        d = np.where(dense_rank <= depth, 1.0 / (c + dense_rank), 0.0)
        k = np.where(in_kw & (pool.kw_rank <= depth), w / (c + pool.kw_rank), 0.0)
        return d + k

    def minmax(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        src = np.where(mask, x, np.nan) if mask is not None else x
        lo = np.nanmin(src, axis=1, keepdims=True)
        hi = np.nanmax(src, axis=1, keepdims=True)
        out = (x - lo) / np.maximum(hi - lo, 1e-9)
        return np.where(mask, out, 0.0) if mask is not None else out

    def convex(alpha: float, n: int = 50) -> np.ndarray:
        return minmax_fusion(pool, alpha, n, dense_rank)

    def convex_floor(alpha: float, n: int = 50) -> np.ndarray:
        # As convex, but a keyword-only candidate's cosine is taken as the dense list's floor
        # (it is at most that), which saves fetching its vector.
        in_dense = dense_rank <= n
        union = in_dense | (in_kw & (pool.kw_rank <= n))
        floor = np.min(np.where(in_dense, pool.cosine, np.inf), axis=1, keepdims=True)
        cos = np.where(in_dense, pool.cosine, floor)
        bm = np.where(pool.kw_rank <= n, pool.bm25, 0.0)
        fused = alpha * minmax(cos, union) + (1 - alpha) * minmax(bm, union)
        return np.where(union, fused, -1.0)

    def zscore(alpha: float, n: int = 50) -> np.ndarray:
        union = (dense_rank <= n) | (in_kw & (pool.kw_rank <= n))
        bm = np.where(pool.kw_rank <= n, pool.bm25, 0.0)

        def z(x):
            src = np.where(union, x, np.nan)
            return (x - np.nanmean(src, axis=1, keepdims=True)) / np.maximum(np.nanstd(src, axis=1, keepdims=True), 1e-9)

        return np.where(union, alpha * z(pool.cosine) + (1 - alpha) * z(bm), -1e9)

    def bm25_max_norm(alpha: float) -> np.ndarray:
        # BM25 divided by the query's best BM25 (no floor), cosine as is.
        best = np.maximum(pool.bm25.max(axis=1, keepdims=True), 1e-9)
        return alpha * pool.cosine + (1 - alpha) * pool.bm25 / best

    out: dict[str, Callable[[], np.ndarray]] = {
        "dense": lambda: pool.cosine,
        "keyword": lambda: np.where(in_kw, pool.bm25, -1.0),
    }
    for w in (0.5, 1.0, 1.5, 2.0, 3.0):
        out[f"rrf w={w}"] = lambda w=w: rrf(w)
    for c in (10.0, 30.0):
        out[f"rrf w=1 c={c:g}"] = lambda c=c: rrf(1.0, c)
        out[f"rrf w=1.5 c={c:g}"] = lambda c=c: rrf(1.5, c)
    for a in (0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7):
        out[f"minmax a={a}"] = lambda a=a: convex(a)
    for a in (0.4, 0.5, 0.6):
        out[f"minmax-floor a={a}"] = lambda a=a: convex_floor(a)
    for n in (20, 100):
        out[f"minmax a=0.5 n={n}"] = lambda n=n: convex(0.5, n)
    for a in (0.4, 0.5, 0.6):
        out[f"zscore a={a}"] = lambda a=a: zscore(a)
    for a in (0.3, 0.5, 0.7):
        out[f"cos+bm25/max a={a}"] = lambda a=a: bm25_max_norm(a)
    return out


def score_squad(pool: Pool, questions, scores: np.ndarray) -> dict[str, float]:
    """hit@1/5/10 and MRR@10 of a score matrix (product rule: gold article and answer string)."""
    top = np.argsort(-scores, axis=1)[:, :10]
    h = {1: 0, 5: 0, 10: 0}
    mrr = 0.0
    lowered = [t.casefold() for t in pool.texts]
    for qi, q in enumerate(questions):
        answers = [a.casefold() for a in q.answers]
        flags = [pool.sources[c] == q.source and any(a in lowered[c] for a in answers) for c in top[qi]]
        for k in h:
            h[k] += any(flags[:k])
        if True in flags:
            mrr += 1.0 / (flags.index(True) + 1)
    n = len(questions)
    return {"hit@1": h[1] / n, "hit@5": h[5] / n, "hit@10": h[10] / n, "mrr": mrr / n}


def score_beir(pool: Pool, qids: list[str], qrels, scores: np.ndarray) -> dict[str, float]:
    """nDCG@10, recall@10/100, MRR@10 with documents ranked at their best chunk."""
    from rag.eval.metrics import ranking_scores

    top = np.argsort(-scores, axis=1)[:, :400]
    rankings = {}
    for qi, qid in enumerate(qids):
        seen: dict[str, None] = {}
        for c in top[qi]:
            seen.setdefault(pool.sources[c], None)
            if len(seen) >= 100:
                break
        rankings[qid] = list(seen)
    return ranking_scores({q: qrels[q] for q in qids}, rankings, (10, 100))


def run_squad(args) -> dict:
    from ingest.index import SourceJob
    from rag import RAG
    from rag.eval.squad import load_squad

    data = load_squad(args.squad)
    questions = data.questions[: args.limit_questions]

    def make() -> Pool:
        with tempfile.TemporaryDirectory() as tmp:
            rag = RAG(Path(tmp))
            t0 = time.perf_counter()
            rag.ingest([SourceJob(d.source, lambda d=d: [d]) for d in data.documents], progress=True)
            note(f"SQuAD ingested in {time.perf_counter() - t0:.0f} s")
            return build_pool(rag, [q.text for q in questions], embed_title=args.embed_title)

    pool = cached_pool(f"squad-{len(questions)}{'-title' if args.embed_title else ''}", args.reuse, make)
    rows = {name: score_squad(pool, questions, fn()) for name, fn in configs(pool).items()}
    print_rows(f"SQuAD {data.name}: {len(questions)} questions, {len(pool.ids)} chunks", rows,
               ("hit@1", "hit@5", "hit@10", "mrr"))
    return rows


def run_scifact(args) -> dict:
    from rag import RAG
    from rag.eval.beir import _index_chunks, load_beir

    data = load_beir(args.scifact, split=args.scifact_split)
    qids = [q for q in data.qrels if q in data.queries]

    def make() -> Pool:
        with tempfile.TemporaryDirectory() as tmp:
            rag = RAG(Path(tmp))
            t0 = time.perf_counter()
            _index_chunks(rag, data, True)
            note(f"SciFact ingested in {time.perf_counter() - t0:.0f} s")
            return build_pool(rag, [data.queries[q] for q in qids])

    pool = cached_pool(f"scifact-{args.scifact_split}", args.reuse, make)
    rows = {name: score_beir(pool, qids, data.qrels, fn()) for name, fn in configs(pool).items()}
    print_rows(f"SciFact {args.scifact_split} qrels: {len(qids)} queries, {len(pool.ids)} chunks", rows,
               ("ndcg@10", "recall@10", "recall@100", "mrr@10"))
    return rows


def print_rows(title: str, rows: dict, keys: tuple[str, ...]) -> None:
    print(f"\n{title}")
    print(f"{'config':<22}" + "".join(f"{k:>11}" for k in keys))
    for name, r in rows.items():
        print(f"{name:<22}" + "".join(f"{r[k]:>11.4f}" for k in keys))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--squad", default=str(SHARED / "squad" / "squad-dev-v1.1-half-a.json"))
    ap.add_argument("--scifact", default=str(SHARED / "beir" / "scifact"))
    ap.add_argument("--scifact-split", default="train", help="qrels to tune on (train; test is for reporting)")
    ap.add_argument("--only", choices=("squad", "scifact"))
    ap.add_argument("--limit-questions", type=int, default=None)
    ap.add_argument("--embed-title", action="store_true", help="experiment: embed chunks as title + text")
    ap.add_argument("--reuse", action="store_true", help="reuse the cached candidate pools (same code and data)")
    args = ap.parse_args()
    out = {}
    if args.only in (None, "squad"):
        out["squad"] = run_squad(args)
    if args.only in (None, "scifact"):
        out["scifact"] = run_scifact(args)
    write_json("tune_retrieval", out)


if __name__ == "__main__":
    main()
