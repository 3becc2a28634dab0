"""`simulated_ask_user()`: Inspect's `ask_user` answered by our simulators (docs/agents.md#the-ask_user-tool).

Through real Inspect evals: an assistant (mockllm) calls `ask_user` inside `simulated_user`'s tool loop and gets a
schema-valid JSON answer from a scripted user and from the User LM (`userlm/` on the tiny Llama); a schema the
user cannot fill is declined with Inspect's own decline error, never filled with an invented value; every
question and answer is a user turn of the simulated user's span, with Inspect's `InputEvent`. The tool mirrors
Inspect's: same name, description, parameters, schema errors and answer text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from agent_models import ScriptedModel, call, last_tool_text
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.log import EvalSample, resolve_sample_attachments
from inspect_ai.model import ChatMessage, ChatMessageTool
from inspect_ai.solver import use_tools
from inspect_ai.tool import ToolDef, ToolError, ask_user

from userlm_plugin import simulated_user
from userlm_plugin.agents import simulated_ask_user
from userlm_plugin.agents.forms import fill_form
from userlm_plugin.agents.questions import DECLINED, is_decline, parse_question, render_question
from userlm_plugin.errors import UsageError
from userlm_plugin.records import Conversation, conversation_from_store
from userlm_plugin.turns import RejectReason

INTENT = "You are a user chatting with an assistant language model to get your locked bank account unlocked"
ACCOUNT = {
    "type": "object",
    "properties": {"account": {"type": "integer", "description": "Your account number"}},
    "required": ["account"],
}
DETAILS = {"type": "object", "properties": {"details": {"type": "string"}}, "required": ["details"]}
COLOR = {
    "type": "object",
    "properties": {"color": {"type": "string", "enum": ["chartreuse", "vermilion", "cerulean"]}},
    "required": ["color"],
}


def asker(schema: dict[str, Any], message: str = "What is your account number?") -> ScriptedModel:
    """An assistant that asks once through ask_user, then repeats what the tool returned."""

    def decide(messages: list[ChatMessage], n: int) -> Any:
        result = last_tool_text(messages)
        if result is not None or any(m.role == "tool" for m in messages):
            return f"Thanks: {result}"
        return call("ask_user", message=message, schema=schema) if n == 1 else "Done."

    return ScriptedModel(decide)


def run(
    tmp_path: Path,
    assistant: ScriptedModel,
    simulator: Any,
    metadata: dict[str, Any],
    max_turns: int = 2,
    tool: Any = None,
    **eval_args: Any,
) -> tuple[EvalSample, Conversation]:
    task = Task(
        dataset=[Sample(id="q", input="-", metadata=metadata)],
        solver=[use_tools(tool or simulated_ask_user()), simulated_user(simulator, max_turns=max_turns)],
    )
    [log] = eval(task, model=assistant.model(), display="none", log_dir=str(tmp_path), **eval_args)
    assert log.status == "success", log.error
    sample = resolve_sample_attachments(log.samples[0])  # long event texts are stored as attachments
    assert sample.error is None, sample.error
    return sample, conversation_from_store(sample.store)


def tool_message(sample: EvalSample) -> ChatMessageTool:
    [message] = [m for m in sample.messages if isinstance(m, ChatMessageTool)]
    return message


def question_span_events(sample: EvalSample, index: int) -> list[Any]:
    """The events inside the span of user turn `index`."""
    [begin] = [
        e for e in sample.events if e.event == "span_begin" and e.name.startswith(f"user turn {index} (")
    ]
    return [e for e in sample.events if getattr(e, "span_id", None) == begin.id]


def test_same_name_parameters_and_description_as_inspects_ask_user() -> None:
    ours, theirs = ToolDef(simulated_ask_user("scripted")), ToolDef(ask_user())
    assert (ours.name, ours.description, ours.parameters, ours.parallel) == (
        theirs.name,
        theirs.description,
        theirs.parameters,
        theirs.parallel,
    )


async def test_invalid_schemas_fail_exactly_as_inspects() -> None:
    bad = [
        {"type": "object", "properties": {"when": {"type": "date"}}},  # an unsupported property type
        {"type": "object", "properties": {"n": {"type": "integer", "minimum": "low"}}},
        {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "object"}}}},
    ]
    for schema in bad:
        with pytest.raises(ToolError) as inspects:
            await ask_user()(message="?", schema=schema)
        with pytest.raises(ToolError) as ours:
            parse_question("?", schema)
        assert str(ours.value) == str(inspects.value) and str(ours.value).startswith("Invalid schema")
    # Inspect lowercases type names (Gemini sends "OBJECT"); so do we
    assert [
        f.kind
        for f in parse_question("?", {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}}).fields
    ] == ["string"]


def test_scripted_user_answers_with_schema_valid_json(tmp_path: Path) -> None:
    metadata = {"intent": INTENT, "turns": ["Please unlock my account.", "It is 7341, I think."]}
    sample, conv = run(tmp_path, asker(ACCOUNT), "scripted", metadata)

    answer = tool_message(sample)
    assert answer.error is None and json.loads(answer.text) == {"account": 7341}
    jsonschema.validate(json.loads(answer.text), ACCOUNT)
    assert answer.text == json.dumps({"account": 7341}, indent=2)  # Inspect's own serializer
    # the exchange is user turn 2 of the simulated user: question, the user's words, the answer the agent got
    record = conv.turns[1]
    assert record.index == 2 and record.text == answer.text
    assert record.metadata["question"] == "What is your account number?"
    assert record.metadata["user_reply"] == "It is 7341, I think."
    assert record.metadata["ask_user"]["outcome"] == "accepted"
    assert record.metadata["ask_user"]["content"] == {"account": 7341}
    events = question_span_events(sample, 2)
    [inputs] = [e for e in events if e.event == "input"]
    assert inputs.outcome == "accepted" and inputs.content == {"account": 7341}
    assert inputs.message == "What is your account number?" and "account: 7341" in inputs.input
    [info] = [e for e in events if e.event == "info"]
    shown = str(info.data)
    assert "Asked by the agent (`ask_user`): “What is your account number?”" in shown
    assert "The user said: “It is 7341, I think.”" in shown
    # the question counts as a user turn (the script's third turn does not exist, so the user then ends)
    assert conv.user_turns == 2 and [m.role for m in sample.messages].count("user") == 1


def test_userlm_simulator_answers_with_schema_valid_json(
    tmp_path: Path, tiny_userlm_dir: Path, tiny_userlm_model
) -> None:
    user = tiny_userlm_model(tiny_userlm_dir)
    sim = {"simulator": "userlm", "max_tokens": 24}
    sample, conv = run(
        tmp_path,
        asker(DETAILS, "Which account should I unlock?"),
        sim,
        {"intent": INTENT},
        seed=5,
        model_roles={"user": user},
    )

    answer = tool_message(sample)
    assert answer.error is None, answer.error
    content = json.loads(answer.text)
    jsonschema.validate(content, DETAILS)
    record = conv.turns[1]
    assert content == {"details": record.metadata["user_reply"]}  # the User LM's own words, not ours
    # the User LM saw the question as the assistant's latest message, after the conversation so far
    events = question_span_events(sample, 2)
    [model_call] = [e for e in events if e.event == "model"][:1]
    assert model_call.role == "user"
    assert (
        model_call.input[-1].role == "assistant"
        and model_call.input[-1].text == "Which account should I unlock?"
    )
    assert model_call.input[0].role == "system" and model_call.input[0].text == INTENT
    assert any(e.event == "input" and e.outcome == "accepted" for e in events)


def test_a_schema_the_user_cannot_fill_is_declined_not_invented(
    tmp_path: Path, tiny_userlm_dir: Path, tiny_userlm_model
) -> None:
    """The tiny User LM writes random words: none is one of three rare colours, so after the retries the
    question is declined with Inspect's own error, and every rejected reply is in the record with why."""
    user = tiny_userlm_model(tiny_userlm_dir)
    sim = {"simulator": "userlm", "max_tokens": 24}
    sample, conv = run(
        tmp_path, asker(COLOR, "Which colour?"), sim, {"intent": INTENT}, seed=5, model_roles={"user": user}
    )

    answer = tool_message(sample)
    assert answer.text == "" and answer.error is not None and answer.error.message == DECLINED
    record = conv.turns[1]
    assert record.text == DECLINED and record.metadata["ask_user"]["outcome"] == "declined"
    assert (
        record.metadata["ask_user"]["reason"] == "no_valid_answer"
        and "content" not in record.metadata["ask_user"]
    )
    invalid = [r for r in record.rejected if r.reason == RejectReason.INVALID_ANSWER]
    assert len(invalid) == 3  # the first reply and max_retries=2 more
    assert all("Please choose one of: chartreuse, vermilion, cerulean." in (r.detail or "") for r in invalid)
    # each retry showed the user what was wrong, as Inspect's console does
    calls = [e for e in question_span_events(sample, 2) if e.event == "model"]
    assert "Please choose one of" in calls[-1].input[-1].text
    [inputs] = [e for e in sample.events if e.event == "input"]
    assert inputs.outcome == "declined" and inputs.content is None


