"""The `userlm/` provider: bad input errors, the output contract, and a real `inspect_ai.eval` with the user role."""

from __future__ import annotations

from pathlib import Path

import pytest
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.log import read_eval_log
from inspect_ai.model import (
    ChatMessageSystem,
    ChatMessageUser,
    ContentText,
    GenerateConfig,
    ModelOutput,
    ModelUsage,
    get_model,
)
from inspect_ai.solver import Generate, TaskState, solver

from userlm_plugin.turns import USERLM_METADATA_KEY, UserTurn

INTENT = "You are a user chatting with an assistant language model to get a regex for json keys"


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no such model folder"):
        get_model(f"userlm/{tmp_path / 'nope'}", memoize=False)


def test_model_without_chat_template_is_a_clear_error(tiny_userlm_factory) -> None:
    path = tiny_userlm_factory(chat_template=False)
    with pytest.raises(Exception, match="no chat template.*chat_template"):
        get_model(f"userlm/{path}", memoize=False)
    # the fix the error names works
    template = path.parent / "userlm.jinja"
    from tiny_llama import USERLM_CHAT_TEMPLATE

    template.write_text(USERLM_CHAT_TEMPLATE)
    assert get_model(
        f"userlm/{path}", memoize=False, chat_template=str(template)
    ).api.loaded.template_mode == ("native")


def test_unknown_model_arg_lists_valid_ones(tiny_userlm_dir) -> None:
    with pytest.raises(ValueError, match=r"unknown model arg\(s\) \['max_batchsize'\].*max_batch_size"):
        get_model(f"userlm/{tiny_userlm_dir}", memoize=False, max_batchsize=4)
    with pytest.raises(ValueError, match="max_words"):
        get_model(f"userlm/{tiny_userlm_dir}", memoize=False, max_words=0)


async def test_non_string_intent_and_bad_overrides_are_clear_errors(
    tiny_userlm_dir, tiny_userlm_model
) -> None:
    model = tiny_userlm_model(tiny_userlm_dir)
    with pytest.raises(ValueError, match="intent .* to be a str"):
        await model.generate([ChatMessageSystem(content=[ContentText(text=INTENT)])])
    with pytest.raises(ValueError, match="first message, a system message"):
        await model.generate([ChatMessageUser(content="hi")])
    with pytest.raises(ValueError, match="Unknown guardrail setting"):
        await model.generate(
            [ChatMessageSystem(content=INTENT)],
            config=GenerateConfig(extra_body={"userlm": {"max_wordz": 3}}),
        )


async def test_model_args_set_defaults_and_calls_override(tiny_userlm_dir, tiny_userlm_model) -> None:
    model = tiny_userlm_model(tiny_userlm_dir, max_words=40, seed=5, temperature=0.9, max_retries=1)
    out = await model.generate([ChatMessageSystem(content=INTENT)])
    md = out.metadata[USERLM_METADATA_KEY]
    assert md["guardrails"]["max_words"] == 40 and md["guardrails"]["max_retries"] == 1
    assert (md["seed"], md["seed_source"], md["temperature"], md["top_p"]) == (5, "model_arg", 0.9, 0.8)
    out = await model.generate(
        [ChatMessageSystem(content=INTENT)],
        config=GenerateConfig(seed=9, top_p=0.5, extra_body={"userlm": {"max_words": 30}}),
    )
    md = out.metadata[USERLM_METADATA_KEY]
    assert (md["seed"], md["seed_source"], md["top_p"], md["guardrails"]["max_words"]) == (
        9,
        "config",
        0.5,
        30,
    )
    # the metadata is exactly what downstream turns into a UserTurn
    turn = UserTurn(
        text=out.completion or None,
        **{k: md[k] for k in ("end_reason", "rejected", "retries", "guardrails_exhausted")},
    )
    assert turn.retries == len(turn.rejected) + (1 if turn.guardrails_exhausted else 0)


def _assistant_output(text: str) -> ModelOutput:
    out = ModelOutput.from_content(model="mockllm/model", content=text)
    out.usage = ModelUsage(input_tokens=5, output_tokens=5, total_tokens=10)  # no tiktoken download (G4)
    return out


@solver
def two_user_turns():
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        user = get_model(role="user")
        for _ in range(2):
            state = await generate(state)
            view = [m for m in state.messages if m.role in ("user", "assistant")]
            out = await user.generate([ChatMessageSystem(content=state.metadata["intent"]), *view])
            state.messages.append(ChatMessageUser(content=out.completion or "(ended)"))
            state.store.set("userlm", state.store.get("userlm", []) + [out.metadata[USERLM_METADATA_KEY]])
        return state

    return solve


def test_end_to_end_eval_with_userlm_user_role(tiny_userlm_dir, tmp_path: Path) -> None:
    assistant = get_model(
        "mockllm/model", custom_outputs=[_assistant_output(f"answer {i}") for i in range(8)]
    )
    task = Task(
        dataset=[Sample(input="I need a regex", metadata={"intent": INTENT}, id=i) for i in (1, 2)],
        solver=two_user_turns(),
    )
    log = eval(
        task,
        model=assistant,
        model_roles={"user": f"userlm/{tiny_userlm_dir}"},
        model_args={},
        display="none",
        log_dir=str(tmp_path),
        max_tokens=32,
    )[0]
    assert log.status == "success", log.error
    assert log.eval.model_roles["user"].model == f"userlm/{tiny_userlm_dir}"
    log = read_eval_log(log.location, resolve_attachments=True)
    for sample in log.samples:
        assert [m.role for m in sample.messages] == ["user", "assistant", "user", "assistant", "user"]
        assert len(sample.store["userlm"]) == 2
        user_events = [e for e in sample.events if e.event == "model" and e.model.startswith("userlm/")]
        assert len(user_events) == 2
        call = user_events[0].call
        assert call.request["prompt"].startswith("<|start_header_id|>system<|end_header_id|>\n" + INTENT)
        assert call.request["prompt"].endswith("<|start_header_id|>user<|end_header_id|>")
        assert call.response["attempts"] and "decision" in call.response["attempts"][0]
        assert sample.role_usage["user"].input_tokens > 0 and sample.role_usage["user"].output_tokens > 0
