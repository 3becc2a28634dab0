"""GSM8K flexible matching (LiC `tasks/math/task_math.py`, docs/scoring.md) on tricky cases, and our stricter
rule-based attempt test (a number only inside a question is not an answer)."""

import pytest

from userlm_plugin.errors import ConfigError
from userlm_plugin.scoring.answers.math import (
    extract_last_number,
    gold_answer,
    is_correct,
    normalise_number,
    rule_based_answer,
)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("$1,000.00", "1000"),
        ("-3", "-3"),
        ("5.", "5"),
        ("The answer is 12 apples", "12"),
        ("The answer is 12 apples.", "12"),
        ("She pays $18 every day.", "18"),
        ("First 3 + 4 = 7, so the total is 1,234,567.", "1234567"),
        ("It costs 2.50 dollars", "2.50"),
        ("Temperature drops to -12 degrees", "-12"),
        ("0.5 of the 10 pies", "10"),
        ("I need more information.", None),
        ("... , . $", None),
    ],
)
def test_extract_last_number(text: str, number: str | None) -> None:
    assert extract_last_number(text) == number


def test_gold_answer_after_hashes() -> None:
    assert gold_answer("20 / 4 = <<20/4=5>>5 lollipops.\n#### 5") == "5"
    assert gold_answer("#### 2,500") == "2500"
    with pytest.raises(ConfigError, match="####"):
        gold_answer("five")


@pytest.mark.parametrize(
    ("response", "gold", "correct"),
    [
        ("So each friend gets 5 lollipops.", "5", True),
        ("The total is $2,500.00.", "2,500", True),
        ("The total is $2,500.50.", "2500", False),
        ("-3", "-3", True),
        ("3", "-3", False),
        ("The answer is 12 apples, not 13", "12", False),  # LAST number counts
        ("Could you tell me how many friends?", "4", False),
        ("Did you mean 4?", "4", False),  # the right number, but only inside a question
        ("Before I answer: do the lollipops go to 4 friends?", "4", False),
        ("Each friend gets 5 lollipops. Want me to check it with 4 friends?", "5", True),
    ],
)
def test_is_correct(response: str, gold: str, correct: bool) -> None:
    assert is_correct(response, gold) is correct


def test_normalise_keeps_meaningful_decimals() -> None:
    assert normalise_number("0.50") == "0.50" and normalise_number("$7.0") == "7"


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Did you mean 42?", None),
        ("Is it 2.5 or 3?", None),  # a decimal inside the question does not split it
        ("Quick check: are there 4 friends?\nAlso, did Ray keep 5?", None),
        ("So 25 - 5 = 20 and 20 / 4 = 5.\n\n**Answer: 5**", "5"),
        ("Each friend gets **5**. Does that make sense?", "5"),
        ("The answer is 12! Anything else?", "12"),
        ('He asked "how many are left?" and the answer is 7.', "7"),
    ],
)
def test_numbers_only_inside_questions_are_not_answers(text: str, answer: str | None) -> None:
    assert rule_based_answer(text) == answer


def test_zero_cents_are_dropped_where_lic_mangles_them() -> None:
    # LiC strips ".00" from `$` answers with rstrip(".00"), which turns $100.00 into 1; we drop zero cents only
    assert extract_last_number("That is $100.00") == "100" and extract_last_number("$2,500.00") == "2500"
    assert extract_last_number("5.0") == "5" and extract_last_number("0.50") == "0.50"
