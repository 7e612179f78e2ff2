"""The refusal table from ``rag eval refusals --dump`` files: the product's rule, joint and held out.

    python -m bench.refusal_table NAME=DUMP.jsonl [NAME=DUMP.jsonl ...] [--below T] [--fit]

Each dump is one store configuration (SQuAD half-a alone, or with distractors) as
``rag eval refusals --dump`` wrote it: per question, the answerable and unanswerable
:class:`rag.types.Evidence` with every measurement. The score is recomputed with
:func:`rag.refuse.score_of` (today's weights), so a change of weights is checked on the
product's own numbers without asking every question again. Printed per configuration:

* refused unanswerable (the questions no other source answers, as ``rag eval refusals``
  counts them) / answerable at ``settings.refuse_below`` (or ``--below``);
* *held out, per store*: ``rag eval refusals``' own cross-fit (a threshold fitted on the even
  articles of that store, scored on the odd ones, and the other way round);
* *held out, jointly*: one threshold fitted on the even articles of every store at once (the
  largest refusing at most 5% of answerable questions in each), scored on the odd ones, and
  the other way round;
* *left-out store*: the joint threshold fitted on the other stores only.

``--fit`` also searches the weights of :func:`rag.refuse.score_of` (coordinate steps from
today's) for the most unanswerable questions refused in the worst store at a joint threshold,
on the even and on the odd articles, and prints each half's weights scored on the other half.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields, replace

import numpy as np

from rag.eval.refusals import best_threshold
from rag.types import Evidence

MEASURES = [f.name for f in fields(Evidence) if f.name != "score"]


def load(path: str) -> list[dict]:
    """The dump's rows: source, answered elsewhere, and the two Evidence objects."""
    rows = []
    for line in open(path, encoding="utf-8"):
        row = json.loads(line)
        known = {f.name for f in fields(Evidence)}
        rows.append({"source": row["source"], "elsewhere": bool(row.get("answered_elsewhere")),
                     "a": Evidence(**{k: v for k, v in row["answerable"].items() if k in known}),
                     "u": Evidence(**{k: v for k, v in row["unanswerable"].items() if k in known})})
    return rows


def weighted(weights: dict[str, float], e: Evidence) -> float:
    return sum(w * getattr(e, k) for k, w in weights.items())


def current_weights() -> dict[str, float]:
    """:func:`rag.refuse.score_of`'s weights, read back from it one measurement at a time."""
    from rag.refuse import score_of

    zero = Evidence(score=0.0, chunk=0.0, coverage=0.0)
    return {k: score_of(replace(zero, **{k: 1.0})) for k in MEASURES}


def scores(data: dict[str, list[dict]], weights: dict[str, float]):
    """Per configuration: answerable scores, unanswerable scores, clear (not answered elsewhere), article parity."""
    order: dict[str, int] = {}
    out = {}
    for name, rows in data.items():
        for r in rows:
            order.setdefault(r["source"], len(order))
        out[name] = (np.array([weighted(weights, r["a"]) for r in rows]),
                     np.array([weighted(weights, r["u"]) for r in rows]),
                     np.array([not r["elsewhere"] for r in rows]),
                     np.array([order[r["source"]] % 2 for r in rows]))
    return out


def joint_threshold(S, masks=None, names=None) -> float:
    """The largest threshold refusing at most 5% of answerable questions in every configuration (of ``names``)."""
    names = names or list(S)
    return min(best_threshold(S[n][0][masks[n]] if masks else S[n][0], [])[0] for n in names)


def rates(S, n, t, mask=None):
    a, u, clear, _ = S[n]
    m = np.ones(len(a), bool) if mask is None else mask
    return float((u[m & clear] < t).mean()), float((a[m] < t).mean())


def table(data, weights, below):
    S = scores(data, weights)
    rows = {n: {"now": rates(S, n, below)} for n in S}
    for n in S:
        folds = []
        for p in (0, 1):
            fit, held = S[n][3] == p, S[n][3] != p
            t = best_threshold(S[n][0][fit], S[n][1][fit & S[n][2]])[0]
            folds.append(rates(S, n, t, held))
        rows[n]["store"] = tuple(np.mean(folds, axis=0))
    joint = {n: [] for n in S}
    for p in (0, 1):
        t = joint_threshold(S, {n: S[n][3] == p for n in S})
        for n in S:
            joint[n].append(rates(S, n, t, S[n][3] != p))
    for n in S:
        rows[n]["joint"] = tuple(np.mean(joint[n], axis=0))
        rows[n]["left_out"] = rates(S, n, joint_threshold(S, names=[x for x in S if x != n]))
    return rows, joint_threshold(S)


def show(data, weights, below) -> None:
    rows, fitted = table(data, weights, below)
    print("weights: " + ", ".join(f"{k} {w:g}" for k, w in weights.items() if w) + f"; refuse below {below:g} "
          f"(the joint fit on everything: {fitted:.4f})")
    print("| store | refused unanswerable / answerable | held out, per store | held out, jointly | left-out store |")
    for n, r in rows.items():
        print(f"| {n} | " + " | ".join(f"{r[k][0]:.3f} / {r[k][1]:.3f}" for k in ("now", "store", "joint", "left_out"))
              + " |")


def objective(S, masks=None) -> float:
    t = joint_threshold(S, masks)
    got = [rates(S, n, t, masks[n] if masks else None)[0] for n in S]
    return min(got) + 0.25 * float(np.mean(got))


def search(data, weights, masks=None, steps=(0.1, 0.05, 0.02, 0.01), fixed=("sentence",)) -> dict[str, float]:
    """Coordinate steps on every weight but ``fixed`` (the scale), keeping a step while it raises :func:`objective`."""
    w = dict(weights)
    best = objective(scores(data, w), masks)
    for step in steps:
        improved = True
        while improved:
            improved = False
            for k in MEASURES:
                if k in fixed:
                    continue
                for d in (-step, step):
                    trial = {**w, k: round(w.get(k, 0.0) + d, 4)}
                    v = objective(scores(data, trial), masks)
                    if v > best + 1e-12:
                        best, w, improved = v, trial, True
    return w


def main() -> None:
    from rag.settings import REFUSE_BELOW

    ap = argparse.ArgumentParser()
    ap.add_argument("dumps", nargs="+", help="NAME=DUMP.jsonl per store configuration")
    ap.add_argument("--below", type=float, default=REFUSE_BELOW)
    ap.add_argument("--fit", action="store_true")
    args = ap.parse_args()
    data = {}
    for spec in args.dumps:
        name, _, path = spec.partition("=")
        data[name] = load(path)
    weights = current_weights()
    show(data, weights, args.below)
    if args.fit:
        S = scores(data, weights)
        for p in (0, 1):
            masks = {n: S[n][3] == p for n in S}
            w = search(data, weights, masks)
            St = scores(data, w)
            t = joint_threshold(St, masks)
            held = {n: rates(St, n, t, St[n][3] != p) for n in St}
            print(f"fitted on parity {p}: " + ", ".join(f"{k} {v:g}" for k, v in w.items() if v) + f", below {t:.4f}; "
                  "held out: " + "  ".join(f"{n} {a:.3f}/{b:.3f}" for n, (a, b) in held.items()))
        w = search(data, weights)
        print("fitted on everything: " + ", ".join(f"{k} {v:g}" for k, v in w.items() if v)
              + f", below {joint_threshold(scores(data, w)):.4f}")
        show(data, w, joint_threshold(scores(data, w)))


if __name__ == "__main__":
    main()
