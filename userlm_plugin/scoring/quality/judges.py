"""Judge scorers for simulation quality: role adherence, intent adherence, and intent coverage (shards: coverage.py).

The paper classifies the simulated user's next turn with a GPT-4o judge (arXiv 2510.06552 §3; docs/metrics.md#role-adherence, #intent-adherence).
Here the judge is whatever model is bound to the `judge` role (`--model-role judge=litellm/gpt-4o`, any
provider), or a model passed explicitly. Prompts are data (`scoring/quality/prompts/judges.yaml`).

Every score carries the judge's verdict and its reason in the explanation. A judge reply with no
recognisable verdict scores `{"adherent": None, "verdict": "unparseable"}` (excluded from the adherence
percentage, counted by `judge_unparseable_pct`) instead of failing the sample.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml
from inspect_ai.model import ChatMessage, Model, get_model
from inspect_ai.scorer import Metric, SampleScore, Score, Scorer, Target, metric, scorer
from inspect_ai.solver import TaskState

from ..._inspect_compat import PrerequisiteError
from ...simulators.base import SimulationContext
from .coverage import DEFAULT_THRESHOLD, intent_coverage_pct, sample_shards, shard_coverage_score
from .scorers import (
    NOT_APPLICABLE,
    _mean_metric,
    conversation_intent,
    group_key,
    read_conversation,
    sent_turns,
    skip_sample,
)

UNPARSEABLE = "unparseable"
"""Verdict recorded when the judge's reply names none of the allowed labels."""
USER_ENDED = "user_ended"
"""Verdict recorded (without calling the judge) when the user ended instead of writing a turn."""
NO_USER_TURN = "no_user_turn"
"""Verdict recorded when there is no simulated user turn to judge."""


@dataclass(frozen=True)
class JudgePrompt:
    """One judge prompt from judges.yaml: the template, the labels it may answer, the successful ones."""

    name: str
    template: str
    labels: tuple[str, ...]
    adherent: tuple[str, ...]


