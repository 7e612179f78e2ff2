"""Sweep chunk size x overlap on SQuAD (hit@1, hit@5) and BEIR SciFact (nDCG@10 with chunks).

Every configuration is a fresh evaluation (``rag.eval``): a new temporary store, the
product's own ingestion and chunking, every question through ``RAG.search``.

Run (from the repo root):

    .venv/bin/python -m bench.sweep_chunking                  # 128/200/254 x 0/32 on both data sets
    .venv/bin/python -m bench.sweep_chunking --only squad
    .venv/bin/python -m bench.sweep_chunking --beir-configs 128/0,254/32
    .venv/bin/python -m bench.sweep_chunking --include scifact.json   # reuse `rag eval ... --json` output
    .venv/bin/python -m bench.sweep_chunking --table-only bench/results/sweep_chunking-<time>.json

The results go to ``bench/results/sweep_chunking-<UTC time>.json`` (rewritten after every run,
so an interrupted sweep keeps what it measured) and a table is printed at the end. Set
``RAG_TORCH_THREADS=1`` on a shared machine: one busy core beats two contended ones.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if not __package__:
    # Run as a file, bench/ would come first on sys.path and bench/ingest.py would shadow the
    # project's ingest package; the repository root must come first instead.
    sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
SHARED = ROOT.parent / "shared" / "data"
GRID = [(t, o) for t in (128, 200, 254) for o in (0, 32)]

SQUAD_COLUMNS = ["hit@1", "hit@5", "hit@10", "mrr", "n", "chunks", "seconds"]
BEIR_COLUMNS = ["ndcg@10", "recall@10", "recall@100", "mrr@10", "n", "indexed", "seconds"]


def parse_configs(text: str) -> list[tuple[int, int]]:
    """``"128/0,200/32"`` -> [(128, 0), (200, 32)]."""
    out = []
    for part in text.split(","):
        if part.strip():
            tokens, _, overlap = part.strip().partition("/")
            out.append((int(tokens), int(overlap or 0)))
    return out


def table(rows: list[dict[str, Any]], columns: list[str], title: str) -> str:
    """A fixed-width table of one data set's runs, sorted by chunk size then overlap."""
    head = ["tokens", "overlap", *columns]
    lines = [title, "  ".join(f"{h:>10}" for h in head)]
    for r in sorted(rows, key=lambda r: (r.get("chunk_tokens") or 0, r.get("chunk_overlap") or 0)):
        cells = [r.get("chunk_tokens"), r.get("chunk_overlap"), *(r.get(c) for c in columns)]
        lines.append("  ".join(f"{_cell(c):>10}" for c in cells))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value <= 1 else f"{value:.1f}"
    return str(value)


def report(results: list[dict[str, Any]]) -> str:
    squad = [r for r in results if r.get("eval") == "squad"]
    beir = [r for r in results if r.get("eval") == "beir" and r.get("units") == "chunks"]
    parts = []
    if squad:
        parts.append(table(squad, SQUAD_COLUMNS, f"SQuAD {squad[0].get('dataset', '')}"))
    if beir:
        parts.append(table(beir, BEIR_COLUMNS, f"BEIR {beir[0].get('dataset', '')} (chunks)"))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--squad", type=Path, default=SHARED / "squad" / "squad-dev-v1.1-half-a.json")
    parser.add_argument("--beir", type=Path, default=SHARED / "beir" / "scifact")
    parser.add_argument("--squad-configs", type=parse_configs, default=GRID, help="e.g. 128/0,200/32")
    parser.add_argument("--beir-configs", type=parse_configs, default=GRID, help="e.g. 128/0,254/32")
    parser.add_argument("--only", choices=["squad", "beir"], default=None)
    parser.add_argument("--include", type=Path, action="append", default=[],
                        help="a result JSON (from `rag eval ... --json` or an earlier sweep) to reuse")
    parser.add_argument("--out", type=Path, default=None, help="where to write the JSON results")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.add_argument("--table-only", type=Path, default=None, help="print the table of a results file")
    args = parser.parse_args(argv)

    if args.table_only:
        print(report(_load(args.table_only)))
        return 0

    from rag.eval import evaluate_beir, evaluate_squad
    from rag.settings import Settings

    results: list[dict[str, Any]] = [r for path in args.include for r in _load(path)]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or ROOT / "bench" / "results" / f"sweep_chunking-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)

    def done(kind: str, tokens: int, overlap: int) -> bool:
        return any(r.get("eval") == kind and r.get("units", "chunks") == "chunks"
                   and (r.get("chunk_tokens"), r.get("chunk_overlap")) == (tokens, overlap) for r in results)

    plan = []
    if args.only in (None, "squad"):
        plan += [("squad", t, o) for t, o in args.squad_configs]
    if args.only in (None, "beir"):
        plan += [("beir", t, o) for t, o in args.beir_configs]
    started = time.perf_counter()
    for kind, tokens, overlap in plan:
        if done(kind, tokens, overlap):
            print(f"[sweep] {kind} {tokens}/{overlap}: already measured, reused", file=sys.stderr)
            continue
        settings = Settings.from_env(chunk_tokens=tokens, chunk_overlap=overlap)
        print(f"[sweep] {kind} {tokens}/{overlap} ...", file=sys.stderr, flush=True)
        if kind == "squad":
            result = evaluate_squad(args.squad, settings=settings, progress=args.progress)
            summary = f"hit@1 {result['hit@1']:.4f} hit@5 {result['hit@5']:.4f}"
        else:
            result = evaluate_beir(args.beir, settings=settings, units="chunks", progress=args.progress)
            summary = f"ndcg@10 {result['ndcg@10']:.4f} recall@100 {result['recall@100']:.4f}"
        result["torch_threads"] = settings.torch_threads
        results.append(result)
        print(f"[sweep] {kind} {tokens}/{overlap}: {summary} ({result['seconds']} s)", file=sys.stderr, flush=True)
        out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(report(results))
    print(f"\n{len(plan)} configuration(s) in {time.perf_counter() - started:.0f} s; results in {out}")
    return 0


def _load(path: Path) -> list[dict[str, Any]]:
    value = json.loads(path.read_text(encoding="utf-8"))
    return value if isinstance(value, list) else [value]


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
