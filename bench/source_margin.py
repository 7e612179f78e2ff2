"""What ``RAG_SOURCE_MARGIN`` costs: how often the cosine cut below the best hit drops the answer.

A language model's prompt gets only the retrieved sources whose cosine to the question is within
the margin of the best one's (``rag.answer.near_best``). For questions spread over SQuAD half-a,
retrieved by the product (hybrid, top k), this prints for each margin the share of questions
whose answering chunk (a chunk of the right article holding a gold answer) survives the cut,
among those whose top k holds one, and how many sources a prompt then carries.

    python -m bench.source_margin [--questions 1000] [--store DIR] [--json]

The store (SQuAD half-a through the product's ingestion) is built in ``--store`` once and reused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.common import SQUAD_HALF_A, print_table, setup_offline

MARGINS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 2.0)


def measure(store: Path, squad: Path, questions: int, k: int) -> list[dict[str, float]]:
    """One row per margin: answer kept, sources per prompt, sources without the answer per prompt.

    Args:
        store: data dir; SQuAD is ingested into it when it does not exist yet.
        squad: the SQuAD JSON file.
        questions: how many questions, spread over the file.
        k: hits retrieved per question (the product's ``top_k``).

    Returns:
        Rows with ``margin``, ``answer_kept``, ``sources``, ``sources_without_answer``.
    """
    from ingest.index import SourceJob
    from rag import RAG
    from rag.answer import near_best
    from rag.eval.common import spread_questions
    from rag.eval.squad import is_hit, load_squad

    data = load_squad(squad)
    fresh = not store.exists()
    rag = RAG(store)
    if fresh:
        rag.ingest([SourceJob(d.source, lambda d=d: [d]) for d in data.documents], progress=True)
    asked = spread_questions(data.questions, questions)
    kept = dict.fromkeys(MARGINS, 0)
    packed = dict.fromkeys(MARGINS, 0)
    without = dict.fromkeys(MARGINS, 0)
    answerable = 0
    for q in asked:
        hits = rag.search(q.text, k=k)
        holds = {h.chunk.id for h in hits if is_hit(h, q)}
        answerable += bool(holds)
        for m in MARGINS:
            near = near_best(hits, m)
            packed[m] += len(near)
            without[m] += sum(h.chunk.id not in holds for h in near)
            kept[m] += any(h.chunk.id in holds for h in near)
    n = len(asked)
    return [{"margin": m, "answer_kept": kept[m] / max(answerable, 1), "sources": packed[m] / n,
             "sources_without_answer": without[m] / n, "questions": n, "answerable_in_top_k": answerable}
            for m in MARGINS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--squad", type=Path, default=SQUAD_HALF_A)
    parser.add_argument("--store", type=Path, default=Path("/tmp/bench-source-margin"))
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    setup_offline()
    rows = measure(args.store, args.squad, args.questions, args.k)
    if args.json:
        print(json.dumps({"results": rows}))
        return
    print_table(["margin", "answer kept", "sources / prompt", "without the answer"],
                [(r["margin"], f"{r['answer_kept']:.3f}", f"{r['sources']:.2f}", f"{r['sources_without_answer']:.2f}")
                 for r in rows],
                title=f"{rows[0]['questions']} questions, {rows[0]['answerable_in_top_k']} with the answer in the top {args.k}")


if __name__ == "__main__":
    main()
