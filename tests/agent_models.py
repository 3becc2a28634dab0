"""Scripted agents for the agent tests: mockllm models whose every output is decided by a Python function of what
the model was shown, so an agent's behaviour can depend on what its (simulated) user said.

Every output carries `usage` (otherwise mockllm fetches a tokenizer from the hub; docs/inspect.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from inspect_ai.model import ChatMessage, GenerateConfig, Model, ModelOutput, ModelUsage, get_model


def usage(output: ModelOutput) -> ModelOutput:
    output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
    return output


def text(content: str) -> ModelOutput:
    return usage(ModelOutput.from_content("mockllm/model", content))


def call(tool: str, **arguments: Any) -> ModelOutput:
    return usage(ModelOutput.for_tool_call("mockllm/model", tool, arguments, content=""))


class ScriptedModel:
    """A mockllm `custom_outputs` callable: `decide(messages, n)` returns the n-th output (a ModelOutput or a
    text); every call's input is kept in `inputs`."""

    def __init__(
        self, decide: Callable[[list[ChatMessage], int], ModelOutput | str] | list[ModelOutput | str]
    ):
        self.decide = decide
        self.inputs: list[list[ChatMessage]] = []

    def __call__(
        self, input: list[ChatMessage], tools: Any, tool_choice: Any, config: GenerateConfig
    ) -> ModelOutput:  # noqa: ARG002
        self.inputs.append(list(input))
        n = len(self.inputs)
        if callable(self.decide):
            result = self.decide(list(input), n)
        else:
            result = self.decide[n - 1] if n <= len(self.decide) else "(no more outputs)"
        return text(result) if isinstance(result, str) else result

    def model(self) -> Model:
        return get_model("mockllm/model", custom_outputs=self, memoize=False)


def last_user_text(messages: list[ChatMessage]) -> str:
    return next((m.text for m in reversed(messages) if m.role == "user"), "")


def last_tool_text(messages: list[ChatMessage]) -> str | None:
    last = messages[-1] if messages else None
    return last.text if last is not None and last.role == "tool" else None


def number_in(text: str) -> str | None:
    found = re.search(r"\b\d{3,}\b", text)
    return found.group(0) if found else None
