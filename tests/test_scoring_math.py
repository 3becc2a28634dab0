"""GSM8K flexible matching (LiC's rules, paper.md §3.3) on tricky cases."""

import pytest

from userlm_plugin.scoring.answers.math import extract_last_number, gold_answer, is_correct, normalise_number


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
    with pytest.raises(ValueError, match="####"):
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
    ],
)
def test_is_correct(response: str, gold: str, correct: bool) -> None:
    assert is_correct(response, gold) is correct


def test_normalise_keeps_meaningful_decimals() -> None:
    assert normalise_number("0.50") == "0.50" and normalise_number("$7.0") == "7"
