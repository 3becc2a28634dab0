"""The human-fidelity metrics pinned on hand-made turns: each style feature, the length JSD, lexical similarity,
termination P/R/F1, the discriminator (AUROC by hand, indistinguishable twins, an obvious assistant), and the
guardrails held against people (docs/fidelity.md)."""

from __future__ import annotations

import math

import pytest

from userlm_plugin.evals.human_fidelity import discriminator as disc
from userlm_plugin.evals.human_fidelity import features as ft
from userlm_plugin.evals.human_fidelity import guardrail_fit as gf
from userlm_plugin.evals.human_fidelity import summary as fs
from userlm_plugin.runtime.guardrails import GuardrailConfig
from userlm_plugin.scoring.quality.calibration import auroc as pairwise_auroc
from userlm_plugin.turns import RejectReason

INTENT = (
    "You are a user chatting with an assistant language model to write a sincere apology letter to a friend"
)


# ------------------------------------------------------------------------------------------ style features


def test_typo_is_a_word_neither_list_knows_and_proper_nouns_are_not_typos() -> None:
    assert ft.typos("I hope to write a sincere appoly to my friend.") == (
        1,
        8,
    )  # "I" and "a" are too short to check
    assert ft.typos("I hope to write a sincere apology to my friend.") == (0, 8)
    # common modern words one list lacks are not typos; a capitalised name inside a sentence is skipped
    assert ft.typos("we met at the cafe near Matanzas for keto food") == (0, 9)
    # the same name typed lowercase is a rare word people misspell or do not capitalise: counted
    assert ft.typos("we met near matanzas") == (1, 4)
    assert ft.typos("thnks, that's great") == (
        1,
        3,
    )  # "that's" is one word; possessive/contraction kept whole
    assert ft.typos("Judy's plan") == (0, 2)  # a possessive 's is not a misspelling
    assert ft.typos("1 2 3 ?") == (0, 0)


def test_lowercase_start_missing_punctuation_question_politeness_first_person() -> None:
    f = ft.turn_features("hey can you fix my letter", INTENT)
    assert f.lowercase_start is True and f.missing_final_punct is True
    # a question is a "?" (people often ask without one); a plain "can you" is no politeness marker; "my" is first person
    assert f.question is False and f.polite is False and f.first_person is True
    assert ft.turn_features("could you fix my letter").polite is True
    g = ft.turn_features("Make it shorter.", INTENT)
    assert g.lowercase_start is False and g.missing_final_punct is False
    assert g.polite is False and g.first_person is False and g.question is False
    assert ft.turn_features("is that too long?").question is True
    assert ft.turn_features("thanks!").polite is True and ft.turn_features("please redo it").polite is True
    assert ft.turn_features("1. fix the date").lowercase_start is None  # not a letter: not applicable
    assert ft.missing_final_punctuation('He said "ok."') is False  # closing quote looked through
    assert ft.missing_final_punctuation("great :)") is True
    assert ft.turn_features("im stuck").first_person is True  # the apostrophe-less form people type


def test_intent_overlap_reuses_the_papers_intent_decomposition() -> None:
    # content words of the turn: sincere, apology, letter, please -> 3 of 4 in the intent
    assert ft.turn_features("sincere apology letter please", INTENT).intent_overlap == pytest.approx(0.75)
    assert ft.turn_features("no idea", "").intent_overlap is None


# ------------------------------------------------------------------------------------------ corpus measures


