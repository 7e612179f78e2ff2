"""BM25 on tantivy against the SQLite FTS5 index it replaced: retrieval quality over ONE ingestion.

Run (from the repo root):

    .venv/bin/python -m bench.keyword_search                     # SQuAD half-a and SciFact test
    .venv/bin/python -m bench.keyword_search --only squad --limit 2000

Each corpus is ingested once through the product (its chunking, MiniLM, Chroma and the
tantivy index); the same chunks, read back from Chroma, are then written into an FTS5 index
(``rag.keyword_fts5``, the index of earlier versions) too. Every question is then asked
through the product's retriever (``rag.retrieve.Retriever``) over Chroma plus each keyword
index, in keyword mode and in the default hybrid mode, and scored the way ``rag eval``
scores it (SQuAD: hit@k of an answer-bearing chunk of the right article; SciFact: nDCG@10
over documents at their best chunk). Differences between the indexes are never ingestion
noise. BM25 search time per question (the keyword index alone, top 50) is reported too.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import DATA_DIR, SQUAD_HALF_A, note, print_table, summarize_ms, write_json

SCIFACT = DATA_DIR / "beir" / "scifact"


def _variants(rag, fts5_path: Path):
    """(index name, keyword index) pairs over the same chunks: tantivy (the product's) and FTS5."""
    from rag.keyword_fts5 import Fts5KeywordIndex

    fts5 = Fts5KeywordIndex(fts5_path)
    t = time.perf_counter()
    for page in rag.store.vectors.iter_chunks():
        fts5.add(page)
    note(f"FTS5 index filled from Chroma: {fts5.count():,} chunks in {time.perf_counter() - t:.1f}s")
    assert fts5.all_ids() == rag.store.keywords.all_ids()
    return [("fts5", fts5), ("tantivy", rag.store.keywords)]


def _retrievers(rag, index, modes):
    from rag.retrieve import Retriever
    from rag.store import CombinedStore

    s = rag.settings
    store = CombinedStore(rag.store.vectors, index)
    return {mode: Retriever(rag.embedder, store, mode=mode, fusion=s.fusion, keyword_weight=s.keyword_weight,
                            candidates=s.fusion_candidates) for mode in modes}


def _bm25_times(index, questions: list[str], depth: int) -> dict[str, float]:
    times = []
    for q in questions:
        t = time.perf_counter()
        index.search(q, depth)
        times.append(time.perf_counter() - t)
    return summarize_ms(times)


def run_squad(settings, limit: int | None, modes) -> dict[str, Any]:
    from ingest.index import SourceJob
    from rag.eval.common import temporary_rag
    from rag.eval.metrics import hit_at_k, reciprocal_rank
    from rag.eval.squad import DEPTH, HIT_KS, is_hit, load_squad

    data = load_squad(SQUAD_HALF_A)
    questions = data.questions[:limit] if limit else data.questions
    out: dict[str, Any] = {"n": len(questions)}
    with temporary_rag(settings) as rag:
        t = time.perf_counter()
        rag.ingest([SourceJob(d.source, lambda d=d: [d]) for d in data.documents], progress=True)
        out["ingest_s"] = time.perf_counter() - t
        out["chunks"] = rag.store.count()
        for name, index in _variants(rag, rag.settings.data_dir / "fts5.sqlite3"):
            for mode, retriever in _retrievers(rag, index, modes).items():
                sums = {f"hit@{k}": 0.0 for k in HIT_KS} | {"mrr": 0.0}
                for q in questions:
                    flags = [is_hit(h, q) for h in retriever.search(q.text, DEPTH)]
                    for k in HIT_KS:
                        sums[f"hit@{k}"] += hit_at_k(flags, k)
                    sums["mrr"] += reciprocal_rank(flags, DEPTH)
                out[f"{name} {mode}"] = {k: v / len(questions) for k, v in sums.items()}
                note(f"squad {name} {mode}: " + ", ".join(f"{k} {v:.4f}" for k, v in out[f"{name} {mode}"].items()))
            out[f"{name} bm25 time"] = _bm25_times(index, [q.text for q in questions[:1000]],
                                                   rag.settings.fusion_candidates)
    return out


def run_scifact(settings, limit: int | None, modes) -> dict[str, Any]:
    from rag.eval.beir import CHUNKS_PER_DOC, _first_per_doc, _index_chunks, load_beir
    from rag.eval.common import temporary_rag
    from rag.eval.metrics import ranking_scores

    data = load_beir(SCIFACT, "test")
    qids = list(data.queries)[:limit] if limit else list(data.queries)
    qrels = {q: data.qrels[q] for q in qids if q in data.qrels}
    cutoffs = [10, 100]
    out: dict[str, Any] = {"n": len(qrels)}
    with temporary_rag(settings) as rag:
        t = time.perf_counter()
        out["chunks"], _ = _index_chunks(rag, data, True)
        out["ingest_s"] = time.perf_counter() - t
        for name, index in _variants(rag, rag.settings.data_dir / "fts5.sqlite3"):
            for mode, retriever in _retrievers(rag, index, modes).items():
                rankings = {}
                for qid in qids:
                    hits = retriever.search(data.queries[qid], cutoffs[-1] * CHUNKS_PER_DOC)
                    rankings[qid] = _first_per_doc([h.source for h in hits])[: cutoffs[-1]]
                out[f"{name} {mode}"] = ranking_scores(qrels, rankings, cutoffs)
                note(f"scifact {name} {mode}: nDCG@10 {out[f'{name} {mode}']['ndcg@10']:.4f}")
            out[f"{name} bm25 time"] = _bm25_times(index, [data.queries[q] for q in qids],
                                                   rag.settings.fusion_candidates)
    return out


def run_scifact_bm25(settings, limit: int | None) -> dict[str, Any]:
    """SciFact in keyword mode without embedding anything: the product's chunks, ranked by BM25 alone.

    Keyword mode orders hits by the keyword index alone (the cosine it attaches changes no
    rank), so this is ``rag eval beir --retrieval-mode keyword``'s ranking, minus the 12k
    chunk vectors that take most of its time on a CPU.
    """
    from rag.eval.beir import CHUNKS_PER_DOC, _first_per_doc, doc_text, load_beir
    from rag.eval.common import temporary_rag
    from rag.eval.metrics import ranking_scores
    from rag.keyword_fts5 import Fts5KeywordIndex
    from rag.types import Document

    data = load_beir(SCIFACT, "test")
    qids = list(data.queries)[:limit] if limit else list(data.queries)
    qrels = {q: data.qrels[q] for q in qids if q in data.qrels}
    out: dict[str, Any] = {"n": len(qrels)}
    with temporary_rag(settings) as rag:
        docs = [Document(source=d, text=doc_text(t, x), kind="text", title=t or d)
                for d, (t, x) in data.corpus.items() if doc_text(t, x)]
        t0 = time.perf_counter()
        chunks = rag.indexer.chunk(docs)
        note(f"scifact: {len(chunks):,} chunks cut in {time.perf_counter() - t0:.1f}s (not embedded)")
        out["chunks"] = len(chunks)
        fts5 = Fts5KeywordIndex(rag.settings.data_dir / "fts5.sqlite3")
        from rag.keyword import KeywordIndex

        tantivy = KeywordIndex(rag.settings.data_dir / "tantivy")
        for index in (fts5, tantivy):
            for lo in range(0, len(chunks), 5000):
                index.add(chunks[lo : lo + 5000])
        assert fts5.all_ids() == tantivy.all_ids()
        for name, index in (("fts5", fts5), ("tantivy", tantivy)):
            rankings = {}
            by_id = {c.id: c.source for c in chunks}
            for qid in qids:
                ids = [i for i, _ in index.search(data.queries[qid], 100 * CHUNKS_PER_DOC)]
                rankings[qid] = _first_per_doc([by_id[i] for i in ids])[:100]
            out[f"{name} keyword"] = ranking_scores(qrels, rankings, [10, 100])
            note(f"scifact {name} keyword (BM25 only): nDCG@10 {out[f'{name} keyword']['ndcg@10']:.4f}")
            out[f"{name} bm25 time"] = _bm25_times(index, [data.queries[q] for q in qids],
                                                   rag.settings.fusion_candidates)
        fts5.close()
        tantivy.close()
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=["squad", "scifact"], help="one corpus only")
    p.add_argument("--limit", type=int, help="first N questions only (smoke runs)")
    p.add_argument("--modes", default="keyword,hybrid")
    p.add_argument("--scifact-bm25-only", action="store_true",
                   help="SciFact in keyword mode only, nothing embedded (minutes instead of the 12k-chunk embedding)")
    args = p.parse_args(argv)
    from bench.common import setup_offline
    from rag.settings import Settings

    setup_offline()
    settings = Settings.from_env()
    modes = args.modes.split(",")
    results: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-kw-"))
    try:
        if args.only in (None, "squad"):
            results["squad"] = run_squad(settings, args.limit, modes)
        if args.only in (None, "scifact"):
            results["scifact"] = (run_scifact_bm25(settings, args.limit) if args.scifact_bm25_only
                                  else run_scifact(settings, args.limit, modes))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    path = write_json("keyword_search", {"args": vars(args), "results": results})
    rows = []
    for corpus, res in results.items():
        for name in ("fts5", "tantivy"):
            for mode in modes:
                if f"{name} {mode}" not in res:
                    continue
                m = res[f"{name} {mode}"]
                rows.append([corpus, name, mode, m.get("hit@1"), m.get("hit@5"), m.get("mrr"), m.get("ndcg@10"),
                             m.get("recall@100"), res[f"{name} bm25 time"]["p50_ms"],
                             res[f"{name} bm25 time"]["p95_ms"]])
    print(f"JSON: {path}")
    print_table(["corpus", "index", "mode", "hit@1", "hit@5", "mrr", "nDCG@10", "recall@100", "bm25 p50 ms",
                 "bm25 p95 ms"], rows, title="\nKeyword index quality over one ingestion per corpus")


if __name__ == "__main__":
    main()
