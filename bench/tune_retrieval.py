"""Compare retrieval modes (dense, keyword, hybrid at several weights) on SQuAD over ONE ingestion.

Tuning aid, run by hand: `rag eval` gives the reported figures; this script ingests once
(optionally with titles prefixed to the embedded text) and scores many retriever
configurations against the same store, so their differences are not ingestion noise.

    python -m bench.tune_retrieval ../shared/data/squad/squad-dev-v1.1-half-a.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.common import write_json
from rag.eval.squad import is_hit, load_squad
from rag.retrieve import Retriever

CONFIGS = [("dense", 1.0), ("keyword", 1.0), ("hybrid", 0.5), ("hybrid", 1.0), ("hybrid", 1.5), ("hybrid", 2.0)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("squad")
    ap.add_argument("--limit-questions", type=int, default=None)
    args = ap.parse_args()

    from ingest.index import SourceJob
    from rag import RAG

    data = load_squad(args.squad)
    questions = data.questions[: args.limit_questions]
    with tempfile.TemporaryDirectory() as tmp:
        rag = RAG(Path(tmp))
        t0 = time.perf_counter()
        rag.ingest([SourceJob(d.source, lambda d=d: [d]) for d in data.documents], progress=True)
        ingest_s = time.perf_counter() - t0
        rows = {}
        for mode, weight in CONFIGS:
            retriever = Retriever(rag.embedder, rag.store, mode=mode, keyword_weight=weight)
            sums = {"hit@1": 0, "hit@5": 0, "hit@10": 0}
            t0 = time.perf_counter()
            for q in questions:
                flags = [is_hit(h, q) for h in retriever.search(q.text, 10)]
                for k in (1, 5, 10):
                    sums[f"hit@{k}"] += any(flags[:k])
            rows[f"{mode}:{weight}"] = {**{k: v / len(questions) for k, v in sums.items()},
                                        "ms_per_query": 1000 * (time.perf_counter() - t0) / len(questions)}
    print(f"\nSQuAD {data.name}: {len(questions)} questions, ingest {ingest_s:.0f} s")
    print(f"{'config':<14}{'hit@1':>8}{'hit@5':>8}{'hit@10':>8}{'ms/q':>8}")
    for name, r in rows.items():
        print(f"{name:<14}{r['hit@1']:>8.3f}{r['hit@5']:>8.3f}{r['hit@10']:>8.3f}{r['ms_per_query']:>8.1f}")
    write_json("tune_retrieval", {"n": len(questions), "rows": rows})


if __name__ == "__main__":
    main()