def test_scripted_user_that_cannot_fill_the_schema_declines(tmp_path: Path) -> None:
    metadata = {
        "intent": INTENT,
        "turns": ["Please unlock my account.", "The blue one, the savings account."],
    }
    sample, conv = run(tmp_path, asker(ACCOUNT), "scripted", metadata)

    assert tool_message(sample).error.message == DECLINED
    record = conv.turns[1]
    assert record.metadata["ask_user"]["reason"] == "no_valid_answer"
    assert [r.detail for r in record.rejected] == ["account: Please enter a valid integer."] * 3


def test_a_user_who_does_not_know_declines_at_once(tmp_path: Path) -> None:
    metadata = {"intent": INTENT, "turns": ["Please unlock my account.", "Sorry, I don't know that."]}
    sample, conv = run(tmp_path, asker(DETAILS), "scripted", metadata)

    assert tool_message(sample).error.message == DECLINED
    record = conv.turns[1]
    assert record.metadata["ask_user"] == {
        "outcome": "declined",
        "reason": "refused",
        "reply": "Sorry, I don't know that.",
        "attempts": 1,
        "guardrails_exhausted": False,
        "schema": record.metadata["ask_user"]["schema"],
    }
    assert record.rejected == []


def test_a_bad_json_answer_is_retried_with_the_error_then_accepted(tmp_path: Path) -> None:
    """A prompted user answering in JSON is validated too: an invented key, then a value outside the enum, are
    rejected with why; the third answer fits."""
    schema = {"type": "object", "properties": {"color": {"type": "string", "enum": ["red", "green"]}}}
    user = ScriptedModel(
        [
            "Hi, can you help?",
            '{"color": "red", "shade": "dark"}',
            '{"color": "purple"}',
            '{"color": "green"}',
        ]
    )
    sample, conv = run(
        tmp_path,
        asker(schema, "Which colour?"),
        "prompted",
        {"intent": INTENT},
        model_roles={"user": user.model()},
    )

    assert json.loads(tool_message(sample).text) == {"color": "green"}
    record = conv.turns[1]
    assert [r.detail for r in record.rejected] == [
        "Additional properties are not allowed ('shade' was unexpected)",
        "color: 'purple' is not one of ['red', 'green']",
    ]
    assert record.retries == 2 and record.metadata["ask_user"]["attempts"] == 3
    # the retry's prompt told the user what was wrong
    assert "'purple' is not one of" in user.inputs[-1][-1].text


