"""The `simulated_user` solver: turn order, every stop reason, what the store/metadata/transcript hold (also when a
limit aborts the loop), bad sample metadata, presets, agents and tools as the assistant, and that the simulated
user's tokens and turns never count against the assistant's limits.

mockllm plays the assistant and the `user` role; every scripted output carries `usage` (otherwise mockllm fetches a tokenizer from the hub; docs/inspect.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from inspect_ai import Task, eval
from inspect_ai.agent import Agent, AgentState, agent
from inspect_ai.dataset import Sample
from inspect_ai.log import EvalLog, EvalSample, resolve_sample_attachments
from inspect_ai.model import (
    ChatMessage,
    ChatMessageSystem,
    GenerateConfig,
    ModelOutput,
    ModelUsage,
    get_model,
)
from inspect_ai.solver import Solver, TaskState, use_tools
from inspect_ai.tool import Tool, tool

from userlm_plugin import END_CONVERSATION, SimulationContext, UserTurn, scripted_user, simulated_user
from userlm_plugin.errors import UsageError
from userlm_plugin.records import Conversation, conversation_from_store
from userlm_plugin.simulators import load_simulator
from userlm_plugin.turns import EndReason, StopReason

INTENT = "You are a user chatting with an assistant language model to plan a trip to Algeria"
TURNS = ["hi, trip to algeria?", "3 days only", "cheap hotels pls", "ok thanks"]


def out(text: str, tokens: int = 5) -> ModelOutput:
    output = ModelOutput.from_content(model="mockllm/model", content=text)
    output.usage = ModelUsage(input_tokens=tokens, output_tokens=tokens, total_tokens=2 * tokens)
    return output


def numbered_assistant(tokens: int = 5) -> Any:
    """mockllm assistant answering "reply N" to the N-th user message."""

    def reply(input: list[ChatMessage], tools: Any, tool_choice: Any, config: GenerateConfig) -> ModelOutput:
        return out(f"reply {sum(m.role == 'user' for m in input)}", tokens)

    return get_model("mockllm/model", custom_outputs=reply, memoize=False)


def run(
    tmp_path: Path,
    solver: Solver | list[Solver],
    metadata: dict[str, Any] | None = None,
    input: str | list[ChatMessage] = "original question (dropped)",
    assistant: Any = None,
    **eval_args: Any,
) -> tuple[EvalSample, Conversation, EvalLog]:
    sample = Sample(id="trip-1", input=input, metadata={"intent": INTENT, "turns": TURNS, **(metadata or {})})
    log = eval(
        Task(dataset=[sample], solver=solver),
        model=assistant or numbered_assistant(),
        display="none",
        log_dir=str(tmp_path / "logs"),
        **eval_args,
    )[0]
    assert log.samples, log.error
    result = resolve_sample_attachments(log.samples[0])  # long event texts are stored as attachments
    return result, conversation_from_store(result.store), log


def test_turn_order_store_metadata_and_transcript(tmp_path: Path) -> None:
    input = [ChatMessageSystem(content="You are a travel agent."), *[]]
    sample, conv, _ = run(tmp_path, simulated_user("scripted", max_turns=10), input=input)

    assert [(m.role, m.text) for m in sample.messages] == [
        ("system", "You are a travel agent."),  # the sample's system prompt is kept
        ("user", TURNS[0]),
        ("assistant", "reply 1"),
        ("user", TURNS[1]),
        ("assistant", "reply 2"),
        ("user", TURNS[2]),
        ("assistant", "reply 3"),
        ("user", TURNS[3]),
        ("assistant", "reply 4"),
    ]
    assert sample.output.completion == "reply 4"
    assert sample.messages[3].metadata == {"simulator": "scripted", "turn": 2, "shard_id": None}

    assert (conv.user_turns, conv.assistant_turns) == (4, 4)
    assert [t.index for t in conv.turns] == [1, 2, 3, 4, 5] and conv.turns[-1].ended
    assert all(t.simulator == "scripted" for t in conv.turns)
    assert conv.stop_reason == StopReason.USER_ENDED and conv.end_reason == EndReason.SCRIPT_EXHAUSTED
    assert conv.intent == INTENT and conv.simulator_config == {
        "simulator": "scripted",
        "turns": None,
        "preset": "scripted",
    }
    summary = sample.metadata["simulated_user"]
    assert summary == {
        "stop_reason": "user_ended",
        "end_reason": "script_exhausted",
        "user_turns": 4,
        "assistant_turns": 4,
        "rejected_drafts": 0,
        "guardrails_exhausted": 0,
        "revealed_shards": [],
        "simulator": "scripted",
    }
    assert next(iter(summary)) == "stop_reason"  # why it stopped leads the summary
    # ... and the summary leads the sample's metadata, also as one line a viewer shows without a click
    assert list(sample.metadata)[:2] == ["simulated_user_stop", "simulated_user"]
    assert sample.metadata["simulated_user_stop"] == (
        "user_ended (script_exhausted) · 4 user turns · 0 rejected drafts · guardrails exhausted on 0 turns"
    )

    spans = [e.name for e in sample.events if e.event == "span_begin" and e.type == "simulated_user"]
    assert spans == [f"user turn {i} (scripted)" for i in range(1, 6)]
    # one readable (Markdown) info event per turn, and one for the stop
    infos = [e.data for e in sample.events if e.event == "info"]
    assert infos[0] == f"**User turn 1** by `scripted`\n\nSent: “{TURNS[0]}”\n\nscript_index: `0`"
    assert infos[-1].startswith("**Conversation stopped**: `user_ended` (`script_exhausted`)")


def test_input_user_message_dropped_when_no_system_prompt(tmp_path: Path) -> None:
    sample, _, _ = run(tmp_path, simulated_user(scripted_user(["only turn"])))
    assert [(m.role, m.text) for m in sample.messages] == [("user", "only turn"), ("assistant", "reply 1")]


def test_max_turns_stops_after_assistant_answers(tmp_path: Path) -> None:
    sample, conv, _ = run(tmp_path, simulated_user("scripted", max_turns=2))
    assert [m.role for m in sample.messages] == ["user", "assistant", "user", "assistant"]
    assert conv.stop_reason == StopReason.MAX_TURNS and conv.end_reason is None
    assert len(conv.turns) == 2  # the cap is checked before asking the simulator: no wasted call


@pytest.mark.parametrize("use_async", [False, True])
def test_stop_when_ends_on_assistant_turn(tmp_path: Path, use_async: bool) -> None:
    def done(state: TaskState) -> bool:
        return state.output.completion == "reply 2"

    async def done_async(state: TaskState) -> bool:
        return done(state)

    _, conv, _ = run(tmp_path, simulated_user("scripted", stop_when=done_async if use_async else done))
    assert conv.stop_reason == StopReason.STOP_WHEN
    assert (conv.user_turns, conv.assistant_turns) == (2, 2)


def test_message_limit_aborts_loop_but_store_keeps_turns(tmp_path: Path) -> None:
    sample, conv, log = run(tmp_path, simulated_user("scripted", max_turns=10), message_limit=5)

    assert log.status == "success" and sample.error is None
    assert sample.limit is not None and sample.limit.type == "message"
    assert len(sample.messages) == 5
    assert conv.stop_reason == StopReason.LIMIT
    assert (conv.user_turns, conv.assistant_turns) == (
        3,
        2,
    )  # turn 3 was recorded; the limit fired on its answer
    assert [t.text for t in conv.turns] == TURNS[:3]
    assert sample.metadata["simulated_user"]["stop_reason"] == "limit"
    stopped = [e.data for e in sample.events if e.event == "info" and "Conversation stopped" in e.data]
    assert stopped and "`limit`, message limit" in stopped[0]


def _heavy_user_model(tokens: int) -> Any:
    def reply(input: list[ChatMessage], tools: Any, tool_choice: Any, config: GenerateConfig) -> ModelOutput:
        n = sum(m.role == "assistant" for m in input)
        return out("ok bye " + END_CONVERSATION if n >= 3 else f"user message {n + 1}", tokens)

    return get_model("mockllm/model", custom_outputs=reply, memoize=False)


def test_simulated_user_tokens_and_turns_do_not_count_against_limits(tmp_path: Path) -> None:
    # user calls cost 1000 tokens each, assistant calls 10; the token limit only fits the assistant's
    sample, conv, log = run(
        tmp_path,
        simulated_user("userlm", max_turns=5),
        model_roles={"user": _heavy_user_model(500)},
        token_limit=100,
        turn_limit=3,
    )
    assert sample.limit is None, sample.limit
    assert conv.stop_reason == StopReason.USER_ENDED and conv.assistant_turns == 3
    assert sample.role_usage["user"].total_tokens == 4 * 1000
    assert sample.model_usage["mockllm/model"].total_tokens >= 4 * 1000 + 3 * 10  # all calls, for cost
    assert log.stats.role_usage["user"].total_tokens == 4000


def test_assistant_token_limit_still_applies(tmp_path: Path) -> None:
    sample, conv, _ = run(
        tmp_path,
        simulated_user("scripted"),
        assistant=numbered_assistant(tokens=20),
        token_limit=100,
    )
    assert sample.limit is not None and sample.limit.type == "token"
    assert conv.stop_reason == StopReason.LIMIT and conv.assistant_turns == 2


def test_missing_intent_errors_naming_sample_and_field(tmp_path: Path) -> None:
    sample = Sample(id="no-intent-7", input="x", metadata={})
    log = eval(
        Task(dataset=[sample], solver=simulated_user("userlm")),
        model=numbered_assistant(),
        model_roles={"user": numbered_assistant()},
        display="none",
        log_dir=str(tmp_path / "logs"),
    )[0]
    error = log.samples[0].error if log.samples else None
    assert error is not None
    assert "Sample 'no-intent-7' has no metadata 'intent'" in error.traceback


def test_intent_argument_overrides_metadata(tmp_path: Path) -> None:
    seen: list[str] = []

    class Echo:
        name = "echo"

        async def next_turn(self, ctx: SimulationContext) -> UserTurn:
            seen.append(ctx.intent)
            return UserTurn.end(EndReason.END_TOKEN)

    _, conv, _ = run(tmp_path, simulated_user(Echo(), intent="custom intent"))
    assert seen == ["custom intent"] and conv.intent == "custom intent"
    assert conv.simulator_config == {"simulator": "echo"} and conv.user_turns == 0


@pytest.mark.parametrize(
    ("shards", "expected"),
    [
        ("not a list", "metadata 'shards' must be a list"),
        ([{"shard_id": 1, "shard": "a"}, {"id": 2}], "metadata 'shards[1]'"),
        ([{"shard_id": 1, "shard": "a"}, {"shard_id": 1, "shard": "b"}], "duplicate shard_id"),
    ],
)
def test_bad_shards_metadata_is_a_clear_error(tmp_path: Path, shards: Any, expected: str) -> None:
    sample, _, _ = run(tmp_path, simulated_user("scripted"), metadata={"shards": shards})
    assert sample.error is not None
    assert expected in sample.error.traceback and "Sample 'trip-1'" in sample.error.traceback


def test_simulator_exception_records_stop_reason(tmp_path: Path) -> None:
    class Broken:
        name = "broken"

        async def next_turn(self, ctx: SimulationContext) -> UserTurn:
            if ctx.turn == 2:
                raise RuntimeError("simulator backend down")
            return UserTurn(text="first")

    sample, conv, _ = run(tmp_path, simulated_user(Broken()))
    assert sample.error is not None and "simulator backend down" in sample.error.message
    assert conv.stop_reason == StopReason.SIMULATOR_ERROR and conv.user_turns == 1


def test_agent_as_assistant(tmp_path: Path) -> None:
    @agent
    def echo_agent() -> Agent:
        async def execute(state: AgentState) -> AgentState:
            output = out(f"agent saw {len(state.messages)} messages")
            state.messages.append(output.message)
            state.output = output
            return state

        return execute

    sample, conv, _ = run(tmp_path, simulated_user("scripted", max_turns=2, assistant=echo_agent()))
    assert [m.text for m in sample.messages if m.role == "assistant"] == [
        "agent saw 1 messages",
        "agent saw 3 messages",
    ]
    assert sample.output.completion == "agent saw 3 messages" and conv.assistant_turns == 2
    assert any(e.event == "span_begin" and e.name == "echo_agent" for e in sample.events)


@tool
def lookup_weather() -> Tool:
    async def execute(city: str) -> str:
        """Look up the weather.

        Args:
            city: City name.
        """
        return f"sunny in {city}"

    return execute


def test_generate_runs_tool_loop_and_simulator_sees_only_user_view(tmp_path: Path) -> None:
    def assistant_reply(
        input: list[ChatMessage], tools: Any, tool_choice: Any, config: GenerateConfig
    ) -> ModelOutput:
        if input[-1].role == "user" and len([m for m in input if m.role == "user"]) == 1:
            call = ModelOutput.for_tool_call("mockllm/model", "lookup_weather", {"city": "Algiers"})
            call.usage = ModelUsage(input_tokens=5, output_tokens=5, total_tokens=10)
            call.message.content = ""  # a bare tool call: nothing a human would see
            return call
        return out("it is sunny in Algiers")

    seen: list[list[ChatMessage]] = []

    class Watcher:
        name = "watcher"

        async def next_turn(self, ctx: SimulationContext) -> UserTurn:
            seen.append(ctx.user_view())
            return UserTurn(text="weather?") if ctx.turn == 1 else UserTurn.end(EndReason.END_TOKEN)

    sample, conv, _ = run(
        tmp_path,
        [use_tools(lookup_weather()), simulated_user(Watcher())],
        assistant=get_model("mockllm/model", custom_outputs=assistant_reply, memoize=False),
    )
    assert [m.role for m in sample.messages] == ["user", "assistant", "tool", "assistant"]
    assert conv.assistant_turns == 1
    assert [(m.role, m.text) for m in seen[1]] == [
        ("user", "weather?"),
        ("assistant", "it is sunny in Algiers"),
    ]


def test_preset_errors_surface_when_solver_is_built(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"Unknown simulator 'userlmm'.*userlm, prompted, prompted_flat"):
        simulated_user("userlmm")
    with pytest.raises(ValueError, match="max_turns must be at least 1"):
        simulated_user("scripted", max_turns=0)
    # task-build-time mistakes are UsageErrors: Inspect prints them as one line, before any model loads
    with pytest.raises(UsageError, match=r"Unknown simulator 'userlmm'.* Did you mean 'userlm'\?"):
        simulated_user("userlmm")


def test_yaml_preset_path(tmp_path: Path) -> None:
    preset = tmp_path / "sim.yaml"
    preset.write_text("simulator: prompted\nstyle: flattened\nrole: user\ntemperature: 1.0\nmax_retries: 1\n")
    sim = load_simulator(str(preset))
    assert sim.name == "prompted_flat"
    user = get_model(
        "mockllm/model", custom_outputs=[out("trip ideas algeria?"), out(END_CONVERSATION)], memoize=False
    )
    _, conv, _ = run(tmp_path, simulated_user(str(preset)), model_roles={"user": user})
    assert conv.simulator_config["preset"] == str(preset)
    assert conv.simulator_config["style"] == "flattened" and conv.simulator_config["max_retries"] == 1
    assert conv.end_reason == EndReason.END_TOKEN and conv.user_turns == 1


def test_solver_is_registered_for_cli_use(tmp_path: Path) -> None:
    from inspect_ai._util.registry import registry_create, registry_info

    import userlm_plugin._registry  # noqa: F401  (what Inspect's entry point imports)

    created = registry_create("solver", registry_info(simulated_user("scripted")).name, simulator="scripted")
    sample, conv, _ = run(tmp_path, created)
    assert registry_info(created).name.endswith("simulated_user")
    assert conv.user_turns == 4 and sample.messages[0].text == TURNS[0]


def test_time_limit_cancellation_is_recorded_as_limit(tmp_path: Path) -> None:
    async def slow(
        input: list[ChatMessage], tools: Any, tool_choice: Any, config: GenerateConfig
    ) -> ModelOutput:
        await anyio.sleep(0.4)
        return out("ok")

    sample, conv, _ = run(
        tmp_path,
        simulated_user("scripted", max_turns=10),
        metadata={"turns": ["again"] * 10},
        assistant=get_model("mockllm/model", custom_outputs=slow, memoize=False),
        time_limit=1,
    )
    assert sample.limit is not None and sample.limit.type == "time"
    assert conv.stop_reason == StopReason.LIMIT and 1 <= conv.user_turns < 10
    stopped = [e.data for e in sample.events if e.event == "info" and "Conversation stopped" in e.data]
    assert stopped and "`limit`, time limit" in stopped[0]


def test_missing_user_role_is_announced_and_the_call_is_labelled_user(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No `--model-role user=...`: the prompted simulator falls back to the model under test, says so once in
    the log (warning) and in the sample's transcript, and its calls still carry the `user` role (the viewer
    titles them "Model Call (user)" and `role_usage` counts them under `user`)."""
    import userlm_plugin.simulators._common as common

    common._announced_roles.discard("user")

    def reply(input: list[ChatMessage], tools: Any, tool_choice: Any, config: GenerateConfig) -> ModelOutput:
        if (
            input[0].role == "system"
        ):  # the simulator's role-flipped chat (the assistant gets no system prompt)
            return out(END_CONVERSATION if any(m.role == "assistant" for m in input) else "trip to algeria?")
        return out("a plan for three days")

    model = get_model("mockllm/model", custom_outputs=reply, memoize=False)
    with caplog.at_level("WARNING"):
        sample, conv, _ = run(tmp_path, simulated_user("prompted", max_turns=3), assistant=model)
    announced = "No `user` model role given: using mockllm/model (the model under test)"
    assert any(announced in r.getMessage() for r in caplog.records)
    infos = [e.data for e in sample.events if e.event == "info" and isinstance(e.data, str)]
    assert sum(announced in i for i in infos) == 1  # once per sample, not once per turn
    user_calls = [e for e in sample.events if e.event == "model" and e.role == "user"]
    assert len(user_calls) == 2 and conv.user_turns == 1  # turn 1, then the end
    assert sample.role_usage["user"].total_tokens == 2 * 10


def test_each_turn_gets_a_fresh_context(tmp_path: Path) -> None:
    seen: list[SimulationContext] = []

    class Keeper:
        name = "keeper"

        async def next_turn(self, ctx: SimulationContext) -> UserTurn:
            seen.append(ctx)
            return UserTurn(text=f"turn {ctx.turn}") if ctx.turn < 3 else UserTurn.end(EndReason.END_TOKEN)

    run(tmp_path, simulated_user(Keeper()))
    assert [c.turn for c in seen] == [1, 2, 3]
    assert len({id(c) for c in seen}) == 3 and [len(c.messages) for c in seen] == [0, 2, 4]
    with pytest.raises(AttributeError):  # frozen: a simulator cannot change what the next turn sees
        seen[0].turn = 5  # type: ignore[misc]


def test_every_turn_moves_the_display_counter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import userlm_plugin.recorder as recorder

    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(recorder, "display_counter", lambda caption, value: shown.append((caption, value)))
    run(tmp_path, simulated_user("scripted", max_turns=3))
    assert [c for c, _ in shown] == ["simulated user turns"] * 3
    values = [int(v) for _, v in shown]
    assert values == list(range(values[0], values[0] + 3))  # a running count, one step per turn
