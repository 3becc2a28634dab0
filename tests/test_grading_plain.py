"""The plain-data boundary (scoring/answers/isolation/plain.py): what crosses from the candidate's process, what is
refused, and the call-based comparison rule (docs/grading.md)."""

from __future__ import annotations

import ast
import json
import math
import sys
from enum import IntEnum
from pathlib import Path

import pytest

from userlm_plugin.scoring.answers import isolation
from userlm_plugin.scoring.answers.isolation import plain
from userlm_plugin.scoring.answers.isolation.preamble import preamble_source


def roundtrip(value):
    return plain.decode(json.loads(json.dumps(plain.encode(value))))


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -(10**30),
        2.5,
        -0.0,
        "text \ud800 \u00e9",
        [1, [2, (3, 4)]],
        (),
        {"a": 1, 2: [3], (4, 5): None, True: "bool key"},
        {1, 2},
        frozenset({"x"}),
        b"\x00\xff",
        bytearray(b"ab"),
        3 + 4j,
    ],
)
def test_builtin_values_cross_unchanged(value) -> None:
    back = roundtrip(value)
    assert back == value and type(back) is type(value)


def test_special_floats_and_iterators() -> None:
    assert math.isnan(roundtrip(float("nan"))) and roundtrip(float("-inf")) == float("-inf")
    back = roundtrip(x * 2 for x in range(3))
    assert not isinstance(back, list) and list(back) == [0, 2, 4]


def test_subclasses_cross_as_their_builtin_base() -> None:
    class Color(IntEnum):
        RED = 1

    class Rigged(list):
        def __eq__(self, other):
            return True

    assert type(roundtrip(Color.RED)) is int and roundtrip(Color.RED) == 1
    back = roundtrip(Rigged([1]))
    assert type(back) is list and back != [2]


def test_objects_that_are_not_plain_are_refused_whatever_they_claim() -> None:
    class Fake:
        __class__ = property(lambda self: int)  # isinstance(Fake(), int) is True

        def __repr__(self):
            return "5"

    assert isinstance(Fake(), int)
    for value in (Fake(), object(), print, type):
        with pytest.raises(plain.NotPlain):
            plain.encode(value)
    deep: list = []
    for _ in range(plain.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(plain.NotPlain, match="deeper"):
        plain.encode(deep)
    loop: list = []
    loop.append(loop)
    with pytest.raises(plain.NotPlain):
        plain.encode(loop)


@pytest.mark.parametrize(
    "data",
    [
        {"passed": True},  # a forged verdict is not a value
        {"~": "t", "v": [1], "extra": 1},
        {"~": "x", "v": []},
        {"~": "d", "v": [[[1], 2]]},  # unhashable key
        {"~": "d", "v": [[1]]},
        {"~": "s", "v": [[1]]},
        {"~": "c", "v": ["1", 2]},
        {"~": "b", "v": 5},
    ],
)
def test_forged_or_malformed_data_is_rejected(data) -> None:
    with pytest.raises(ValueError):
        plain.decode(data)


def test_comparison_rule() -> None:
    assert plain.same((1, 2), [1, 2])  # LiC: a returned tuple counts as a list (top level)
    assert not plain.same([(1, 2)], [[1, 2]])  # ... only at the top level, as LiC's `==`
    # Python's `==` on builtins, as LiC and HumanEval's check compare: bool is an int, numbers by value
    assert plain.same(True, 1) and plain.same(0, False) and plain.same([True], [1])
    assert plain.same(2, 2.0) and plain.same([1.5, 2], [1.5, 2.0]) and plain.same({1: "x"}, {True: "x"})
    assert not plain.same("1", 1) and not plain.same(None, 0) and not plain.same(float("nan"), float("nan"))
    assert not plain.same([float("nan")], [float("nan")])  # decoded separately: not the same object
    assert plain.same({"a": [1]}, {"a": [1]}) and not plain.same({"a": 1}, {"a": 1, "b": 2})
    assert not plain.same([1], [1, 2]) and not plain.same({1, 2}, [1, 2]) and not plain.same(iter([1]), [1])
    assert plain.same(True, 1) is True and plain.same(1, 2) is False  # a bool whatever `==` returned


def test_the_preamble_is_lics_in_lics_order() -> None:
    source = preamble_source()
    lines = source.splitlines()
    assert lines[0] == "from string import *" and lines[17] == "from typing import *"
    assert lines[16] == "from builtins import *"  # restores builtins that earlier star imports shadow
    assert lines[18:34] == [
        f"import {m}"
        for m in "string re datetime collections heapq bisect copy math random statistics itertools functools operator io sys json".split()
    ]
    assert lines[-1] == "sys.setrecursionlimit(50000)"
    namespace: dict = {}
    limit = sys.getrecursionlimit()
    try:
        exec(compile(source, "preamble.py", "exec"), namespace)
    finally:
        sys.setrecursionlimit(limit)
    assert {"List", "Counter", "heappush", "inf", "lru_cache", "bisect_left"} <= set(namespace)
    assert namespace["pow"] is pow and namespace["datetime"].__name__ == "datetime"


def test_the_sandbox_side_code_is_python_3_8() -> None:
    """The isolation modules run on the sandbox's python3 (docker images may be old): no newer syntax."""
    folder = Path(isolation.__file__).parent
    for path in sorted(folder.glob("*.py")):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 8))