def test_questions_past_the_turn_cap_are_declined_unasked(tmp_path: Path) -> None:
    metadata = {"intent": INTENT, "turns": ["Please unlock my account.", "7341"]}
    sample, conv = run(tmp_path, asker(ACCOUNT), "scripted", metadata, max_turns=1)

    assert tool_message(sample).error.message == DECLINED
    assert conv.user_turns == 1 and len(conv.turns) == 1  # no user turn for it
    [note] = [e for e in sample.events if e.event == "info" and "declined unasked" in str(e.data)]
    assert "turn cap (1)" in str(note.data)
    [inputs] = [e for e in sample.events if e.event == "input"]
    assert inputs.outcome == "declined"


def test_an_invalid_schema_is_the_agents_error_and_no_user_turn(tmp_path: Path) -> None:
    metadata = {"intent": INTENT, "turns": ["Please unlock my account.", "7341"]}
    bad = {"type": "object", "properties": {"when": {"type": "date"}}}
    sample, conv = run(tmp_path, asker(bad), "scripted", metadata)

    assert tool_message(sample).error.message.startswith(
        "Invalid schema: property 'when' has unsupported type"
    )
    assert (
        len(conv.turns) == 2 and conv.turns[1].text == "7341"
    )  # the next user turn is the script's second line


