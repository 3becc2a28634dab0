"""`simulated_continue()`: react's `on_continue` hook answered by the simulated user (docs/agents.md#talking-back-to-an-agent).

The agents here are mockllm models driven by what they were shown: they ask their user for an account number and
can only submit it once the user has said it. So a task that needs one piece of information only the user has is
completed only when the simulated user talks back, and fails without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent_models import ScriptedModel, call, last_user_text, number_in
from inspect_ai import Task, eval
from inspect_ai.agent import react
from inspect_ai.dataset import Sample
from inspect_ai.log import EvalSample
from inspect_ai.model import ChatMessage
from inspect_ai.scorer import includes

from userlm_plugin import simulated_user
from userlm_plugin.agents import simulated_ask_user, simulated_continue
from userlm_plugin.records import Conversation, conversation_from_store
from userlm_plugin.turns import EndReason, StopReason

INTENT = "You are a user chatting with an assistant language model to get your locked bank account unlocked"
SECRET = "7341"
NAME = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def account_agent(ask_name_first: bool = False) -> ScriptedModel:
    """Submits the account number once the user has said one; until then asks for it (optionally first asking
    the user's name through ask_user)."""

    def decide(messages: list[ChatMessage], n: int) -> Any:
        if ask_name_first and not any(m.role == "tool" for m in messages):
            return call("ask_user", message="What is your name?", schema=NAME)
        number = number_in(last_user_text(messages))
        if number is not None:
            return call("submit", answer=number)
        return "To unlock it I need your account number. What is it?"

    return ScriptedModel(decide)


def run(
    tmp_path: Path, solver: Any, agent: ScriptedModel, turns: list[str], **eval_args: Any
) -> tuple[EvalSample, Conversation]:
    task = Task(
        dataset=[
            Sample(
                id="acct",
                input="Please unlock my account.",
                target=SECRET,
                metadata={"intent": INTENT, "turns": turns},
            )
        ],
        solver=solver,
        scorer=includes(),
        **eval_args,
    )
    [log] = eval(task, model=agent.model(), display="none", log_dir=str(tmp_path))
    assert log.status == "success", log.error
    sample = log.samples[0]
    return sample, conversation_from_store(sample.store)


def correct(sample: EvalSample) -> bool:
    return sample.scores["includes"].value == "C"


def test_react_completes_only_when_the_simulated_user_talks_back(tmp_path: Path) -> None:
    agent = account_agent()
    solver = react(tools=[], on_continue=simulated_continue("scripted"))
    sample, conv = run(tmp_path, solver, agent, turns=[f"Sure, it's {SECRET}."])

    assert correct(sample) and SECRET not in "\n".join(
        m.text for m in agent.inputs[0]
    )  # only the user had it
    user = [m for m in sample.messages if m.role == "user"]
    assert [m.text for m in user] == ["Please unlock my account.", f"Sure, it's {SECRET}."]
    assert user[1].metadata == {"simulator": "scripted", "turn": 1, "shard_id": None}
    assert conv.simulator == "scripted" and conv.user_turns == 1 and conv.assistant_turns == 1
    assert any(e.event == "span_begin" and e.name == "user turn 1 (scripted)" for e in sample.events)

    # the control: react's own on_continue plays back a fixed string, so the agent never learns the number
    control, _ = run(tmp_path, react(tools=[]), account_agent(), turns=[], message_limit=8)
    assert not correct(control) and control.limit is not None and control.limit.type == "message"


def test_inside_simulated_user_one_user_writes_every_turn(tmp_path: Path) -> None:
    """The solver's user writes turn 1, answers the ask_user question (turn 2) and the agent's question (turn 3);
    the agent's return (it submitted) ends the conversation."""
    agent = account_agent(ask_name_first=True)
    inner = react(tools=[simulated_ask_user()], on_continue=simulated_continue())
    turns = ["Please unlock my account.", "Ana Haddad", f"It's {SECRET}."]
    sample, conv = run(tmp_path, simulated_user("scripted", max_turns=5, assistant=inner), agent, turns)

    assert correct(sample)
    assert (
        conv.stop_reason == StopReason.AGENT_FINISHED and conv.user_turns == 3 and conv.assistant_turns == 2
    )
    assert [t.index for t in conv.turns] == [1, 2, 3]
    assert conv.turns[1].metadata["question"] == "What is your name?"
    assert conv.turns[1].metadata["ask_user"]["content"] == {"name": "Ana Haddad"}
    assert [m.role for m in sample.messages].count("system") == 1
    tool_results = [m.text for m in sample.messages if m.role == "tool"]
    assert '"name": "Ana Haddad"' in tool_results[0]
    spans = [e.name for e in sample.events if e.event == "span_begin" and e.name.startswith("user turn")]
    assert spans == ["user turn 1 (scripted)", "user turn 2 (scripted)", "user turn 3 (scripted)"]
    assert sample.metadata["simulated_user_stop"].startswith("agent_finished · 3 user turns")


def test_the_user_may_end_the_conversation(tmp_path: Path) -> None:
    inner = react(tools=[], on_continue=simulated_continue())
    sample, conv = run(
        tmp_path,
        simulated_user("scripted", max_turns=5, assistant=inner),
        account_agent(),
        ["Please unlock my account."],
    )

    assert not correct(sample)
    assert conv.stop_reason == StopReason.USER_ENDED and conv.end_reason == EndReason.SCRIPT_EXHAUSTED
    assert conv.user_turns == 1 and conv.assistant_turns == 1  # the agent's question, counted once
    assert sample.messages[-1].role == "assistant"


def test_the_turn_cap_ends_the_conversation(tmp_path: Path) -> None:
    inner = react(tools=[], on_continue=simulated_continue())
    turns = ["Please unlock my account.", f"It's {SECRET}."]
    sample, conv = run(
        tmp_path, simulated_user("scripted", max_turns=1, assistant=inner), account_agent(), turns
    )

    assert not correct(sample) and conv.stop_reason == StopReason.MAX_TURNS and conv.user_turns == 1
    # standalone, the handler's own cap
    alone, conv = run(
        tmp_path,
        react(tools=[], on_continue=simulated_continue("scripted", max_turns=1)),
        account_agent(),
        ["no idea", "still no"],
    )
    assert conv.stop_reason == StopReason.MAX_TURNS and conv.user_turns == 1 and conv.assistant_turns == 2


def test_one_sample_has_one_simulated_user(tmp_path: Path) -> None:
    inner = react(tools=[simulated_ask_user("prompted")], on_continue=simulated_continue())
    task = Task(
        dataset=[
            Sample(id="acct", input="-", metadata={"intent": INTENT, "turns": ["Please unlock my account."]})
        ],
        solver=simulated_user("scripted", max_turns=3, assistant=inner),
    )
    [log] = eval(
        task, model=account_agent(ask_name_first=True).model(), display="none", log_dir=str(tmp_path)
    )
    error = log.samples[0].error
    assert error is not None and "this sample's simulated user is 'scripted'" in error.message


def test_the_user_remembers_what_it_answered_through_ask_user(tmp_path: Path) -> None:
    """A later turn's simulator input shows the earlier ask_user exchange as chat: the question as the assistant's
    text, the answer as the user's (tool calls are otherwise hidden from the user)."""
    user = ScriptedModel(["Please unlock my account.", "Ana Haddad", f"It's {SECRET}."])
    inner = react(tools=[simulated_ask_user()], on_continue=simulated_continue())
    task = Task(
        dataset=[Sample(id="acct", input="-", target=SECRET, metadata={"intent": INTENT})],
        solver=simulated_user("prompted", max_turns=5, assistant=inner),
        scorer=includes(),
    )
    [log] = eval(
        task,
        model=account_agent(ask_name_first=True).model(),
        model_roles={"user": user.model()},
        display="none",
        log_dir=str(tmp_path),
    )
    assert log.samples[0].scores["includes"].value == "C"
    third = [(m.role, m.text) for m in user.inputs[2]][
        2:
    ]  # after the system prompt and the role-flip kickoff
    assert third == [  # role-flipped: the assistant's words are "user" messages here
        ("assistant", "Please unlock my account."),
        ("user", "What is your name?"),
        ("assistant", "Ana Haddad"),
        ("user", "To unlock it I need your account number. What is it?"),
    ]


def test_finished_samples_leave_no_session_behind(tmp_path: Path) -> None:
    import gc

    from userlm_plugin.sessions import open_sessions

    inner = react(tools=[simulated_ask_user()], on_continue=simulated_continue())
    for _ in range(2):
        run(
            tmp_path,
            simulated_user("scripted", max_turns=5, assistant=inner),
            account_agent(True),
            ["a", "b", "7341"],
        )
        run(tmp_path, react(tools=[], on_continue=simulated_continue("scripted")), account_agent(), ["7341"])
    gc.collect()
    assert open_sessions() == 0
