"""replay_user: the user turns frozen from one run are replayed, exactly and per sample/epoch, against
another assistant."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.log import EvalLog
from inspect_ai.model import ChatMessage, ModelOutput, ModelUsage, get_model
from inspect_ai.scorer import match
from inspect_ai.solver import generate

from userlm_plugin import END_CONVERSATION, EndReason, StopReason, replay_user, with_simulated_user
from userlm_plugin.records import conversation_from_store
from userlm_plugin.simulators import SimulationContext, load_simulator
from userlm_plugin.simulators.replay import ReplayUser


def out(text: str) -> ModelOutput:
    output = ModelOutput.from_content("mockllm/model", text)
    output.usage = ModelUsage(input_tokens=10, output_tokens=5, total_tokens=15)
    return output


def task() -> Task:
    return Task(
        dataset=[
            Sample(id="short", input="Name a prime number below 5.", target="3"),
            Sample(id=7, input="What is the capital of France? Give one word.", target="Paris"),
        ],
        solver=generate(),
        scorer=match(),
        epochs=2,
        name="quiz",
    )


def live_user() -> Any:
    """A live simulated user whose every turn is unique (a global counter), so epochs differ; the 'short'
    sample ends after one turn, the other after two."""
    counter = itertools.count(1)

    def respond(messages: list[ChatMessage], *_: Any) -> ModelOutput:
        asked = sum(1 for m in messages if m.role == "assistant")
        limit = 1 if "prime" in messages[0].text else 2
        return out(
            END_CONVERSATION if asked >= limit else f"user message #{next(counter)} (turn {asked + 1})"
        )

    return respond


def run(simulator: Any, answer: str, log_dir: Path) -> EvalLog:
    user = get_model("mockllm/user", custom_outputs=live_user())
    log = eval(
        with_simulated_user(task(), simulator=simulator, max_turns=5),
        model=get_model("mockllm/assistant", custom_outputs=lambda *_: out(answer)),
        model_roles={"user": user},
        log_dir=str(log_dir),
        display="none",
    )[0]
    assert log.status == "success", log.error
    return log


def user_turns(log: EvalLog) -> dict[tuple[str, int], list[str]]:
    return {(str(s.id), s.epoch): [m.text for m in s.messages if m.role == "user"] for s in log.samples}


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> EvalLog:
    return run("userlm", "3", tmp_path_factory.mktemp("original"))


def test_replay_reproduces_user_turns_exactly_per_sample_and_epoch(original: EvalLog, tmp_path: Path) -> None:
    source = user_turns(original)
    assert len(source) == 4 and len({tuple(v) for v in source.values()}) == 4  # every conversation differs
    assert [len(source[("short", e)]) for e in (1, 2)] == [1, 1] and len(source[("7", 1)]) == 2

    replayed = run(replay_user(log=original.location), "Paris", tmp_path)
    assert user_turns(replayed) == source
    for sample in replayed.samples:
        conversation = conversation_from_store(dict(sample.store))
        assert conversation.simulator == "replay"
        assert conversation.simulator_config["source"]["simulator"] == "userlm"
        assert conversation.simulator_config["log"] == original.location
        assert conversation.stop_reason == StopReason.USER_ENDED
        assert conversation.end_reason == EndReason.SCRIPT_EXHAUSTED
        end = conversation.turns[-1]
        assert end.metadata["source_end_reason"] == "end_token"
        assert all(t.metadata["replayed_from"] == original.location for t in conversation.turns)
        # the new assistant's answers are in the transcript (a different assistant, same user)
        assert {m.text for m in sample.messages if m.role == "assistant"} == {"Paris"}


def test_replay_preset_by_name(original: EvalLog) -> None:
    sim = load_simulator({"simulator": "replay", "log": original.location})
    assert isinstance(sim, ReplayUser) and len(sim.turns) == 4
    with pytest.raises(ValueError, match="log"):
        load_simulator("replay")  # the preset needs the log to replay


def _ctx(sample_id: Any, epoch: int, turn: int) -> SimulationContext:
    return SimulationContext(intent="", messages=[], turn=turn, sample_id=sample_id, epoch=epoch)


async def test_missing_samples_and_epoch_matching(original: EvalLog) -> None:
    source = user_turns(original)
    strict = replay_user(original.location)
    with pytest.raises(KeyError, match="sample 'nope' epoch 1 is not in"):
        await strict.next_turn(_ctx("nope", 1, 1))
    ended = await replay_user(original.location, on_missing="end").next_turn(_ctx("nope", 1, 1))
    assert ended.end_reason == EndReason.SCRIPT_EXHAUSTED and ended.metadata["replay_missing"]

    assert (await strict.next_turn(_ctx(7, 2, 2))).text == source[("7", 2)][1]  # int id, epoch 2
    first_epoch = replay_user(original.location, match_epoch=False)
    assert (await first_epoch.next_turn(_ctx(7, 2, 1))).text == source[("7", 1)][0]
    assert (await strict.next_turn(_ctx(7, 1, 3))).ended


def test_a_log_without_conversations_is_refused(tmp_path: Path) -> None:
    log = eval(
        task(),
        model=get_model("mockllm/assistant", custom_outputs=lambda *_: out("3")),
        log_dir=str(tmp_path),
        display="none",
    )[0]
    with pytest.raises(ValueError, match="no simulated conversations"):
        replay_user(log.location)
    with pytest.raises(FileNotFoundError, match="no such log"):
        replay_user(tmp_path / "missing.eval")
