"""The sentence features the extractive ranker is fitted on: plain numbers in, one row per distinct sentence."""

from __future__ import annotations

import math

from rag.generate.sentence_features import FEATURES, candidate_features


def row(candidate) -> dict[str, float]:
    return dict(zip(FEATURES, candidate.features))


CHUNKS = [
    (["Super Bowl 50 was played in 2016.", "It was won by the Denver Broncos.", "Coldplay headlined the show."],
     [0.7, 0.5, 0.2], [0.7, 0.65, 0.4], [0.9, 0.8, 0.5]),
    (["Coldplay headlined the show.", "Beyoncé joined them."], [0.2, 0.1], [0.2, 0.15], [0.7, 0.7]),
]


def test_one_row_per_distinct_sentence_kept_where_it_first_appears() -> None:
    cands = candidate_features("Who won Super Bowl 50?", CHUNKS, [0.6, 0.4])
    assert [c.text for c in cands] == [*CHUNKS[0][0], "Beyoncé joined them."]
    assert all(len(c.features) == len(FEATURES) for c in cands)
    show = cands[2]
    assert (show.hit, show.index) == (0, 2) and row(show)["copies"] == math.log(2)
    assert row(cands[3])["copies"] == 0.0 and (cands[3].hit, cands[3].index) == (1, 1)


def test_neighbours_chunk_and_type() -> None:
    first, won, show, _ = candidate_features("Who won Super Bowl 50?", CHUNKS, [0.6, 0.4])
    f, w = row(first), row(won)
    assert f["first"] == 1.0 and f["prev_cosine"] == 0.0 and f["next_cosine"] == 0.5
    assert w["prev_cosine"] == 0.7 and math.isclose(w["context"], 0.2) and w["pair_cosine"] == 0.65
    # "Super Bowl 50" is in the sentence before: the previous sentence adds question words.
    assert w["prev_overlap"] > 0 and f["overlap"] > w["overlap"]
    assert w["type_match"] == 1.0 and w["person_match"] == 1.0 and w["date_match"] == 0.0  # "Denver Broncos"
    assert f["chunk_rank"] == 1.0 and row(show)["position"] == 1.0
    last = candidate_features("Who won Super Bowl 50?", CHUNKS, [0.6, 0.4])[3]
    assert math.isclose(row(last)["chunk_gap"], 0.2) and row(last)["chunk_rank"] == 0.5
    assert math.isclose(f["bigrams"], 2 / 4)  # "super bowl", "bowl 50" of won-super, super-bowl, bowl-50, who-won


def test_no_chunks_no_candidates() -> None:
    assert candidate_features("Anything?", [], []) == []
    assert candidate_features("Anything?", [([], [], [], [])], [0.3]) == []
