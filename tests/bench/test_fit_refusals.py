"""The held-out refusal protocol: a reader that scores its own articles higher drifts the threshold."""

from __future__ import annotations

import json
import random
from pathlib import Path

from bench.fit_refusals import fold_rates
from bench.train_answerability import key_of


def _case(cosine: float, source: str) -> dict:
    # The fields bench.refusal_features dumps; no question words, so both coverages are whole.
    return {"cos": [cosine], "src": [source], "sent_cos": [[cosine]], "sent_words": [[[]]], "chunk_words": [[]],
            "text": ["some text"], "titles": [source], "n": 1000, "df": {}, "phrases": 0.0, "answerable": None,
            "ids": ["c"], "keyword_ids": ["c"], "keyword_scores": [1.0], "dense_cos": [cosine]}


def test_a_threshold_fitted_where_the_reader_was_trained_refuses_too_many_answerable_questions_elsewhere(
        tmp_path: Path) -> None:
    rng = random.Random(0)
    rows, folds = [], {"0": {}, "1": {}}
    for i in range(320):
        article = f"a{i // 20}"  # 16 articles in order: parity 0, 1, 0, 1, ...
        row = {"i": i, "source": article, "q": f"question {i}", "words": [], "answers": []}
        for store in ("alone", "grown"):
            row[store + "/a"] = _case(rng.uniform(0.55, 0.9), article)
            row[store + "/u"] = _case(rng.uniform(0.3, 0.65), "other")
            for fold in ("0", "1"):
                own = (i // 20) % 2 == int(fold)
                # Each fold's reader: answerable questions of the articles it was trained on score higher.
                folds[fold][key_of(row, store + "/a")] = [rng.gauss(3.0 if own else 0.0, 0.5)]
                folds[fold][key_of(row, store + "/u")] = [rng.gauss(-2.0, 0.5)]
        rows.append(row)
    dump = tmp_path / "dump.jsonl"
    dump.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    drifted = fold_rates([str(dump)], folds, weights=(0.0, 0.1))
    ideal = fold_rates([str(dump)], folds, weights=(0.0, 0.1), ideal=True)
    # Fitted on the very questions scored, no store refuses more than the 5 % it was fitted for ...
    assert all(ra <= 0.05 for res in ideal.values() for _, ra in res.values())
    # ... while the threshold fitted on the reader's own articles sits too high for the others.
    assert max(ra for _, ra in drifted[0.1].values()) > 0.1
    # Without the reader the two procedures differ only by which articles the threshold saw.
    assert max(ra for _, ra in drifted[0.0].values()) < 0.1
