"""Simulation-quality scorers and metrics (userlm_plugin/scoring/quality.py, judges.py) on hand-built conversations.

Scorers are called on TaskStates whose store holds a `Conversation` (as `simulated_user` leaves it); metrics are
called on the resulting SampleScores, grouped the way Inspect hands them over (one per sample per epoch).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from inspect_ai.model import (
    ChatMessageAssistant,
    ChatMessageUser,
    ModelName,
    ModelOutput,
    ModelUsage,
    get_model,
)
from inspect_ai.scorer import SampleScore, Target
from inspect_ai.solver import TaskState

from userlm_plugin.recorder import ConversationRecorder
from userlm_plugin.records import Conversation
from userlm_plugin.scoring.quality import judges
from userlm_plugin.scoring.quality import scorers as quality
from userlm_plugin.turns import EndReason, Rejection, RejectReason, StopReason, TurnRecord

INTENT = "You are a user chatting with an assistant language model to plan a cheap trip to Japan in spring"


def make_state(
    turns: list[str | None],
    sample_id: str = "s1",
    epoch: int = 1,
    intent: str = INTENT,
    stop: StopReason | None = None,
    metadata: dict[str, Any] | None = None,
    records: list[TurnRecord] | None = None,
    revealed: list[int] | None = None,
) -> TaskState:
    """A finished conversation: user turns `turns` (None = the user ended there), each answered by 'ok'."""
    messages: list[Any] = []
    state = TaskState(
        model=ModelName("none/none"),
        sample_id=sample_id,
        epoch=epoch,
        input="",
        messages=messages,
        metadata={"intent": intent, **(metadata or {})},
    )
    recorder = ConversationRecorder(state.store, "test", intent=intent)
    for i, text in enumerate(turns, start=1):
        if text is None:
            recorder.user_turn(TurnRecord(index=i, simulator="test", end_reason=EndReason.END_TOKEN))
        else:
            recorder.user_turn(TurnRecord(index=i, simulator="test", text=text))
            state.messages.append(ChatMessageUser(content=text))
            state.messages.append(ChatMessageAssistant(content="ok"))
    for record in records or []:
        recorder.user_turn(record)
    conv = state.store_as(Conversation)
    if revealed is not None:
        conv.revealed_shards = revealed
    conv.stop_reason = stop or (
        StopReason.USER_ENDED if turns and turns[-1] is None else StopReason.MAX_TURNS
    )
    return state


async def score_all(scorer: Any, states: list[TaskState]) -> list[SampleScore]:
    out = []
    for state in states:
        score = await scorer(state, Target(""))
        out.append(SampleScore(score=score, sample_id=state.sample_id, sample_metadata=state.metadata))
    return out


async def test_first_turn_quality_metrics() -> None:
    states = [
        make_state(["japan trip ideas", "in spring"], "a"),
        make_state(["Here is my plan: cheap trip to japan in spring"], "b"),
        make_state([None], "c"),  # ended before saying anything: not a first turn
    ]
    scores = await score_all(quality.first_turn_quality(), states)
    assert scores[2].score.value["first_turn_words"] is None
    # first turns: "japan trip ideas" (3 tokens) and "here is my plan cheap trip to japan in spring" (10 tokens)
    # pooled distinct: japan, trip, ideas + here is my plan cheap to in spring = 11 of 13 tokens
    assert quality.first_turn_unique_unigram_pct()(scores) == pytest.approx(11 / 13 * 100)
    # one pair: |{japan,trip}| / |union 11| -> distance 9/11
    assert quality.first_turn_pairwise_difference_pct()(scores) == pytest.approx(9 / 11 * 100)
    # intent share: a = {japan, trip} of 5 = 0.4; b = all 5 = 1.0 -> mean 70%
    assert quality.first_turn_intent_share_pct()(scores) == pytest.approx(70.0)
    assert quality.first_turn_assistant_opener_pct()(scores) == pytest.approx(50.0)
    assert quality.first_turn_mean_words()(scores) == pytest.approx(6.5)


async def test_intent_decomposition_pools_over_turns() -> None:
    states = [
        make_state(["japan trip ideas budget", "what about flights"], "a"),  # 2/4 and 0/2
        make_state(["cheap spring trip"], "b"),  # 3/3
    ]
    scores = await score_all(quality.intent_decomposition(), states)
    assert scores[0].score.value["intent_overlap"] == pytest.approx(0.25)
    assert quality.intent_overlap_pct()(scores) == pytest.approx((0.5 + 0 + 1) / 3 * 100)
    assert quality.intent_overlap_words_per_turn()(scores) == pytest.approx((2 + 0 + 3) / 3)


async def test_conversation_variety_groups_repeats_of_one_intent() -> None:
    other = "You are a user chatting with an assistant language model to fix a bug"
    states = [
        make_state(["a b", "c"], "s1", epoch=1),
        make_state(["a b", "c", "d", "e"], "s1", epoch=2),
        make_state(["x y z"], "s2", epoch=1, intent=other),
        make_state(["x y z"], "s2", epoch=2, intent=other),
    ]
    scores = await score_all(quality.conversation_variety(), states)
    assert quality.mean_user_turns()(scores) == pytest.approx((2 + 4 + 1 + 1) / 4)
    # intent 1: lengths 2, 4 -> variance 1; intent 2: 1, 1 -> 0
    assert quality.turn_variance_within_intent()(scores) == pytest.approx(0.5)
    assert quality.turn_range_within_intent()(scores) == {"turns_min": 1.5, "turns_max": 2.5}
    # intent 1: {a,b,c} vs {a,b,c,d,e} -> 1 - 3/5 = 0.4; intent 2: identical -> 0
    assert quality.unigram_difference_within_intent()(scores) == pytest.approx(0.2)


async def test_termination_share_and_f1() -> None:
    states = [
        make_state(["hi", None], "a", metadata={"should_end": True}),  # ended, should: TP
        make_state(["hi", None], "b", metadata={"should_end": False}),  # ended, should not: FP
        make_state(["hi"], "c", metadata={"should_end": True}),  # capped, should end: FN
        make_state(["hi"], "d", stop=StopReason.STOP_WHEN),  # unlabelled, stopped by stop_when
    ]
    scores = await score_all(quality.termination(), states)
    assert quality.ended_by_user_pct()(scores) == pytest.approx(50.0)
    assert quality.hit_turn_cap_pct()(scores) == pytest.approx(25.0)
    assert quality.end_decision_f1()(scores) == {
        "end_precision": pytest.approx(50.0),
        "end_recall": pytest.approx(50.0),
        "end_f1": pytest.approx(50.0),
    }
    assert "end_reason=end_token" in scores[0].score.explanation
    unlabelled = [s for s in scores if s.sample_id == "d"]
    assert quality.end_decision_f1()(unlabelled) == {
        "end_precision": None,
        "end_recall": None,
        "end_f1": None,
    }


async def test_guardrail_activity_counts_rejections_and_role_breaks() -> None:
    extra = [
        TurnRecord(
            index=3,
            simulator="test",
            text="Sure! Here is a plan for you",
            role_break=True,
            rejected=[
                Rejection(text="I can help", reason=RejectReason.ROLE_BREAK),
                Rejection(text="ok", reason=RejectReason.TOO_SHORT),
            ],
            retries=2,
            guardrails_exhausted=True,
        )
    ]
    state = make_state(["one two three", "four five six"], records=extra)
    [score] = await score_all(quality.guardrail_activity(), [state])
    assert score.score.value["rejected_drafts"] == 2
    assert score.score.metadata["rejections_by_reason"] == {"role_break": 1, "too_short": 1}
    assert quality.guardrail_intervention_pct()([score]) == pytest.approx(100 / 3)
    assert quality.rejected_drafts_per_turn()([score]) == pytest.approx(2 / 3)
    assert quality.guardrails_exhausted_pct()([score]) == pytest.approx(100 / 3)
    assert quality.role_break_pct()([score]) == pytest.approx(100 / 3)


async def test_scorers_skip_other_probes_and_empty_runs() -> None:
    state = make_state(["hi there friend"], metadata={"probe": "role"})
    assert await quality.termination(probe="termination")(state, Target("")) is None
    empty = TaskState(ModelName("none/none"), "e", 1, "", [], metadata={})
    [score] = await score_all(quality.intent_decomposition(), [empty])
    assert score.score.value["turns_scored"] == 0
    assert math.isnan(
        quality.intent_overlap_pct()([score])
    )  # not applicable: NaN, as Inspect metrics must be float


# ------------------------------------------------------------------------------------------------- judges


def scripted_judge(reply: str | Any) -> Any:
    """A mockllm judge: a fixed reply, or a function of the prompt text."""

    def out(text: str) -> ModelOutput:
        o = ModelOutput.from_content(model="mockllm/model", content=text)
        o.usage = ModelUsage(input_tokens=5, output_tokens=5, total_tokens=10)  # no tiktoken download (G4)
        return o

    def respond(input: Any, tools: Any, tool_choice: Any, config: Any) -> ModelOutput:
        prompt = input[-1].text
        return out(reply(prompt) if callable(reply) else reply)

    return get_model("mockllm/model", memoize=False, custom_outputs=respond)


def probe_state(turn: str | None, probe: str = "role") -> TaskState:
    state = TaskState(
        ModelName("none/none"),
        "p1",
        1,
        "",
        [
            ChatMessageUser(content="where do penguins live? antarctica, sahara, amazon"),
            ChatMessageAssistant(content="I'm not sure. What do you think?"),
        ],
        metadata={
            "intent": "You are a user chatting with an assistant language model to learn where penguins live"
        },
    )
    recorder = ConversationRecorder(state.store, "t")
    if turn is None:
        recorder.user_turn(TurnRecord(index=2, simulator="t", end_reason=EndReason.END_TOKEN))
    else:
        recorder.user_turn(TurnRecord(index=2, simulator="t", text=turn))
        state.messages.append(ChatMessageUser(content=turn))
    return state


def test_parse_verdict() -> None:
    labels = ("USER", "ANSWERED_OWN_QUESTION", "ACTED_AS_ASSISTANT")
    assert judges.parse_verdict("It stays a user.\nVERDICT: USER", labels) == "USER"
    assert (
        judges.parse_verdict("reason...\n**Verdict:** answered_own_question", labels)
        == "ANSWERED_OWN_QUESTION"
    )
    assert judges.parse_verdict("ANSWERED_OWN_QUESTION", labels) == "ANSWERED_OWN_QUESTION"  # lone label
    assert judges.parse_verdict("I cannot decide.", labels) is None
    assert judges.parse_verdict("USER or ACTED_AS_ASSISTANT, hard to say", labels) is None  # ambiguous
    assert judges.parse_coverage("units...\nCOVERAGE: 3/4") == (3, 4)
    assert judges.parse_coverage("COVERAGE: 5/4") is None


async def test_role_adherence_verdict_reason_and_unparseable() -> None:
    good = judges.role_adherence(judge=scripted_judge("Asks a follow-up.\nVERDICT: USER"))
    score = await good(probe_state("idk, isn't it antarctica? why do you ask"), Target(""))
    assert score.value == {"adherent": 1.0, "verdict": "USER"}
    assert "VERDICT USER" in score.explanation and "follow-up" in score.explanation

    bad = judges.role_adherence(judge=scripted_judge("¯\\_(ツ)_/¯ no idea"))
    score = await bad(probe_state("hmm"), Target(""))
    assert score.value == {"adherent": None, "verdict": "unparseable"}
    assert "no idea" in score.explanation
    scores = [SampleScore(score=score, sample_id="p1")]
    assert math.isnan(judges.role_adherence_pct()(scores))
    assert judges.judge_unparseable_pct()(scores) == 100.0

    ended = await good(probe_state(None), Target(""))  # leaving is staying a user; the judge is not called
    assert ended.value == {"adherent": 1.0, "verdict": "user_ended"}


async def test_intent_adherence_labels() -> None:
    judge = scripted_judge(
        lambda prompt: "VERDICT: REFUSED" if "penguins" in prompt.split("<<<")[1] else "ACCEPTED"
    )
    scorer = judges.intent_adherence(judge=judge)
    back = await scorer(probe_state("no thanks, just tell me where penguins live", "intent"), Target(""))
    away = await scorer(probe_state("ooh yes tell me about rock bands", "intent"), Target(""))
    assert back.value["verdict"] == "REFUSED" and away.value["verdict"] == "ACCEPTED"
    scores = [SampleScore(score=s, sample_id=i) for i, s in enumerate([back, away])]
    assert judges.intent_adherence_pct()(scores) == pytest.approx(50.0)


async def test_judge_requires_a_judge_role() -> None:
    from inspect_ai._util.error import PrerequisiteError

    with pytest.raises(PrerequisiteError, match="--model-role judge="):
        await judges.role_adherence()(probe_state("hello there you"), Target(""))


async def test_intent_coverage_from_shards_and_judge() -> None:
    shards = {"shards": [{"shard_id": i, "shard": f"s{i}"} for i in (1, 2, 3, 4)]}
    state = make_state(["a b c", "d e f"], metadata=shards, revealed=[1, 3])
    score = await judges.intent_coverage()(state, Target(""))  # no judge needed with shards
    assert score.value == {"coverage": 0.5, "verdict": "shards"}

    judged = await judges.intent_coverage(judge=scripted_judge("ok\nCOVERAGE: 2/5"))(
        make_state(["x y z"]), Target("")
    )
    assert judged.value == {"coverage": 0.4, "verdict": "judge"}
    garbled = await judges.intent_coverage(judge=scripted_judge("most of it"))(
        make_state(["x y z"]), Target("")
    )
    assert garbled.value["verdict"] == "unparseable"
    scores = [SampleScore(score=s, sample_id=i) for i, s in enumerate([score, judged, garbled])]
    assert judges.intent_coverage_pct()(scores) == pytest.approx(45.0)

    with pytest.raises(ValueError, match=r"shards\[0\]"):
        await judges.intent_coverage()(make_state(["x"], metadata={"shards": ["oops"]}), Target(""))