@cache
def judge_prompts() -> dict[str, JudgePrompt]:
    """Load `scoring/quality/prompts/judges.yaml` (package data) once."""
    text = resources.files(__package__).joinpath("prompts/judges.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)
    return {
        name: JudgePrompt(
            name, spec["template"], tuple(spec.get("labels", [])), tuple(spec.get("adherent", []))
        )
        for name, spec in raw.items()
    }


def parse_verdict(text: str, labels: tuple[str, ...]) -> str | None:
    """The label of a judge reply: its last `VERDICT: X` line, else the single label it mentions; None if unclear.

    Labels are matched as whole words, case-insensitively, longest first (so "ANSWERED_OWN_QUESTION" is not
    read as "USER").
    """
    ordered = sorted(labels, key=len, reverse=True)
    lines = re.findall(r"verdict\s*[:=]\s*\**\s*([A-Za-z_ ]+)", text, flags=re.IGNORECASE)
    for line in reversed(lines):
        candidate = line.strip().upper().replace(" ", "_")
        for label in ordered:
            if candidate.startswith(label):
                return label
    found = {label for label in ordered if re.search(rf"(?<![A-Z_]){label}(?![A-Z_])", text.upper())}
    # a mentioned label that is part of a longer mentioned label does not count twice
    found = {f for f in found if not any(f != g and f in g for g in found)}
    return found.pop() if len(found) == 1 else None


def parse_coverage(text: str) -> tuple[int, int] | None:
    """(covered, total) from a `COVERAGE: a/b` line with 0 <= a <= b and b > 0; None otherwise."""
    match = re.findall(r"coverage\s*[:=]\s*\**\s*(\d+)\s*/\s*(\d+)", text, flags=re.IGNORECASE)
    if not match:
        return None
    covered, total = (int(x) for x in match[-1])
    if total <= 0 or covered > total:
        return None
    return covered, total


def format_transcript(messages: list[ChatMessage]) -> str:
    """`[user] ...` / `[assistant] ...` lines of what a human user would have seen."""
    view = SimulationContext(intent="", messages=messages, turn=0).user_view()
    return "\n".join(f"[{m.role}] {m.text}" for m in view) or "(no earlier messages)"


def resolve_judge(judge: str | Model | None) -> Model:
    """The judge model: the one given, else the `judge` role; a clear error when neither exists."""
    if judge is not None:
        return get_model(judge)
    try:
        return get_model(role="judge", required=True)
    except PrerequisiteError as ex:
        raise PrerequisiteError(
            "The simulation-quality judge scorers need a judge model: bind the `judge` role, e.g. "
            "`--model-role judge=litellm/gpt-4o` (or `model_roles={'judge': ...}`), or pass `judge=` to the scorer."
        ) from ex


def judged_turn(state: TaskState) -> tuple[list[ChatMessage], str | None, bool]:
    """(messages before the judged turn, the judged user turn, whether the user ended instead).

    The judged turn is the last simulated user turn (in a probe, the only one). Runs without a
    `Conversation` record fall back to the last user message.
    """
    conversation = read_conversation(state)
    if conversation.turns and conversation.turns[-1].text is None and conversation.turns[-1].end_reason:
        return state.messages, None, True
    user_indexes = [i for i, m in enumerate(state.messages) if m.role == "user"]
    if not user_indexes or (conversation.turns and not sent_turns(conversation)):
        return state.messages, None, False
    last = user_indexes[-1]
    return state.messages[:last], state.messages[last].text, False


def _adherence_scorer(prompt_name: str, judge: str | Model | None, probe: str | None) -> Any:
    async def score(state: TaskState, target: Target) -> Score | None:
        if skip_sample(state, probe):
            return None
        prompt = judge_prompts()[prompt_name]
        conversation = read_conversation(state)
        intent = conversation_intent(state, conversation)
        before, turn, ended = judged_turn(state)
        meta = {"group": group_key(state, intent)}
        if ended:
            return Score(
                value={"adherent": 1.0 if prompt_name == "role_adherence" else None, "verdict": USER_ENDED},
                explanation="the user ended the conversation instead of writing a turn (judge not called)",
                metadata=meta,
            )
        if not turn:
            return Score(
                value={"adherent": None, "verdict": NO_USER_TURN},
                explanation="no simulated user turn to judge",
                metadata=meta,
            )
        model = resolve_judge(judge)
        text = prompt.template.format(
            intent=intent or "(not given)", conversation=format_transcript(before), turn=turn
        )
        output = await model.generate(text)
        reply = output.completion.strip()
        verdict = parse_verdict(reply, prompt.labels)
        if verdict is None:
            return Score(
                value={"adherent": None, "verdict": UNPARSEABLE},
                answer=turn,
                explanation=f"judge reply names none of {list(prompt.labels)}: {reply[:500]!r}",
                metadata={**meta, "judge_reply": reply, "judge_model": str(model)},
            )
        return Score(
            value={"adherent": float(verdict in prompt.adherent), "verdict": verdict},
            answer=turn,
            explanation=f"VERDICT {verdict}. Judge: {reply[:1000]}",
            metadata={**meta, "judge_reply": reply, "judge_model": str(model)},
        )

    return score


@metric(scores="unreduced")
def role_adherence_pct() -> Metric:
    """Role adherence (docs/metrics.md#role-adherence), in percent: share of judged next user turns that stay in
    the user role (do not answer their own question, do not write as the assistant). Unparseable judge
    replies are excluded. Paper: UserLM-8b 93.95, GPT-4o 38.85, GPT-4o-mini 80.20."""
    return _mean_metric("adherent", 100.0)


@metric(scores="unreduced")
def intent_adherence_pct() -> Metric:
    """Intent adherence (docs/metrics.md#intent-adherence), in percent: share of judged next user turns that refuse
    the assistant's diversion and return to the intent (judge label REFUSED). Unparseable replies and users
    who ended are excluded. Paper: UserLM-8b 94.65, GPT-4o 70.95, GPT-4o-mini 88.70."""
    return _mean_metric("adherent", 100.0)


@metric(scores="unreduced")
def judge_unparseable_pct() -> Metric:
    """Percent of judged samples whose judge reply had no recognisable verdict (check the judge model)."""

    def compute(scores: list[SampleScore]) -> float:
        if not scores:
            return NOT_APPLICABLE
        bad = sum(
            isinstance(s.score.value, dict) and s.score.value.get("verdict") == UNPARSEABLE for s in scores
        )
        return bad / len(scores) * 100

    return compute


@scorer(metrics=[role_adherence_pct(), judge_unparseable_pct()])
def role_adherence(judge: str | Model | None = None, probe: str | None = None) -> Scorer:
    """Judge whether the simulated user's (last) turn stays a user's turn (docs/metrics.md#role-adherence).

    Args:
        judge: Judge model (name or Model). Default: the model bound to the `judge` role.
        probe: Score only samples whose metadata `probe` is this (others stay unscored).
    """
    return _adherence_scorer("role_adherence", judge, probe)


@scorer(metrics=[intent_adherence_pct(), judge_unparseable_pct()])
def intent_adherence(judge: str | Model | None = None, probe: str | None = None) -> Scorer:
    """Judge whether the simulated user refuses a diversion and returns to its intent (docs/metrics.md#intent-adherence).

    Args:
        judge: Judge model (name or Model). Default: the model bound to the `judge` role.
        probe: Score only samples whose metadata `probe` is this (others stay unscored).
    """
    return _adherence_scorer("intent_adherence", judge, probe)


@scorer(metrics=[intent_coverage_pct(), judge_unparseable_pct()])
def intent_coverage(
    judge: str | Model | None = None,
    use_judge: bool = True,
    probe: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> Scorer:
    """Share of the intent's information units the simulated user revealed (arXiv 2510.06552 §4).

    Samples with shards (`coverage.py`): the shard ids the simulator recorded, or, for simulators that record
    none (`userlm`, prompted), the shard matcher. Samples without shards: the judge's estimate.

    Args:
        judge: Judge model for samples without shards. Default: the `judge` role.
        use_judge: Set False to skip samples without shards instead of calling a judge.
        probe: Score only samples whose metadata `probe` is this (others stay unscored).
        threshold: The shard matcher's content-word share (docs/scoring.md).
    """

    async def score(state: TaskState, target: Target) -> Score | None:
        if skip_sample(state, probe):
            return None
        conversation = read_conversation(state)
        intent = conversation_intent(state, conversation)
        shards = sample_shards(state.metadata or {})
        meta = {"group": group_key(state, intent)}
        if shards:
            return shard_coverage_score(state, conversation, shards, threshold, meta)
        texts = [t.text or "" for t in sent_turns(conversation)]
        if not use_judge or not intent or not texts:
            why = "judge disabled" if not use_judge else "no intent" if not intent else "no user turns"
            return Score(value={"coverage": None, "verdict": "not_scored"}, explanation=why, metadata=meta)
        model = resolve_judge(judge)
        prompt = judge_prompts()["intent_coverage"].template.format(
            intent=intent, turns="\n".join(f"- {t}" for t in texts)
        )
        reply = (await model.generate(prompt)).completion.strip()
        parsed = parse_coverage(reply)
        if parsed is None:
            return Score(
                value={"coverage": None, "verdict": UNPARSEABLE},
                explanation=f"judge reply has no valid 'COVERAGE: a/b' line: {reply[:500]!r}",
                metadata={**meta, "judge_reply": reply},
            )
        covered, total = parsed
        return Score(
            value={"coverage": covered / total, "verdict": "judge"},
            explanation=f"judge: {covered}/{total} units covered. {reply[:1000]}",
            metadata={**meta, "judge_reply": reply, "judge_model": str(model)},
        )

    return score