def test_the_user_background_answers_questions(tmp_path: Path) -> None:
    """SimulatorArena-style background pairs (sample metadata `user_background`) are part of what the user knows:
    the prompted user below can only answer from them."""
    background = [{"question": "What is your flight number?", "answer": "BA 117 to Algiers."}]

    def reply(messages: list[ChatMessage], n: int) -> str:
        if n == 1:
            return "I need to change my flight."
        return (
            "It's BA 117."
            if "What is your flight number? BA 117 to Algiers." in messages[0].text
            else "No clue."
        )

    user = ScriptedModel(reply)
    schema = {"type": "object", "properties": {"flight": {"type": "string"}}, "required": ["flight"]}
    metadata = {"intent": INTENT, "user_background": background}
    sample, conv = run(
        tmp_path,
        asker(schema, "Your flight number?"),
        "prompted",
        metadata,
        model_roles={"user": user.model()},
    )

    assert json.loads(tool_message(sample).text) == {"flight": "It's BA 117."}
    assert conv.intent.startswith(INTENT) and conv.intent.endswith(
        "- What is your flight number? BA 117 to Algiers."
    )


SIMULATORARENA = Path(__file__).parents[2] / "shared" / "data" / "simulatorarena"


@pytest.mark.skipif(
    not (SIMULATORARENA / "document_creation_user_simulator_background.json").is_file(),
    reason="SimulatorArena data not at ../shared/data/simulatorarena (see ../shared/data/README.md)",
)
def test_simulatorarena_backgrounds_are_read_as_they_are_published() -> None:
    from userlm_plugin.simulators.background import background_facts, intent_with_background

    data = json.loads((SIMULATORARENA / "document_creation_user_simulator_background.json").read_text())
    for key, pairs in list(data.items())[:50]:
        facts = background_facts(pairs, key)
        assert len(facts) == sum(1 for p in pairs if str(p["question"]).strip() or str(p["answer"]).strip())
        intent = intent_with_background(
            "You are a user chatting with an assistant language model to write", {"user_background": pairs}
        )
        assert all(fact in intent for fact in facts)


def test_a_malformed_background_names_the_field() -> None:
    from userlm_plugin.errors import ConfigError
    from userlm_plugin.simulators.background import intent_with_background

    assert intent_with_background("goal", {}) == "goal"
    assert intent_with_background("goal", {"user_background": "I fly on Tuesdays."}).endswith(
        "- I fly on Tuesdays."
    )
    with pytest.raises(ConfigError, match=r"Sample 7: metadata 'user_background' must be .* item 0 is 42"):
        intent_with_background("goal", {"user_background": [42]}, "Sample 7")


def test_form_rules_take_only_what_the_reply_says() -> None:
    form = parse_question(
        "Settings?",
        {
            "type": "object",
            "properties": {
                "color": {"type": "string", "enum": ["red", "green", "blue"]},
                "size": {
                    "type": "string",
                    "oneOf": [{"const": "s", "title": "Small"}, {"const": "l", "title": "Large"}],
                },
                "count": {"type": "integer", "minimum": 1, "maximum": 10},
                "proceed": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "minItems": 1},
            },
            "required": ["color"],
        },
    )
    content, error = fill_form("Green please, a large one, 3 of them. Yes, go on; tags a and b", form)
    assert error is None and content == {
        "color": "green",
        "size": "l",
        "count": 3,
        "proceed": True,
        "tags": ["a", "b"],
    }
    assert fill_form("red or blue, whichever", form) == (
        None,
        "color: Please choose one of: red, green, blue.",
    )
    assert fill_form("green, 30 of them", form)[1] == "count: 30 is greater than the maximum of 10"
    assert fill_form("green, 3 or 4", form)[1] == "count: Please enter a valid integer."
    assert fill_form("green, yes and no", form) == (
        {"color": "green"},
        None,
    )  # optional and ambiguous: left out
    assert fill_form("something purple", form)[1] == "color: Please choose one of: red, green, blue."
    # labelled lines give free-text fields of a larger form; nothing else does
    free = parse_question(
        "Who?",
        {
            "type": "object",
            "properties": {"name": {"type": "string"}, "city": {"type": "string"}},
            "required": ["name"],
        },
    )
    assert fill_form("I'm Ana from Oran", free) == (None, "name is required.")
    assert fill_form("name: Ana\ncity: Oran", free) == ({"name": "Ana", "city": "Oran"}, None)
    # patterns must match the whole string, as Inspect's console requires
    code = parse_question(
        "Code?", {"type": "object", "properties": {"code": {"type": "string", "pattern": "[0-9]{4}"}}}
    )
    assert fill_form("1234", code) == ({"code": "1234"}, None)
    assert fill_form("code 12345", code)[1].startswith("code: ")


