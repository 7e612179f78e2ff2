"""Fit and compare refusal rules offline on the features ``bench.refusal_features`` dumped.

    python -m bench.fit_refusals DUMP.jsonl [DUMP.jsonl ...] [--answerable LOGITS.json]
    python -m bench.fit_refusals DUMP.jsonl [...] --folds FOLDS.json [--max-false 0.05] [--unseen | --ideal]

Prints, per rule and store configuration, the share of unanswerable / answerable questions
refused at the rule's threshold, and the two-fold cross-fit by article; ``--answerable`` scores
with another reader's logits than the dumped ones (``bench.train_answerability --logits``).

``--folds FOLDS.json`` (``bench.train_answerability --heldout``: logits from a reader trained on
the even articles and one trained on the odd) instead runs the product's whole procedure held
out: each fold's reader and threshold (the joint one, at most 5 % of answerable questions
refused in every store) on its own articles, scored on the other articles with the same
reader, for a range of reader weights; ``--unseen`` fits the threshold on half the articles the
reader never saw and scores the other half instead; ``--ideal`` fits it on the very articles
it scores (the best any threshold could do with that reader on new text: what the reader itself
tells apart there, with no threshold drift).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import defaultdict

import numpy as np

_NAME = re.compile(r"\b[A-Z][\w'-]*|\b\d[\d,.]*\b")


def question_names(question: str) -> set[str]:
    """Capitalised words (not the first word) and numbers of a question, lower-cased (the old rule's names)."""
    from rag.text import STOP_WORDS as _STOP

    words = question.split()
    first = words[0] if words else ""
    return {n.lower().rstrip(".,") for n in _NAME.findall(question) if n != first and n.lower() not in _STOP}


def names_found(q: str, texts: list[str]) -> float:
    names = question_names(q)
    text = " ".join(texts).lower()
    return sum(x in text for x in names) / len(names) if names else 1.0


def features(row: dict, case: dict) -> dict[str, float]:
    words = row["words"]
    cos = case["cos"]
    top5 = cos[:5]
    c1 = max(top5) if top5 else 0.0
    sent_cos = [x for xs in case["sent_cos"] for x in xs]
    s1 = max(sent_cos) if sent_cos else 0.0
    sents = [set(ws) for hs in case["sent_words"] for ws in hs]
    n = sum(len(hs) for hs in case["sent_words"])
    dfc = defaultdict(int)
    for sw in sents:
        for x in sw:
            dfc[x] += 1
    qset = set(words)
    idf_c = {x: math.log((n + 1) / (dfc.get(x, 0) + 1)) + 1 for x in qset}
    tot_c = sum(idf_c.values()) or 1.0
    ov_c = max((sum(idf_c[x] for x in sw) / tot_c for sw in sents), default=0.0)
    from rag.refuse import MIN_IDF_SCOPE

    N = max(case["n"], MIN_IDF_SCOPE)  # the product's floor (rag.refuse._idf)
    df = case["df"]
    idf = {x: math.log((N - df.get(x, 0) + 0.5) / (df.get(x, 0) + 0.5) + 1) for x in qset}
    tot = sum(idf.values()) or 1.0
    ov_i = max((sum(idf[x] for x in sw) / tot for sw in sents), default=0.0) if qset else 1.0
    chunks = [set(ws) for ws in case["chunk_words"][:5]]
    ch_i = max((sum(idf[x] for x in cw) / tot for cw in chunks), default=0.0) if qset else 1.0
    union = set().union(*chunks) if chunks else set()
    miss = sum(idf[x] for x in qset - union) / tot if qset else 0.0
    # rarity of the rarest missing word relative to log N
    lnN = math.log(N + 1)
    rare_missing = max((idf[x] / lnN for x in qset - union), default=0.0)
    nm = names_found(row["q"], case["text"])
    margin = c1 - (float(np.mean(cos[5:10])) if len(cos) > 5 else 0.0)
    zero = [x for x in qset if df.get(x, 0) == 0]
    extra = {}
    for pw in (2, 3):
        idp = {x: v ** pw for x, v in idf.items()}
        tp = sum(idp.values()) or 1.0
        extra[f"ov_i{pw}"] = max((sum(idp[x] for x in sw) / tp for sw in sents), default=0.0) if qset else 1.0
        extra[f"ch_i{pw}"] = max((sum(idp[x] for x in cw) / tp for cw in chunks), default=0.0) if qset else 1.0
    ranked = sorted(qset, key=lambda x: -idf[x])
    extra["rarest_top"] = float(bool(ranked) and ranked[0] in union)
    extra["rare2_chunk"] = float(len(ranked) < 2 or any(set(ranked[:2]) <= cw for cw in chunks))
    extra["rare2_sent"] = float(len(ranked) < 2 or any(set(ranked[:2]) <= sw for sw in sents))
    zero_any = float(bool(zero))
    zero_share = sum(idf[x] for x in zero) / tot if qset else 0.0
    legacy = c1 + 0.5 * s1 + 0.5 * ov_c + 0.1 * nm
    kw = case.get("keyword_ids") or []
    ids = case.get("ids") or []
    extra["agree"] = float(bool(kw) and bool(ids) and kw[0] == ids[int(np.argmax(top5))])
    extra.update(margins(case, idf))
    return {"phrases": case.get("phrases") or 0.0,  # dumps older than the phrase share hold none
            "answerable": case.get("answerable") or 0.0,  # nor those older than the answerability reader
            "c1": c1, "s1": s1, "ov_c": ov_c, "ov_i": ov_i, "ch_i": ch_i, "miss": miss, "rare_miss": rare_missing,
            "names": nm, "margin": margin, "zero_any": zero_any, "zero_share": zero_share,
            "name_miss": float(nm < 1.0), **extra, "legacy": legacy}


# What a question's top 10 hits score when they all come from one source (no other to trail).
ONE_SOURCE_MARGIN = 0.3


def margins(case: dict, idf: dict[str, float]) -> dict[str, float]:
    """How far ahead the best candidate is: of the best other source, and in each of the two lists.

    ``source_margin``: the best hit's cosine minus the best cosine of a hit from another source
    (:data:`ONE_SOURCE_MARGIN` when none): a question's own document stands out from the rest,
    while without it several sources tie. ``dense_gap`` and ``keyword_gap``: the dense list's and
    BM25's best minus their second (BM25's over its most a question can score, 2.2 x the summed
    classic IDF of its words, so stores of any size compare). 0 for dumps without the lists.
    """
    cos, src = case["cos"], case["src"]
    best = max(range(len(cos)), key=cos.__getitem__) if cos else None
    others = [c for c, s in zip(cos, src) if best is not None and s != src[best]]
    dense, keyword = case.get("dense_cos") or [], case.get("keyword_scores") or []
    n = max(case["n"], 1)
    ceiling = 2.2 * sum(max(math.log((n - case["df"].get(x, 0) + 0.5) / (case["df"].get(x, 0) + 0.5)), 1e-6)
                        for x in idf) or 1.0
    return {"source_margin": (cos[best] - max(others)) if others else ONE_SOURCE_MARGIN,
            "dense_gap": dense[0] - dense[1] if len(dense) > 1 else 0.0,
            "keyword_gap": (keyword[0] - keyword[1]) / ceiling if len(keyword) > 1 else 0.0}


def elsewhere(row: dict, case: dict) -> bool:
    """rag.eval.refusals.answered_elsewhere on a dumped unanswerable case (False without gold answers)."""
    from rag.eval.refusals import answered_elsewhere
    from rag.eval.squad import Question
    from rag.refuse import question_words
    from rag.types import Chunk, Hit

    if not row.get("answers"):
        return False
    raw = question_words(row["q"])
    by_raw = {w: case["df"].get(x, 0) for x, w in raw.items()}
    hits = [Hit(Chunk(str(i), src, text, "text", src, 0, len(text), 0), 0.0)
            for i, (src, text) in enumerate(zip(case["src"], case["text"]))]
    return answered_elsewhere(Question("", row["q"], tuple(row["answers"]), row["source"]), hits,
                              lambda words: (case["n"], {w: by_raw.get(w, 0) for w in words}))


def load(paths: list[str], answerable: dict[str, list[float]] | None = None):
    """Per configuration: answerable and unanswerable features, articles, and which unanswerable are answered elsewhere.

    ``answerable``: a reader's answerability logits per case (``bench.train_answerability
    --logits`` or one fold of ``--heldout``), which replace the dumped ones.
    """
    data = defaultdict(lambda: {"a": [], "u": [], "src": [], "elsewhere": []})
    for p in paths:
        for line in open(p, encoding="utf-8"):
            row = json.loads(line)
            configs = {k.split("/")[0] for k in row if "/" in k}
            for c in configs:
                for case in ("a", "u"):
                    key = f'{row["i"]}|{row["q"]}|{c}/{case}'
                    if answerable is not None:
                        row[c + "/" + case]["answerable"] = max(answerable.get(key) or [0.0])
                data[c]["a"].append(features(row, row[c + "/a"]))
                data[c]["u"].append(features(row, row[c + "/u"]))
                data[c]["src"].append(row["source"])
                data[c]["elsewhere"].append(elsewhere(row, row[c + "/u"]))
    return data


def matrix(rows: list[dict], keys: list[str]) -> np.ndarray:
    return np.array([[r[k] for k in keys] for r in rows])


def rates(score_a: np.ndarray, score_u: np.ndarray, t: float) -> tuple[float, float]:
    return float((score_u < t).mean()), float((score_a < t).mean())


def quantile_threshold(score_a: np.ndarray, q: float = 0.05) -> float:
    s = np.sort(score_a)
    return float(s[int(math.floor(q * len(s)))])


def PRODUCT(f: dict) -> float:
    """The product's evidence (rag.refuse.score_of's weights) on these features."""
    return BEFORE(f) + 0.035 * f["answerable"]


def BEFORE(f: dict) -> float:
    """The product's evidence before the answerability reader."""
    return f["s1"] + 0.5 * f["c1"] + 0.5 * f["ov_i"] + 0.25 * f["ch_i"] + 0.1 * f["phrases"]


RULES = {
    "chunk": lambda f: f["c1"],
    "sentence": lambda f: f["s1"],
    "s1+ov_i": lambda f: f["s1"] + 0.5 * f["ov_i"],
    "s1+c1/2+ov_i+ch_i/4": lambda f: f["s1"] + 0.5 * f["c1"] + 0.5 * f["ov_i"] + 0.25 * f["ch_i"],
    "s1+c1/2+ov_i+ch_i/4+phrases/10 (before)": BEFORE,
    "+ 0.035 x answerable (product)": PRODUCT,
    "+ 0.05 x answerable": lambda f: BEFORE(f) + 0.05 * f["answerable"],
    "+ 0.025 x answerable": lambda f: BEFORE(f) + 0.025 * f["answerable"],
    "s1+ov_i+c1/4": lambda f: f["s1"] + 0.5 * f["ov_i"] + 0.25 * f["c1"],
    "s1+0.4ov_i": lambda f: f["s1"] + 0.4 * f["ov_i"],
    "s1+0.6ov_i": lambda f: f["s1"] + 0.6 * f["ov_i"],
    "s1+ov_i+agree": lambda f: f["s1"] + 0.5 * f["ov_i"] + 0.05 * f["agree"],
    "c1+ov_c+names": lambda f: f["c1"] + 0.5 * f["ov_c"] + 0.1 * f["names"],
    "c1+ov_i+names": lambda f: f["c1"] + 0.5 * f["ov_i"] + 0.1 * f["names"],
    "c1+ov_i": lambda f: f["c1"] + 0.5 * f["ov_i"],
    "c1+ch_i": lambda f: f["c1"] + 0.5 * f["ch_i"],
    "c1+ov_i+ch_i": lambda f: f["c1"] + 0.5 * f["ov_i"] + 0.5 * f["ch_i"],
    "c1+ov_i-miss": lambda f: f["c1"] + 0.5 * f["ov_i"] - 0.5 * f["miss"],
    "c1+ov_i+margin": lambda f: f["c1"] + 0.5 * f["ov_i"] + 1.0 * f["margin"],
    "c1+ov_i-rare": lambda f: f["c1"] + 0.5 * f["ov_i"] - 0.3 * f["rare_miss"],
    "before+source_margin/5": lambda f: BEFORE(f) + 0.2 * f["source_margin"],
    "before+dense_gap/5+keyword_gap/10": lambda f: BEFORE(f) + 0.2 * f["dense_gap"] + 0.1 * f["keyword_gap"],
    "before+all three": lambda f: BEFORE(f) + 0.1 * f["source_margin"] + 0.2 * f["dense_gap"] + 0.1 * f["keyword_gap"],
}


def table(data, rule, t=None, max_false=0.05):
    """Per config: refused unanswerable/answerable at t (default: the largest t with <= max_false in every config)."""
    scores = {c: (np.array([rule(f) for f in d["a"]]), np.array([rule(f) for f in d["u"]])) for c, d in data.items()}
    if t is None:
        t = min(quantile_threshold(a, max_false) for a, _ in scores.values())
    out = {c: rates(a, u, t) for c, (a, u) in scores.items()}
    return t, out


def crossfit(data, rule, max_false=0.05):
    """Fit t on even (odd) articles of every config, score the other half; mean of both ways, per config."""
    order = {}
    for d in data.values():
        for s in d["src"]:
            order.setdefault(s, len(order))
    res = {c: [0.0, 0.0] for c in data}
    for parity in (0, 1):
        fit = {c: {"a": [f for f, s in zip(d["a"], d["src"]) if order[s] % 2 == parity],
                   "u": [f for f, s in zip(d["u"], d["src"]) if order[s] % 2 == parity]} for c, d in data.items()}
        t, _ = table(fit, rule, max_false=max_false)
        held = {c: {"a": [f for f, s in zip(d["a"], d["src"]) if order[s] % 2 != parity],
                    "u": [f for f, s in zip(d["u"], d["src"]) if order[s] % 2 != parity]} for c, d in data.items()}
        _, out = table(held, rule, t)
        for c, (ru, ra) in out.items():
            res[c][0] += ru / 2
            res[c][1] += ra / 2
    return res


def show(data, name, rule, t=None):
    t, out = table(data, rule, t)
    cf = crossfit(data, rule)
    print(f"{name:28s} t={t:.4f} " + "  ".join(f"{c}: {ru:.3f}/{ra:.3f} (cf {cf[c][0]:.3f}/{cf[c][1]:.3f})"
                                              for c, (ru, ra) in sorted(out.items())))


def product_table(data) -> None:
    """The product's rule at settings.refuse_below per configuration, with rag eval refusals' own cross-fit.

    As ``rag eval refusals`` reports it: unanswerable questions another source answers
    (:func:`rag.eval.refusals.answered_elsewhere`) are left out of ``refused_unanswerable`` and
    of the fits; ``raw`` counts them.
    """
    from rag.eval.refusals import best_threshold
    from rag.refuse import score_of
    from rag.settings import REFUSE_BELOW
    from rag.types import Evidence

    def score(f: dict) -> float:
        return score_of(Evidence(score=0.0, chunk=f["c1"], coverage=f["ov_i"], sentence=f["s1"],
                                 chunk_coverage=f["ch_i"], phrases=f["phrases"], answerable=f["answerable"]))

    order: dict[str, int] = {}
    for d in data.values():
        for src in d["src"]:
            order.setdefault(src, len(order))
    print(f"product rule (rag.refuse.score_of; dumps older than its phrase share count it 0), refuse below "
          f"{REFUSE_BELOW}")
    for c, d in sorted(data.items()):
        a = [score(f) for f in d["a"]]
        u = [score(f) for f in d["u"]]
        clear = [i for i, e in enumerate(d["elsewhere"]) if not e]
        ru = sum(u[i] < REFUSE_BELOW for i in clear) / len(clear)
        raw = sum(v < REFUSE_BELOW for v in u) / len(u)
        ra = sum(v < REFUSE_BELOW for v in a) / len(a)
        folds = []
        for parity in (0, 1):
            fit = [i for i, src in enumerate(d["src"]) if order[src] % 2 == parity]
            held = [i for i, src in enumerate(d["src"]) if order[src] % 2 != parity]
            held_clear = [i for i in held if not d["elsewhere"][i]]
            t, _, _ = best_threshold([a[i] for i in fit], [u[i] for i in fit if not d["elsewhere"][i]])
            folds.append((sum(u[i] < t for i in held_clear) / len(held_clear), sum(a[i] < t for i in held) / len(held)))
        cu, ca = (folds[0][0] + folds[1][0]) / 2, (folds[0][1] + folds[1][1]) / 2
        print(f"  {c:10s} n={len(a)}  refused unanswerable {ru:.3f} (raw {raw:.3f}, {len(u) - len(clear)} answered "
              f"elsewhere)  answerable {ra:.3f}  cross-fit {cu:.3f} / {ca:.3f}")


def fold_rates(paths: list[str], folds: dict[str, dict[str, list[float]]],
               weights: tuple[float, ...] = (0.0, 0.025, 0.035, 0.05, 0.075, 0.1), max_false: float = 0.05,
               unseen: bool = False, ideal: bool = False) -> dict[float, dict[str, tuple[float, float]]]:
    """The product's procedure held out by article: fold f's reader and joint threshold fitted on
    the articles of parity f, scored on the others with the same reader (mean of both folds).

    Args:
        paths: the dumps of the scored questions.
        folds: ``bench.train_answerability --heldout``'s logits of both folds' readers.
        weights: the reader's weights to try.
        max_false: the share of answerable questions the fitted threshold may refuse.
        unseen: fit the threshold on half the articles the reader never saw instead (every other
            one) and score the other half, both ways.
        ideal: fit the threshold on the articles scored, with the logits scored (no drift between
            where the threshold is fitted and where it is used).

    Returns:
        ``{weight: {store: (unanswerable refused, answerable refused)}}``. Unanswerable questions
        another source answers are left out of the refused share, as in ``rag eval refusals``;
        the fit counts them too (as :func:`table` does).
    """
    from bench.train_answerability import article_parity

    if unseen and ideal:
        raise ValueError("--unseen and --ideal fit the threshold on different articles: give one of them")
    parity = article_parity(paths)
    data = {fold: load(paths, folds[fold]) for fold in ("0", "1")}
    splits = []  # (fold, the articles the threshold is fitted on, the articles scored)
    for fold in ("0", "1"):
        seen = {a for a, p in parity.items() if p == int(fold)}
        others = [a for a in parity if a not in seen]
        if not unseen:
            splits.append((fold, set(others) if ideal else seen, set(others)))
            continue
        halves = set(others[::2]), set(others[1::2])
        splits += [(fold, halves[0], halves[1]), (fold, halves[1], halves[0])]

    def part(d: dict, articles: set[str]) -> dict:
        return {k: [x for x, s in zip(d[k], d["src"]) if s in articles] for k in ("a", "u", "elsewhere")}

    out: dict[float, dict[str, tuple[float, float]]] = {}
    for w in weights:
        rule = lambda f: BEFORE(f) + w * f["answerable"]  # noqa: E731
        res: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for fold, fitted, scored in splits:
            t, _ = table({c: part(d, fitted) for c, d in data[fold].items()}, rule, max_false=max_false)
            for c, d in data[fold].items():
                held = part(d, scored)
                a = np.array([rule(f) for f in held["a"]])
                u = np.array([rule(f) for f, e in zip(held["u"], held["elsewhere"]) if not e])
                res[c][0] += float((u < t).mean()) / len(splits)
                res[c][1] += float((a < t).mean()) / len(splits)
        out[w] = {c: (ru, ra) for c, (ru, ra) in sorted(res.items())}
    return out


def fold_table(paths: list[str], folds: dict[str, dict[str, list[float]]], **options) -> None:
    """Print :func:`fold_rates` (same arguments), a line per reader weight, the worst store last."""
    for w, res in fold_rates(paths, folds, **options).items():
        worst = min(ru for ru, _ in res.values()), max(ra for _, ra in res.values())
        print(f"reader x {w:<6} held out " + "  ".join(f"{c}: {ru:.3f}/{ra:.3f}" for c, (ru, ra) in res.items())
              + f"   worst {worst[0]:.3f}/{worst[1]:.3f}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--folds" in args:  # --folds FOLDS.json: the product's procedure with readers that never saw the article
        at = args.index("--folds")
        folds = json.loads(open(args[at + 1], encoding="utf-8").read())
        rest = args[:at] + args[at + 2:]
        max_false = 0.05
        if "--max-false" in rest:  # the answerable share the fitted threshold may refuse
            i = rest.index("--max-false")
            max_false, rest = float(rest[i + 1]), rest[:i] + rest[i + 2:]
        unseen = "--unseen" in rest  # fit on half the articles the reader never saw, score the other half
        ideal = "--ideal" in rest  # fit on the articles scored: the reader's own worth on new text
        try:
            fold_table([p for p in rest if p not in ("--unseen", "--ideal")], folds, max_false=max_false,
                       unseen=unseen, ideal=ideal)
        except ValueError as e:  # --unseen with --ideal
            sys.exit(str(e))
        sys.exit()
    held = None
    if "--answerable" in args:  # --answerable LOGITS.json: a reader's logits (train_answerability --logits)
        at = args.index("--answerable")
        held = json.loads(open(args[at + 1], encoding="utf-8").read())
        args = args[:at] + args[at + 2:]
    data = load(args, held)
    print({c: len(d["a"]) for c, d in data.items()})
    for name, rule in RULES.items():
        show(data, name, rule)
    product_table(data)
