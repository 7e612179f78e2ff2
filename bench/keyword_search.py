"""BM25 search in the product's SQLite FTS5 index: the product's query against earlier forms.

Run (from the repo root):

    .venv/bin/python -m bench.keyword_search             # 10k and 100k chunks, 500 questions
    .venv/bin/python -m bench.keyword_search --quick     # 5k chunks, 100 questions

The index holds real text: SQuAD half-a cut into chunks by the product's chunker, plus
single sentences, repeated (each copy its own chunk) up to each size, as in
bench/query_latency.py. Queries are SQuAD questions, one at a time, interleaved between the
variants so every one sees the same load. Variants:

- "join, then rank": the query of the previous release, which joined every matching row to
  the chunk table before sorting by BM25;
- "rank, then join" (the product's ``KeywordIndex.search``): FTS5 ranks and keeps the top k,
  then only those are joined.

Both must return the same ids and scores; the script checks that on every query.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.common import load_squad, note, now, print_table, sample_questions, setup_offline, summarize_ms, write_json

K = 50  # the depth the hybrid retriever reads (Settings.fusion_candidates)


def join_then_rank(index, query: str, k: int) -> list[tuple[str, float]]:
    """The previous release's query: join every match, then sort."""
    from rag.keyword import match_expression

    expr = match_expression(query)
    if expr is None:
        return []
    sql = ("SELECT c.id, -bm25(fts) AS score FROM fts JOIN chunks c ON c.rowid = fts.rowid WHERE fts MATCH ?"
           " ORDER BY bm25(fts) LIMIT ?")
    with index._lock:
        return [(r[0], float(r[1])) for r in index._db.execute(sql, (expr, k))]


def same_ranking(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> bool:
    """Same scores in the same order, and the same ids above the last score (ties there may differ)."""
    if [round(s, 6) for _, s in a] != [round(s, 6) for _, s in b]:
        return False
    if not a:
        return True
    cut = a[-1][1] + 1e-9
    return {i for i, s in a if s > cut} == {i for i, s in b if s > cut}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 5k chunks, 100 questions")
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--warmup", type=int, default=30)
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.queries, args.warmup = "5000", 100, 10
    setup_offline()
    from bench.query_latency import base_set, fill_chunks
    from rag.keyword import KeywordIndex

    sizes = sorted(int(x) for x in args.sizes.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="bench-kw-"))
    results: dict[int, dict[str, Any]] = {}
    try:
        _, articles, base, n_chunks, n_sent = base_set(2500, 1 if args.quick else None, tmp / "base")
        questions = [q.text for q in sample_questions(load_squad(max_articles=1 if args.quick else None),
                                                      args.queries + args.warmup)]
        index = KeywordIndex(tmp / "kw.sqlite3")
        variants = {"join, then rank (previous)": lambda q: join_then_rank(index, q, K),
                    "rank, then join (product)": lambda q: index.search(q, K)}
        filled = 0
        for size in sizes:
            for lo in range(filled, size, 10_000):
                index.add(fill_chunks(base, lo, min(lo + 10_000, size)))
            filled = size
            note(f"{size:,} chunks indexed; timing {args.queries} questions")
            samples: dict[str, list[float]] = {name: [] for name in variants}
            mismatches = 0
            for i, q in enumerate(questions):
                got = {}
                for name, fn in variants.items():
                    t = now()
                    got[name] = fn(q)
                    if i >= args.warmup:
                        samples[name].append(now() - t)
                if not same_ranking(*got.values()):
                    mismatches += 1
            results[size] = {"queries": len(questions) - args.warmup, "mismatches": mismatches,
                             **{name: summarize_ms(v) for name, v in samples.items()}}
        index.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    path = write_json("keyword_search", {"args": vars(args), "k": K, "base_chunks": n_chunks,
                                         "base_sentences": n_sent, "results": results})
    rows = []
    for size, res in results.items():
        base_p50 = res["join, then rank (previous)"]["p50_ms"]
        for name in variants:
            r = res[name]
            rows.append([f"{size:,}", name, r["p50_ms"], r["p95_ms"], base_p50 / r["p50_ms"], res["mismatches"]])
    print(f"JSON: {path}")
    print_table(["chunks", "query", "p50 ms", "p95 ms", "speed-up p50", "result mismatches"], rows,
                title=f"\nBM25 top-{K} in SQLite FTS5 ({len(questions) - args.warmup} SQuAD questions)")


if __name__ == "__main__":
    main()