def test_declines_and_question_rendering() -> None:
    for refusal in [
        "I don't know.",
        "Sorry, I don't know that.",
        "no idea",
        "I'm not sure",
        ":decline",
        "Pass.",
    ]:
        assert is_decline(refusal), refusal
    for answer in [
        "I don't know much about regex, but it should match emails",
        "pass the list and k",
        "not sure it matters, use python",
    ]:
        assert not is_decline(answer), answer
    assert render_question(parse_question("Which account?", DETAILS)) == "Which account?"
    shown = render_question(parse_question("Which colour?", COLOR))
    assert shown == "Which colour?\n\nPlease answer:\n- color (one of: chartreuse, vermilion, cerulean)"


def test_bad_arguments_fail_when_the_task_is_built() -> None:
    with pytest.raises(UsageError, match="simulated_ask_user: Unknown simulator 'userlmm'"):
        simulated_ask_user("userlmm")
    with pytest.raises(UsageError, match="max_retries"):
        simulated_ask_user(max_retries=-1)


async def test_outside_a_sample_it_says_so() -> None:
    with pytest.raises(ValueError, match="needs a running Inspect sample"):
        await simulated_ask_user("scripted")(message="?", schema=DETAILS)


def test_a_simulator_that_fails_mid_question_stops_the_conversation(tmp_path: Path) -> None:
    def reply(messages: list[ChatMessage], n: int) -> str:
        if n == 1:
            return "Please unlock my account."
        raise RuntimeError("user model crashed")

    task = Task(
        dataset=[Sample(id="q", input="-", metadata={"intent": INTENT})],
        solver=[use_tools(simulated_ask_user()), simulated_user("prompted", max_turns=3)],
    )
    user = ScriptedModel(reply)
    [log] = eval(
        task,
        model=asker(ACCOUNT).model(),
        model_roles={"user": user.model()},
        display="none",
        log_dir=str(tmp_path),
    )
    sample = log.samples[0]
    assert sample.error is not None and "user model crashed" in sample.error.message
    assert conversation_from_store(sample.store).stop_reason == "simulator_error"


def test_json_answers_cannot_smuggle_other_types() -> None:
    form = parse_question(
        "?",
        {
            "type": "object",
            "properties": {
                "n": {"type": "integer"},
                "ok": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a"]}},
            },
        },
    )
    assert fill_form('{"n": true}', form)[1] == "n: True is not of type 'integer'"
    assert fill_form('{"ok": "yes"}', form)[1] == "ok: 'yes' is not of type 'boolean'"
    assert fill_form('{"tags": ["a", "b"]}', form)[1] == "tags.1: 'b' is not one of ['a']"
    assert fill_form('{"tags": ["a", "a"]}', form) == (
        {"tags": ["a"]},
        None,
    )  # kept once, as Inspect's forms do
    assert fill_form('{"n": 2.5}', form)[1] == "n: 2.5 is not of type 'integer'"


def test_without_the_solver_the_tool_starts_the_simulated_user(tmp_path: Path) -> None:
    """An agent run by plain `generate` (no simulated_user): the first question starts the sample's simulated
    user from the tool's own simulator, with the sample's metadata."""
    from inspect_ai.solver import generate

    task = Task(
        dataset=[Sample(id="q", input="Please unlock my account.", metadata={"turns": ["It is 7341."]})],
        solver=[use_tools(simulated_ask_user("scripted", max_turns=2)), generate()],
    )
    [log] = eval(task, model=asker(ACCOUNT).model(), display="none", log_dir=str(tmp_path))
    sample = log.samples[0]
    assert json.loads(tool_message(sample).text) == {"account": 7341}
    conv = conversation_from_store(sample.store)
    assert conv.simulator == "scripted" and conv.user_turns == 1 and conv.turns[0].metadata["question"]
    assert sample.metadata["simulated_user"]["simulator"] == "scripted"
