"""Small benchmark files in the real BEIR and SQuAD formats, written for one test."""

from __future__ import annotations

import json
from pathlib import Path


def write_beir(root: Path, corpus: list[dict], queries: list[dict], qrels: list[tuple[str, str, int]]) -> Path:
    """A BEIR folder with these entries."""
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    rows = "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows, encoding="utf-8")
    return root


def write_squad(path: Path, articles: list[dict]) -> Path:
    """A SQuAD v1.1 file with these articles."""
    path.write_text(json.dumps({"version": "1.1", "data": articles}), encoding="utf-8")
    return path


def article(title: str, paragraphs: list[tuple[str, list[tuple[str, list[str]]]]]) -> dict:
    """One SQuAD article: (context, [(question, [answers])]) per paragraph."""
    return {
        "title": title,
        "paragraphs": [
            {"context": context,
             "qas": [{"id": f"{title}-{i}-{j}", "question": q,
                      "answers": [{"text": a, "answer_start": 0} for a in answers]}
                     for j, (q, answers) in enumerate(qas)]}
            for i, (context, qas) in enumerate(paragraphs)
        ],
    }
