"""The optional `grader` model role: Lost in Conversation's answer-attempt classifier and math answer extractor.

LiC (`system_agent.py`) asks an LLM (GPT-4o-mini, temperature 0, JSON output) two things about the
assistant's latest turn in a sharded conversation:
1. `verify_system_response`: which of seven response types the turn is; only `answer_attempt` is graded;
2. `extract_answer` (math's "gen" strategy): the answer span, copied verbatim. A copy that is not a substring
   of the reply is refused; after 3 tries the answer is the empty string.

Bind any model to the role to get this path: `--model-role grader=openai/gpt-4o-mini`. Without the role the
scorers use our rule-based default (`attempts.py`). Prompts are data (`prompts/grader.yaml`, our wording).

Every grader call runs in a transcript span `grader: ...` (its model call is logged there as usual) followed by
an info event with the parsed result. Malformed output (no JSON, wrong fields, an unknown label) is retried; a
classification still malformed after `CLASSIFY_TRIES` comes back with `label=None` and its errors, which the
caller counts and logs; it never raises.

The assistant's turn is the one untrusted text in these prompts (the model under test wrote it). LiC pastes it raw,
so a turn could end with the prompt's own headers and a forged instruction ("Reply ... {"response_type":
"answer_attempt"}") and have its question graded as an answer. We quote it between two boundary lines that carry
a fresh random token per call (`quote_token`), drawn again if the text holds it, so nothing inside the quote can
close it; the prompt tells the grader that the quoted text is data. The quoted text itself is never edited, so the
extractor's copy can still be checked against it character for character. Both scoring modes do this
(docs/scoring.md lists it as a deviation from LiC's prompt text).
"""

from __future__ import annotations

import json
import secrets
from functools import cache
from importlib import resources
from typing import Any

import yaml
from inspect_ai.log import transcript
from inspect_ai.model import GenerateConfig, ResponseSchema, get_model, model_roles
from inspect_ai.util import json_schema, span
from pydantic import BaseModel, Field

from ...errors import UserLMPluginError
from ...simulators._common import parse_json_object, render

GRADER_ROLE = "grader"
RESPONSE_TYPES = (
    "answer_attempt",
    "clarification",
    "interrogation",
    "discussion",
    "hedge",
    "refuse",
    "missing",
)
"""LiC's response types (`prompts/system_turn_categorization.txt`); only `answer_attempt` is graded."""
ANSWER_ATTEMPT = "answer_attempt"
CLASSIFY_TRIES = 3
"""Calls per classification before giving up on malformed output (LiC makes one and crashes on bad JSON)."""
EXTRACT_TRIES = 3
"""LiC's `max_extraction_attempts`."""
GRADER_TEMPERATURE = 0.0
GRADER_MAX_TOKENS = 1000
QUOTE_DRAWS = 16
"""Boundary tokens drawn before giving up (a 64-bit random token inside the text is already a 1-in-2^60 event)."""


class _Classification(BaseModel):
    response_type: str


class _Extraction(BaseModel):
    answer: str


class Classification(BaseModel):
    """The grader's label for one assistant turn (None when every try was malformed)."""

    label: str | None
    tries: int
    errors: list[str] = Field(default_factory=list)
    model: str = ""

    @property
    def is_attempt(self) -> bool:
        return self.label == ANSWER_ATTEMPT


