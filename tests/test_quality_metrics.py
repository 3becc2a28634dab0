"""The pure simulation-quality measures on hand-computed examples (userlm_plugin/scoring/quality_metrics.py)."""

from __future__ import annotations

import pytest

from userlm_plugin.scoring.quality import metrics as qm

INTENT = "You are a user chatting with an assistant language model to plan a cheap trip to Japan in spring"
# content words of the intent after the boilerplate is stripped: {plan, cheap, trip, japan, spring}


def test_tokenize_and_content_words() -> None:
    assert qm.tokenize("Don't GO, it's 5pm!") == ["don't", "go", "it's", "5pm"]
    assert qm.content_words("I want to go to the Japan") == {"want", "go", "japan"}


def test_intent_prefix_is_stripped_before_comparing() -> None:
    assert qm.strip_intent_prefix(INTENT) == "plan a cheap trip to Japan in spring"
    # "model", "assistant", "user" come from the boilerplate only: no overlap
    assert qm.intent_overlap(INTENT, "which model are you, assistant?") == 0.0


def test_intent_overlap_share_and_count() -> None:
    # turn content words: {japan, trip, ideas, budget} -> overlap {japan, trip} = 2/4
    assert qm.intent_overlap(INTENT, "japan trip ideas on a budget") == pytest.approx(0.5)
    assert qm.intent_overlap_count(INTENT, "japan trip ideas on a budget") == 2
    # first turn's share of the intent: 2 of the intent's 5 content words
    assert qm.intent_share(INTENT, "japan trip ideas on a budget") == pytest.approx(2 / 5)
    assert qm.intent_share(INTENT, "plan cheap trip japan spring") == pytest.approx(1.0)
    assert qm.intent_overlap(INTENT, "the and of") is None  # only stopwords: undefined, not 0


def test_distinct_unigram_ratio_pooled() -> None:
    # tokens: a b c | a b d -> 4 distinct / 6 total
    assert qm.distinct_unigram_ratio(["a b c", "a b d"]) == pytest.approx(4 / 6)
    assert qm.distinct_unigram_ratio([]) is None


def test_mean_pairwise_jaccard_distance() -> None:
    # {a,b} vs {a,c}: 1 - 1/3; {a,b} vs {x}: 1; {a,c} vs {x}: 1 -> mean (2/3 + 1 + 1) / 3
    assert qm.mean_pairwise_jaccard_distance(["a b", "a c", "x"]) == pytest.approx((2 / 3 + 2) / 3)
    assert qm.mean_pairwise_jaccard_distance(["same words", "same words"]) == 0.0
    assert qm.mean_pairwise_jaccard_distance(["one"]) is None


def test_unigram_difference_across_repeats() -> None:
    runs = [["fix my code", "it fails"], ["fix my code", "it fails"], ["help debugging"]]
    # run1 == run2 (distance 0); each vs run3 share nothing (distance 1) -> (0 + 1 + 1) / 3
    assert qm.unigram_difference(runs) == pytest.approx(2 / 3)
    assert qm.unigram_difference([["only one run"]]) is None


def test_assistant_openers() -> None:
    assert qm.starts_like_assistant("Here is the code you asked for")
    assert qm.starts_like_assistant("Sure! Let me help")
    assert qm.starts_like_assistant("I think it's B")
    assert not qm.starts_like_assistant("hereford cattle prices?")
    assert not qm.starts_like_assistant("need help with my essay")


def test_length_spread_and_f1() -> None:
    assert qm.length_spread([2, 4, 6]) == (pytest.approx(8 / 3), 2, 6)
    assert qm.length_spread([]) is None
    # predicted end: T T F F; actual: T F T F -> tp 1, fp 1, fn 1 -> P = R = F1 = 0.5
    assert qm.precision_recall_f1([True, True, False, False], [True, False, True, False]) == (0.5, 0.5, 0.5)
    assert qm.precision_recall_f1([False], [True]) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="predicted has 1 items but actual has 2"):
        qm.precision_recall_f1([True], [True, False])
