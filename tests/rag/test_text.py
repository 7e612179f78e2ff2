"""rag.text: the one copy of sentences, stop words, content words and IDF overlap."""

from __future__ import annotations

import math

import pytest

from rag.text import QUERY_STOP_WORDS, STOP_WORDS, IdfOverlap, content_words, sentence_spans, stem, words


def test_sentence_spans_keep_abbreviations_and_initials_inside_sentences() -> None:
    text = "Dr. Smith met J. Doe in the U.S. on Monday. They spoke, e.g. about trains!  Then left?\n\nNew paragraph"
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Dr. Smith met J. Doe in the U.S. on Monday.",
        "They spoke, e.g. about trains!",
        "Then left?",
        "New paragraph",
    ]


def test_sentence_spans_cover_every_non_space_character_in_order() -> None:
    text = "  First one.   Second (really)!\tThird…  \n\n  Fourth without end"
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == ["First one.", "Second (really)!", "Third…", "Fourth without end"]
    assert "".join(text[s:e] for s, e in spans).replace(" ", "") == "".join(text.split()).replace(" ", "")
    assert sentence_spans("   ") == []


def test_stem_strips_one_suffix_only_from_long_enough_words() -> None:
    assert [stem(w) for w in ("running", "played", "matches", "boxes", "cats", "sings", "is", "bus")] == \
        ["runn", "play", "match", "boxe", "cats", "sing", "is", "bus"]


def test_content_words_drop_stop_words_lower_case_and_stem() -> None:
    assert words("Who founded IBM in 1911?") == ["who", "founded", "ibm", "in", "1911"]
    assert content_words("Who founded IBM in 1911?") == {"found", "ibm", "1911"}
    assert content_words("the of and what which") == set()


def test_query_stop_words_are_a_subset_of_the_stop_words() -> None:
    assert QUERY_STOP_WORDS < STOP_WORDS
    assert {"the", "what", "who"} <= QUERY_STOP_WORDS
    assert "before" in STOP_WORDS and "before" not in QUERY_STOP_WORDS


def test_idf_overlap_weighs_rare_query_words_above_common_ones() -> None:
    query = content_words("When did Tesla move to Colorado Springs?")
    sentences = [content_words(t) for t in (
        "Tesla moved to Colorado Springs in 1899.",
        "Tesla was an inventor.",
        "Tesla worked in New York.",
    )]
    overlap = IdfOverlap(query, sentences)
    # "tesla" is in all three sentences: log(4/4) + 1 = 1; "colorado", "springs" in one: log(4/2) + 1.
    assert overlap.idf["tesla"] == pytest.approx(1.0)
    assert overlap.idf["colorado"] == pytest.approx(math.log(2) + 1)
    assert overlap.idf["move"] == pytest.approx(math.log(4) + 1)  # "moved" stems to "mov", not "move"
    scores = [overlap(s) for s in sentences]
    assert scores[1] == scores[2] == pytest.approx(1.0 / overlap.total)
    assert scores[0] == pytest.approx((overlap.total - overlap.idf["move"]) / overlap.total)
    assert overlap(query) == pytest.approx(1.0)
    assert IdfOverlap(set(), sentences)(sentences[0]) == 0.0