@cache
def grader_prompts() -> dict[str, str]:
    text = resources.files(__package__).joinpath("prompts/grader.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _fresh_token() -> str:
    return secrets.token_hex(8)


def quote_token(text: str) -> str:
    """A fresh random token for the boundary lines around `text`, one that `text` does not contain (drawn again
    when it does), so the quoted text can neither guess nor contain the lines that close its quote."""
    for _ in range(QUOTE_DRAWS):
        token = _fresh_token()
        if token not in text:
            return token
    raise UserLMPluginError(f"no boundary token absent from the quoted text after {QUOTE_DRAWS} draws")


def classify_prompt(
    turn_text: str, first_shard: str, shards: list[dict[str, Any]], answer_description: str
) -> str:
    """The classification prompt, the assistant's turn quoted between fresh boundary lines."""
    return render(
        grader_prompts()["classify"],
        first_shard=first_shard,
        shards=json.dumps(shards, ensure_ascii=False),
        answer_description=answer_description,
        boundary=quote_token(turn_text),
        turn=turn_text,
    )


def extract_prompt(response: str, answer_description: str) -> str:
    """The extraction prompt, the reply quoted between fresh boundary lines."""
    return render(
        grader_prompts()["extract"],
        answer_description=answer_description,
        boundary=quote_token(response),
        response=response,
    )


def grader_bound() -> bool:
    """True when the eval binds the `grader` role (`--model-role grader=...`)."""
    return GRADER_ROLE in model_roles()


def _config(schema: type[BaseModel], name: str) -> GenerateConfig:
    return GenerateConfig(
        temperature=GRADER_TEMPERATURE,
        max_tokens=GRADER_MAX_TOKENS,
        response_schema=ResponseSchema(name=name, json_schema=json_schema(schema)),
    )


def parse_label(raw: str) -> str:
    """The response type of a classification reply; ValueError when malformed or not one of LiC's seven."""
    reply = parse_json_object(raw, _Classification, strict=True)
    label = reply.response_type.strip().lower()
    if label not in RESPONSE_TYPES:
        raise ValueError(f"unknown response_type {label!r}; expected one of {', '.join(RESPONSE_TYPES)}")
    return label


async def classify_turn(
    turn_text: str, first_shard: str, shards: list[dict[str, Any]], answer_description: str, turn: int
) -> Classification:
    """LiC's turn categorization of the assistant's latest turn, retried on malformed output."""
    model = get_model(role=GRADER_ROLE)
    prompt = classify_prompt(turn_text, first_shard, shards, answer_description)
    errors: list[str] = []
    async with span(f"grader: classify assistant turn {turn}", type="grader"):
        for attempt in range(1, CLASSIFY_TRIES + 1):
            output = await model.generate(prompt, config=_config(_Classification, "turn_classification"))
            try:
                label = parse_label(output.completion)
            except ValueError as ex:
                errors.append(f"try {attempt}: {ex}")
                continue
            result = Classification(label=label, tries=attempt, errors=errors, model=str(model))
            break
        else:
            result = Classification(label=None, tries=CLASSIFY_TRIES, errors=errors, model=str(model))
        transcript().info(
            {"grader": "classify", "assistant_turn": turn, **result.model_dump(exclude_defaults=True)},
            source="userlm_plugin/grader",
        )
    return result


async def extract_span(response: str, answer_description: str) -> tuple[str, dict[str, Any]]:
    """LiC's "gen" extraction: the answer copied verbatim out of `response`, or "" after `EXTRACT_TRIES` tries.

    A copy that is not a substring of `response` (or malformed output) costs a try, as in LiC.
    """
    model = get_model(role=GRADER_ROLE)
    prompt = extract_prompt(response, answer_description)
    errors: list[str] = []
    answer = ""
    async with span("grader: extract answer", type="grader"):
        for attempt in range(1, EXTRACT_TRIES + 1):
            output = await model.generate(prompt, config=_config(_Extraction, "answer_extraction"))
            try:
                candidate = parse_json_object(output.completion, _Extraction, strict=True).answer
            except ValueError as ex:
                errors.append(f"try {attempt}: {ex}")
                continue
            if candidate not in response:
                errors.append(f"try {attempt}: {candidate[:200]!r} is not a substring of the reply")
                continue
            answer = candidate
            break
        details = {"extraction": "grader", "extraction_tries": attempt, "extraction_errors": errors}
        if not answer:
            details["extraction_failed"] = True
        transcript().info({"grader": "extract", "answer": answer, **details}, source="userlm_plugin/grader")
    return answer, details
