"""Intent coverage from shards (scoring/quality/coverage.py, docs/scoring.md): tracked shard ids when the simulator
records them, else the shard matcher, so `userlm` conversations (whose turns carry no shard ids) no longer score 0.
Shards are LiC's (tests/fixtures/lic_mini.json)."""

from __future__ import annotations

from pathlib import Path

import pytest
from inspect_ai.model import ChatMessageAssistant, ChatMessageUser, ModelName
from inspect_ai.scorer import SampleScore, Target
from inspect_ai.solver import TaskState

from userlm_plugin.errors import ConfigError
from userlm_plugin.evals.sharded.lic import load_lic
from userlm_plugin.records import Conversation
from userlm_plugin.scoring.quality import judges
from userlm_plugin.scoring.quality.coverage import intent_coverage_pct, match_shards, shard_coverage, terms
from userlm_plugin.turns import TurnRecord

FIXTURE = Path(__file__).parent / "fixtures" / "lic_mini.json"


@pytest.fixture(scope="module")
def lollipops() -> list[dict]:
    record = {r.task_id: r for r in load_lic("math", data=FIXTURE).records}["sharded-GSM8K/435"]
    return [s.model_dump() for s in record.shards]


def state(
    turns: list[str], shards: list[dict], revealed: list[int] | None = None, simulator="userlm"
) -> TaskState:
    """A finished conversation whose user said `turns` (each answered by 'ok'), recorded as the solver does."""
    messages: list = []
    for text in turns:
        messages += [ChatMessageUser(content=text), ChatMessageAssistant(content="ok")]
    task_state = TaskState(
        model=ModelName("mockllm/model"),
        sample_id="s",
        epoch=1,
        input="",
        messages=messages,
        metadata={"shards": shards},
    )
    conversation = Conversation(store=task_state.store)
    conversation.simulator = simulator
    conversation.turns = [TurnRecord(index=i + 1, simulator=simulator, text=t) for i, t in enumerate(turns)]
    conversation.user_turns = len(turns)
    conversation.revealed_shards = revealed or []
    return task_state


def test_terms_stem_drop_stopwords_and_normalise_numbers() -> None:
    words, numbers = terms("Ray shared the remaining $1,250 lollipops equally with his 4 friends.")
    assert {"ray", "shar", "remain", "lollipop", "equally", "friend"} <= words and "the" not in words
    assert numbers == {"1250", "4"}


def test_matcher_credits_paraphrases_and_requires_every_number(lollipops) -> None:
    turns = [
        "how many lollipops does each of Ray's friends get",
        "he had 25 of them to start",
        "he keeps 5 for himself",
    ]
    matches = {m.shard_id: m for m in match_shards(lollipops, turns, 0.5)}
    assert [sid for sid, m in matches.items() if m.covered] == [1, 2, 3]
    assert not matches[4].covered and matches[4].missing_numbers == ("4",)  # "4 friends" never said
    wrong_number = match_shards(lollipops, ["ray started with 26 lollipops"], 0.5)
    assert not wrong_number[1].covered and wrong_number[1].missing_numbers == ("25",)


async def test_userlm_conversation_is_scored_by_the_matcher_not_zero(lollipops) -> None:
    turns = ["how many lollipops did ray's friends get", "he started with 25 lollipops"]
    score = await shard_coverage()(state(turns, lollipops), Target(""))
    assert score.value == {"coverage": 0.5, "verdict": "matched"}
    assert score.metadata["shard_matches"]["3"]["missing_numbers"] == ["5"]
    # the judge scorer gives the same answer for samples with shards, without a judge
    judged = await judges.intent_coverage()(state(turns, lollipops), Target(""))
    assert judged.value == {"coverage": 0.5, "verdict": "matched"}


async def test_tracked_shard_ids_win_over_the_matcher(lollipops) -> None:
    sharded = state(
        ["how many lollipops?", "something else"], lollipops, revealed=[1, 3], simulator="sharded"
    )
    score = await shard_coverage()(sharded, Target(""))
    assert score.value == {"coverage": 0.5, "verdict": "shards"}
    scores = [SampleScore(score=score, sample_id=1)]
    assert intent_coverage_pct()(scores) == pytest.approx(50.0)


async def test_samples_without_shards_are_left_unscored_and_bad_settings_fail() -> None:
    assert await shard_coverage()(state(["hi there"], []), Target("")) is None
    with pytest.raises(ConfigError, match="threshold"):
        shard_coverage(threshold=0)
    with pytest.raises(ConfigError, match=r"shards\[0\]"):
        await shard_coverage()(state(["x"], ["oops"]), Target(""))  # type: ignore[list-item]
