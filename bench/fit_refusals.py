"""Fit and compare refusal rules offline on the features ``bench.refusal_features`` dumped.

    python -m bench.fit_refusals DUMP.jsonl [DUMP.jsonl ...]

Prints, per rule and store configuration, the share of unanswerable / answerable questions
refused at the rule's threshold, and the two-fold cross-fit by article.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import defaultdict

import numpy as np

_NAME = re.compile(r"\b[A-Z][\w'-]*|\b\d[\d,.]*\b")


def names_found(q: str, texts: list[str]) -> float:
    from rag.refuse import question_names

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
    N = case["n"]
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
    legacy = c1 + 0.5 * s1 + 0.5 * ov_c + 0.1 * nm
    return {"c1": c1, "s1": s1, "ov_c": ov_c, "ov_i": ov_i, "ch_i": ch_i, "miss": miss, "rare_miss": rare_missing,
            "names": nm, "margin": margin, "legacy": legacy}


def load(paths: list[str]):
    data = defaultdict(lambda: {"a": [], "u": [], "src": []})
    for p in paths:
        for line in open(p, encoding="utf-8"):
            row = json.loads(line)
            configs = {k.split("/")[0] for k in row if "/" in k}
            for c in configs:
                data[c]["a"].append(features(row, row[c + "/a"]))
                data[c]["u"].append(features(row, row[c + "/u"]))
                data[c]["src"].append(row["source"])
    return data


def matrix(rows: list[dict], keys: list[str]) -> np.ndarray:
    return np.array([[r[k] for k in keys] for r in rows])


def rates(score_a: np.ndarray, score_u: np.ndarray, t: float) -> tuple[float, float]:
    return float((score_u < t).mean()), float((score_a < t).mean())


def quantile_threshold(score_a: np.ndarray, q: float = 0.05) -> float:
    s = np.sort(score_a)
    return float(s[int(math.floor(q * len(s)))])


if __name__ == "__main__":
    data = load(sys.argv[1:])
    for c, d in sorted(data.items()):
        a, u = matrix(d["a"], ["legacy"])[:, 0], matrix(d["u"], ["legacy"])[:, 0]
        print(c, len(d["a"]), "legacy at 0.96 (refused u, a):", rates(a, u, 0.96))
