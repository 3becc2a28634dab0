"""`simulated_user` with the real `userlm/` provider on a tiny offline UserLM-flavoured Llama (tests/tiny_llama.py):
the runtime's guardrail decisions reach the turn records, overrides travel through `extra_body`, per-turn seeds
make runs reproducible, and the User LM's tokens stay out of the assistant's limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.model import ChatMessage, GenerateConfig, ModelOutput, ModelUsage, get_model

from userlm_plugin import END_CONVERSATION, simulated_user, userlm_user
from userlm_plugin.records import Conversation, conversation_from_store
from userlm_plugin.turns import USERLM_METADATA_KEY, EndReason, StopReason

INTENT = "You are a user chatting with an assistant language model to get a regex that matches json keys"


def assistant() -> Any:
    def reply(input: list[ChatMessage], tools: Any, tool_choice: Any, config: GenerateConfig) -> ModelOutput:
        output = ModelOutput.from_content(model="mockllm/model", content='Here is a regex: "(\\w+)":')
        output.usage = ModelUsage(input_tokens=5, output_tokens=5, total_tokens=10)
        return output

    return get_model("mockllm/model", custom_outputs=reply, memoize=False)


def run(
    tmp_path: Path, user: Any, simulator: Any, max_turns: int, **eval_args: Any
) -> tuple[Any, Conversation]:
    task = Task(
        dataset=[Sample(id="regex", input="-", metadata={"intent": INTENT})],
        solver=simulated_user(simulator, max_turns=max_turns),
    )
    log = eval(
        task,
        model=assistant(),
        model_roles={"user": user},
        display="none",
        log_dir=str(tmp_path),
        **eval_args,
    )
    sample = log[0].samples[0]
    assert sample.error is None, sample.error
    return sample, conversation_from_store(sample.store)


def test_tiny_userlm_conversation_records_guardrails(
    tmp_path: Path, tiny_userlm_dir: Path, tiny_userlm_model
) -> None:
    user = tiny_userlm_model(tiny_userlm_dir)
    sim = {"simulator": "userlm", "max_tokens": 24}
    sample, conv = run(tmp_path, user, sim, max_turns=3, seed=11, token_limit=40)

    # the end token is banned by default (paper's extrinsic runs), so the cap ends it
    assert conv.stop_reason == StopReason.MAX_TURNS and conv.user_turns == 3 and sample.limit is None
    assert [m.role for m in sample.messages] == ["user", "assistant"] * 3
    model_events = [e for e in sample.events if e.event == "model" and e.role == "user"]
    assert len(model_events) == 3
    for record, event, message in zip(conv.turns, model_events, sample.messages[::2], strict=True):
        provider = event.output.metadata[USERLM_METADATA_KEY]
        assert record.text == message.text == event.output.completion.strip()
        assert record.retries == provider["retries"] and len(record.rejected) == len(provider["rejected"])
        assert record.guardrails_exhausted == provider["guardrails_exhausted"]
        assert record.metadata["seed_source"] == "config" and END_CONVERSATION not in (record.text or "")
        assert event.config.temperature == 1.0 and event.config.top_p == 0.8
    assert (
        sample.role_usage["user"].total_tokens > 40
    )  # more than the token limit, which only the assistant meets

    _, again = run(tmp_path, user, sim, max_turns=3, seed=11)
    assert [t.text for t in again.turns] == [t.text for t in conv.turns]  # derived seeds: reproducible


def test_tiny_userlm_guardrail_override_lets_user_end(
    tmp_path: Path, tiny_userlm_factory, tiny_userlm_model
) -> None:
    wants_to_end = tiny_userlm_model(tiny_userlm_factory(token_bias={END_CONVERSATION: 5.0}))
    sim = userlm_user(guardrails={"min_turns_before_end": 1, "length_filter": False, "max_retries": 1})
    sample, conv = run(tmp_path, wants_to_end, sim, max_turns=8, seed=3)

    assert conv.stop_reason == StopReason.USER_ENDED and conv.end_reason == EndReason.END_TOKEN
    assert conv.turns[0].text  # turn 1 may not end (no user turn in the input yet)
    assert conv.turns[-1].ended and conv.user_turns == len(conv.turns) - 1 >= 1
    assert sample.messages[-1].role == "assistant"
    first_event = next(e for e in sample.events if e.event == "model" and e.role == "user")
    assert first_event.config.extra_body == {
        "userlm": {"min_turns_before_end": 1, "length_filter": False, "max_retries": 1}
    }
    assert all(t.retries <= 1 for t in conv.turns)