def test_decoding_is_bounded_in_values_time_and_hash_collisions() -> None:
    """The launcher decodes what the candidate chose: a budget of values, a deadline, no colliding sets."""
    import time

    with pytest.raises(ValueError, match="more than"):
        plain.decode([0] * 11, max_nodes=10)
    with pytest.raises(plain.DecodeTimeout):
        plain.decode([0] * (2 * plain.DEADLINE_EVERY), deadline=time.monotonic() - 1)
    step = 2**61 - 1  # CPython's int hash is the value mod 2**61 - 1: these are distinct and all collide
    colliding = {"~": "s", "v": [i * step for i in range(1, plain.MAX_SAME_HASH + 2)]}
    with pytest.raises(ValueError, match="members of one hash value"):
        plain.decode(colliding)
    as_keys = {"~": "d", "v": [[i * step, i] for i in range(1, plain.MAX_SAME_HASH + 2)]}
    with pytest.raises(ValueError, match="members of one hash value"):
        plain.decode(as_keys)
    ordinary = set(range(100_000)) | {-1, -2}  # hash(-1) == hash(-2): a few equal hashes are fine
    assert roundtrip(ordinary) == ordinary and roundtrip([1, 1.0, True]) == [1, 1.0, True]


def test_big_ints_cross_as_hexadecimal_and_decimal_ones_are_refused() -> None:
    big = 7**6000  # 5,071 digits: over Python's 4,300-digit limit for decimal text
    encoded = plain.encode(big)
    assert encoded["~"] == "n" and roundtrip(big) == big and roundtrip(-big) == -big
    assert type(roundtrip(2**12000)) is int and plain.encode(2**100) == 2**100  # small ones stay numbers
    for text in ("0x1f", "1_0", " 1", "", "-", "g"):
        with pytest.raises(ValueError):
            plain.decode({"~": "n", "v": text})
    from userlm_plugin.scoring.answers.isolation import wire

    with pytest.raises(ValueError, match="4300 digits"):
        wire._bounded_int("9" * 5000)


def test_the_readme_makes_the_security_claims_of_docs_grading_word_for_word() -> None:
    """docs/grading.md#summary is the README's paragraph on grading (only the link target differs)."""
    import re

    root = Path(__file__).parent.parent
    doc = (root / "docs" / "grading.md").read_text(encoding="utf-8")
    start = doc.index("> The code under test never grades itself.")
    quoted = " ".join(
        line.removeprefix(">").strip() for line in doc[start : doc.index("\n\n", start)].splitlines()
    )
    readme = (root / "README.md").read_text(encoding="utf-8")
    start = readme.index("- The code under test never grades itself.")
    bullet = " ".join(line.strip() for line in readme[start + 2 : readme.index("\n\n", start)].splitlines())
    assert re.sub(r"\]\([^)]*\)", "]", quoted) == re.sub(r"\]\([^)]*\)", "]", bullet)