def test_jensen_shannon_divergence_on_known_distributions() -> None:
    assert ft.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    assert ft.jensen_shannon([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)
    # M = (0.75, 0.25): H(M) = 0.811278; JSD = H(M) - (H(P) + H(Q)) / 2 = 0.811278 - 0.5
    assert ft.jensen_shannon([0.5, 0.5], [1, 0]) == pytest.approx(0.311278, abs=1e-6)


def test_length_jsd_bins_word_counts() -> None:
    assert ft.length_histogram([0, 1, 4, 4, 200]) == [0.2, 0.2, 0, 0.4, 0, 0, 0, 0, 0, 0, 0, 0.2]
    assert ft.length_jsd([1, 1], [2, 2]) == pytest.approx(1.0)  # disjoint bins
    assert ft.length_jsd([4, 20], [4, 3]) == pytest.approx(0.311278, abs=1e-6)  # 3 and 4 share a bin
    assert ft.length_jsd([5, 9, 30], [5, 9, 30]) == 0.0
    assert math.isnan(ft.length_jsd([], [3]))


def test_unigram_f1() -> None:
    # overlap fix, the, please: precision 3/4, recall 3/4
    assert ft.unigram_f1("fix the email please", "please fix the letter") == pytest.approx(0.75)
    assert ft.unigram_f1("abc", "xyz") == 0.0


def _position(group: str, index: int, human: str | None, simulated: str | None) -> fs.Position:
    row = fs.position_row(index, human, simulated, INTENT)
    return fs.position_from_row(group, row)


def test_termination_precision_recall_f1_against_where_people_ended() -> None:
    ps = [
        # c1: the person wrote 2 turns and ended at 3; the simulator ended at 3 too (TP)
        _position("c1", 1, "hi", "hello"),
        _position("c1", 2, "fix it", "redo it"),
        _position("c1", 3, None, None),
        # c2: the simulator ended early at 2 (FP) and went on at 3 where the person ended (FN)
        _position("c2", 1, "hi", "hey"),
        _position("c2", 2, "more", None),
        _position("c2", 3, None, "one more thing"),
    ]
    out = fs.termination_summary(ps)
    assert out == {"end_p": 50.0, "end_r": 50.0, "end_f1": 50.0}
    # the turn written after the person ended is not a same-prefix turn: only 3 simulated turns count
    assert fs.length_summary(ps)["words"] == pytest.approx((1 + 2 + 1) / 3)
    assert fs.length_summary(ps)["words_h"] == pytest.approx((1 + 2 + 1 + 1) / 4)


def test_style_summary_pools_turns_per_side() -> None:
    ps = [
        _position("c1", 1, "hey can you help?", "Could you help me write a letter."),
        _position("c1", 2, "thnks", "Thank you."),
    ]
    out = fs.style_summary(ps)
    assert out["question_pct_h"] == 50.0 and out["question_pct"] == 0.0
    assert out["lower_pct_h"] == 100.0 and out["lower_pct"] == 0.0
    assert out["nopunct_pct_h"] == 50.0 and out["nopunct_pct"] == 0.0
    assert out["typo_pct_h"] == pytest.approx(100 * 1 / 5) and out["typo_pct"] == 0.0
    assert out["polite_pct"] == 100.0  # "could you", "thank you"


# ------------------------------------------------------------------------------------------ discriminator


def test_rank_auroc_matches_a_hand_count() -> None:
    # positives 0.9 and 0.3, negatives 0.8 and 0.1: 0.9 beats both, 0.3 beats 0.1 only -> 3 of 4 pairs
    scores, labels = [0.9, 0.8, 0.3, 0.1], [True, False, True, False]
    assert disc.rank_auroc(scores, labels) == pytest.approx(0.75) == pairwise_auroc(scores, labels)
    assert disc.rank_auroc([0.5, 0.5], [True, False]) == 0.5  # a tie counts half
    assert disc.rank_auroc([0.1, 0.2], [True, True]) is None


def test_split_is_balanced_deterministic_and_order_free() -> None:
    groups = [f"g{i}" for i in range(7)]
    train, test = disc.split_groups(groups)
    assert len(train) == 3 and len(test) == 4 and not train & test
    assert disc.split_groups(list(reversed(groups)) * 2) == (train, test)
    assert disc.split_groups(groups, seed=1) != (train, test)


HUMANISH = [
    "hey can u make it shorter",
    "no the date is wrong lol",
    "thx, looks good",
    "add my name at the end",
    "hmm not quite, more casual?",
    "ok send it",
]
ASSISTANTISH = [
    "Certainly! Here is a comprehensive, step-by-step overview of everything you need to consider.",
    "Absolutely. As an AI language model, I would be delighted to provide a detailed explanation.",
    "Of course! Below you will find a structured guide, including key considerations and best practices.",
    "Great question! Let me break this down into several clear, well-organised sections for you.",
    "Sure! Here are five thoughtful suggestions, each with a brief rationale and an example.",
    "I hope this helps! Please let me know if you have any other questions or need further assistance.",
]


def _labelled(group: str, text: str, human: bool) -> disc.LabelledTurn:
    return disc.LabelledTurn(group, text, human, ft.turn_features(text, INTENT))


def test_an_obviously_assistant_like_simulator_is_told_apart() -> None:
    turns = [
        t
        for g in range(8)
        for i in range(3)
        for t in (
            _labelled(f"c{g}", HUMANISH[(g + i) % 6], True),
            _labelled(f"c{g}", ASSISTANTISH[(g * 2 + i) % 6], False),
        )
    ]
    result = disc.discriminate(turns, resamples=200)
    assert result.auroc is not None and result.auroc >= 0.95
    assert result.low is not None and result.high is not None and result.low <= result.auroc <= result.high
    assert result.train_groups == 4 and result.test_groups == 4 and result.test_turns == 24


def test_a_simulator_that_writes_what_people_wrote_is_indistinguishable() -> None:
    turns = [
        t
        for g in range(6)
        for i in range(3)
        for t in (
            _labelled(f"c{g}", HUMANISH[(g + i) % 6], True),
            _labelled(f"c{g}", HUMANISH[(g + i) % 6], False),
        )
    ]
    result = disc.discriminate(turns, resamples=100)
    assert result.auroc == 0.5 and result.low == 0.5 and result.high == 0.5


def test_the_discriminator_says_why_when_it_cannot_score() -> None:
    one = [_labelled("c1", "hi", True), _labelled("c1", "Hello!", False)]
    result = disc.discriminate(one)
    assert result.auroc is None and "at least 2 conversations" in (result.why or "")
    only_human = [_labelled(f"c{g}", "hi", True) for g in range(4)]
    assert "lacks human or simulated" in (disc.discriminate(only_human).why or "")


def test_bootstrap_needs_two_groups() -> None:
    assert disc.bootstrap_interval([0.9, 0.1], [True, False], ["c1", "c1"]) is None


# ------------------------------------------------------------------------------------------ guardrails


def test_guardrails_against_real_human_turns() -> None:
    turns = [
        {"role": "user", "content": "I need help with an apology"},
        {"role": "assistant", "content": "Sure, tell me more."},
        {"role": "user", "content": "ok"},
        {"role": "assistant", "content": "What happened?"},
        {"role": "user", "content": " ".join(["word"] * 30)},
        {"role": "assistant", "content": "Got it."},
        {
            "role": "user",
            "content": "write a sincere apology letter to a friend",
        },  # 8 words inside the intent
        {"role": "assistant", "content": "Here it is."},
        {"role": "user", "content": "Iceland trip ideas please"},
        {"role": "assistant", "content": "..."},
    ]
    checks = gf.check_human_turns(INTENT, turns)
    assert [c.first_word for c in checks] == [True, False, False, False, False]  # "Iceland" is not "I"
    assert [c.too_short for c in checks] == [False, True, False, False, False]
    assert [c.too_long for c in checks] == [False, False, True, False, False]
    assert [c.repetition for c in checks] == [None, None, None, RejectReason.REPEATS_INTENT, None]
    out = gf.guardrail_summary(checks, ends=[gf.end_rejected(5)])
    assert out["g_first_pct"] == out["g_short_pct"] == out["g_long_pct"] == out["g_repeat_pct"] == 20.0
    assert (
        out["g_any_pct"] == 80.0 and out["g_end_pct"] == 100.0
    )  # the paper's end ban refuses every real end
    # overrides: a turn cap the people met is no longer a rejection
    loose = GuardrailConfig(max_words=40, min_turns_before_end=2)
    assert not any(c.too_long for c in gf.check_human_turns(INTENT, turns, loose))
    assert gf.end_rejected(5, loose) is False and gf.end_rejected(1, loose) is True
    assert gf.opens_with_banned_word("I'm lost", GuardrailConfig()) is True  # Llama-3: "I" + "'m"


def test_recommended_bounds_keep_95_percent_of_human_turns() -> None:
    # percentiles 2.5 and 97.5 of 1..100 (linear interpolation): 3.475 -> 3, 97.525 -> 98
    assert gf.recommend_bounds(list(range(1, 101))) == (3, 98)
    assert gf.recommend_bounds([]) is None
