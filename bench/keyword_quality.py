"""BM25 variants side by side: SciFact nDCG@10 and SQuAD hit@1/hit@5, keyword alone and hybrid.

Tuning aid, run by hand; ``rag eval`` gives the reported figures. The corpora are ingested once
(``bench.tune_retrieval``'s cached pools: the product's chunks and every query's cosine to every
chunk); each variant then builds its own keyword index over the same chunks, reads the top
``fusion_candidates`` per query, and is scored keyword-only and fused with the pool's cosines
exactly as the product fuses them (min-max, ``keyword_weight``), so two variants differ by
their BM25 alone.

    python -m bench.tune_retrieval --only scifact --scifact-split train   # once, makes a pool
    python -m bench.keyword_quality --variants product,fts5               # pools reused

Pick by SciFact *train* and SQuAD half-a; SciFact test is reported, not tuned on.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from bench import tune_retrieval as tr
from bench.common import note, write_json

SHARED = tr.SHARED


@dataclasses.dataclass
class Corpus:
    name: str
    pool: tr.Pool
    chunks: list  # rag.types.Chunk, in pool order
    queries: list[str]
    score: Callable[[tr.Pool, np.ndarray], dict[str, float]]
    keys: tuple[str, ...]
    depth: int  # the k `rag eval` asks the retriever for (each list is read max(this, fusion_candidates) deep)


def _chunks(pool: tr.Pool, titles: dict[str, str]) -> list:
    from rag.types import Chunk

    return [Chunk(id=i, source=s, text=t, kind="text", title=titles.get(s, s), start=0, end=len(t), tokens=0)
            for i, s, t in zip(pool.ids, pool.sources, pool.texts)]


def scifact(split: str) -> Corpus:
    from rag.eval.beir import CHUNKS_PER_DOC, load_beir

    data = load_beir(SHARED / "beir" / "scifact", split=split)
    qids = [q for q in data.qrels if q in data.queries]
    pool = tr.cached_pool(f"scifact-{split}", True, lambda: (_ for _ in ()).throw(
        SystemExit(f"no SciFact {split} pool: run python -m bench.tune_retrieval --only scifact --scifact-split {split}")))
    titles = {d: (t or d) for d, (t, _) in data.corpus.items()}
    return Corpus(f"scifact-{split}", pool, _chunks(pool, titles), [data.queries[q] for q in qids],
                  lambda p, s: tr.score_beir(p, qids, data.qrels, s), ("ndcg@10", "recall@100"),
                  100 * CHUNKS_PER_DOC)


def squad() -> Corpus:
    from rag.eval.squad import DEPTH as SQUAD_DEPTH, load_squad

    data = load_squad(SHARED / "squad" / "squad-dev-v1.1-half-a.json")
    questions = data.questions
    pool = tr.cached_pool(f"squad-{len(questions)}", True, lambda: (_ for _ in ()).throw(
        SystemExit("no SQuAD pool: run python -m bench.tune_retrieval --only squad")))
    titles = {d.source: d.title for d in data.documents}
    return Corpus("squad-half-a", pool, _chunks(pool, titles), [q.text for q in questions],
                  lambda p, s: tr.score_squad(p, questions, s), ("hit@1", "hit@5"), SQUAD_DEPTH)


def evaluate(corpus: Corpus, make_index: Callable[[Path], object]) -> dict[str, float]:
    """Build the variant's index over the corpus's chunks, run every query, score keyword and hybrid."""
    from rag.settings import Settings

    pool = corpus.pool
    depth = max(Settings.fusion_candidates, corpus.depth)
    where = {i: n for n, i in enumerate(pool.ids)}
    with tempfile.TemporaryDirectory() as tmp:
        index = make_index(Path(tmp))
        t0 = time.perf_counter()
        for lo in range(0, len(corpus.chunks), 2000):
            index.add(corpus.chunks[lo : lo + 2000])
        built = time.perf_counter() - t0
        bm25 = np.zeros_like(pool.cosine)
        kw_rank = np.zeros(pool.cosine.shape, dtype=np.int32)
        t0 = time.perf_counter()
        for qi, q in enumerate(corpus.queries):
            for r, (cid, score) in enumerate(index.search(q, depth), start=1):
                bm25[qi, where[cid]] = score
                kw_rank[qi, where[cid]] = r
        searched = (time.perf_counter() - t0) / max(len(corpus.queries), 1)
        index.close()
    p = dataclasses.replace(pool, bm25=bm25, kw_rank=kw_rank)
    keyword = np.where(kw_rank > 0, bm25, -1.0)
    hybrid = tr.minmax_fusion(p, 1 - Settings.keyword_weight, depth)
    out: dict[str, float] = {}
    for mode, scores in (("keyword", keyword), ("hybrid", hybrid)):
        scores = corpus.score(p, scores)
        out.update({f"{mode} {k}": scores[k] for k in corpus.keys})
    out["build s"] = built
    out["ms/query"] = searched * 1000
    return out


def latency(corpora: list[Corpus], names: list[str], known: dict, size: int, queries: int = 400,
            block: int = 50) -> dict[str, float]:
    """Median BM25 ms per query (top ``fusion_candidates``) of each variant over ``size`` chunks.

    The corpora's chunks are repeated under new ids up to ``size``; the variants are timed in
    interleaved blocks of the same queries, so machine load hits them alike.
    """
    from rag.settings import Settings

    base = [c for corpus in corpora for c in corpus.chunks]
    chunks = [dataclasses.replace(base[n % len(base)], id=f"{n}") for n in range(size)]
    qs = [q for corpus in corpora for q in corpus.queries]
    rng = np.random.default_rng(0)
    qs = [qs[i] for i in rng.permutation(len(qs))[:queries]]
    with tempfile.TemporaryDirectory() as tmp:
        indexes = {}
        for n in names:
            indexes[n] = index = known[n](Path(tmp) / n)
            for lo in range(0, len(chunks), 5000):
                index.add(chunks[lo : lo + 5000])
            for q in qs[:20]:
                index.search(q, Settings.fusion_candidates)  # warm-up
        times: dict[str, list[float]] = {n: [] for n in names}
        for lo in range(0, len(qs), block):
            for n in names:
                for q in qs[lo : lo + block]:
                    t0 = time.perf_counter()
                    indexes[n].search(q, Settings.fusion_candidates)
                    times[n].append(time.perf_counter() - t0)
        for index in indexes.values():
            index.close()
    return {n: float(np.median(t) * 1000) for n, t in times.items()}


def variants() -> dict[str, Callable[[Path], object]]:
    from rag.keyword import KeywordIndex
    from rag.keyword_fts5 import Fts5KeywordIndex

    out: dict[str, Callable[[Path], object]] = {
        "product": lambda d: KeywordIndex(d / "kw"),
        "fts5": lambda d: Fts5KeywordIndex(d / "kw.sqlite"),
    }
    try:
        from bench import keyword_variants
    except ImportError:
        return out
    out.update(keyword_variants.VARIANTS)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="product,fts5", help="comma-separated names")
    ap.add_argument("--corpora", default="scifact-train,squad,scifact-test")
    ap.add_argument("--latency", type=int, default=0, metavar="CHUNKS",
                    help="instead: median BM25 ms/query of each variant over this many chunks")
    args = ap.parse_args()
    known = variants()
    names = args.variants.split(",")
    for n in names:
        if n not in known:
            raise SystemExit(f"unknown variant {n!r}; known: {', '.join(known)}")
    loaders = {"scifact-train": lambda: scifact("train"), "scifact-test": lambda: scifact("test"), "squad": squad}
    results: dict[str, dict] = {}
    if args.latency:
        ms = latency([loaders[c]() for c in args.corpora.split(",")], names, known, args.latency)
        for n, v in ms.items():
            print(f"{args.latency} chunks  {n:<28} median {v:.3f} ms  ({v / ms[names[0]]:.2f}x {names[0]})")
        write_json("keyword_quality_latency", {"chunks": args.latency, "median_ms": ms})
        return
    for cname in args.corpora.split(","):
        corpus = loaders[cname]()
        results[cname] = {}
        for n in names:
            note(f"{cname}: {n}")
            results[cname][n] = r = evaluate(corpus, known[n])
            print(f"{cname:<14} {n:<28}" + "  ".join(f"{k} {v:.4f}" for k, v in r.items()), flush=True)
        del corpus
    write_json("keyword_quality", results)


if __name__ == "__main__":
    main()
