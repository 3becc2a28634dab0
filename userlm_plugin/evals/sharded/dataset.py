"""Inspect samples for the sharded evals: one sample per instruction, the same metadata in every setting.

Settings (paper.md §3.4, LiC §3.3 and Appendix M; paper §4 for `userlm`):
- `full`: one user turn, the fully specified instruction.
- `concat`: one user turn, all shards as a `- ` bullet list (checks sharding lost nothing).
- `sharded`: LiC's user LLM reveals one shard per turn (`sharded_user`).
- `scripted`: the shards verbatim, in shard_id order, one per turn (no LLM; CI and controls).
- `userlm`: the User LM, with the fully specified instruction inside its intent.
- `snowball`: scripted; each turn restates every earlier shard, then adds the next (LiC SNOWBALL, with
  verbatim shards instead of LLM rephrasing).
- `recap`: scripted shards, then one last turn restating the whole task (LiC RECAP, scripted).

Metadata read by the solver: `intent` (every setting, for the record), `shards` (shard settings), `turns`
(the scripted-turn settings full/concat/snowball/recap). Read by the scorers: `func_name` + `code_tests`
(code) or `gold` (math).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from inspect_ai.dataset import Sample

from ...scoring.answers.code import prompt_context
from ...scoring.answers.math import gold_answer
from .humaneval import HumanEvalProblem
from .lic import CodeRecord, MathRecord

Setting = Literal["full", "concat", "sharded", "userlm", "scripted", "snowball", "recap"]
SETTINGS: tuple[str, ...] = get_args(Setting)
SHARD_SETTINGS = ("concat", "sharded", "scripted", "snowball", "recap")
"""Settings that need shards (the `humaneval` dataset has none)."""

CODE_INTENT = "You are a user chatting with an assistant language model to get a Python function written that does the following.\n\n{instruction}"
MATH_INTENT = "You are a user chatting with an assistant language model to get help solving this math problem.\n\n{instruction}"
"""UserLM intents (paper §2.2/§2.8): every training intent starts "You are a user chatting with an assistant
language model to ..."; the model card's remedy for invented requirements is a fully specified intent, so
the full problem follows the frame. The paper's exact intent strings are unknown (paper.md §7 q2)."""


def check_setting(setting: str) -> Setting:
    if setting not in SETTINGS:
        raise ValueError(f"-T setting={setting!r} is not a setting; use one of {', '.join(SETTINGS)}")
    return setting  # type: ignore[return-value]


def concat_text(shards: list[str]) -> str:
    """LiC CONCAT: every shard on its own `- ` line."""
    return "\n".join(f"- {s}" for s in shards)


def snowball_turns(shards: list[str]) -> list[str]:
    """LiC SNOWBALL: turn n restates shards 1..n-1 and then adds shard n."""
    turns = [shards[0]]
    for n in range(1, len(shards)):
        turns.append("Just to reiterate:\n" + concat_text(shards[:n]) + f"\n\nAlso, {shards[n]}")
    return turns


def recap_turns(shards: list[str]) -> list[str]:
    """LiC RECAP: the shards one per turn, then one turn restating the entire task."""
    return [
        *shards,
        "Just to recap, the entire task is:\n"
        + concat_text(shards)
        + "\n\nNow complete it, taking everything into account.",
    ]


def code_instruction(record: CodeRecord | HumanEvalProblem) -> str:
    """The fully specified coding instruction (LiC FULL)."""
    if isinstance(record, HumanEvalProblem) or record.source == "humaneval":
        prompt = record.prompt.strip("\n")
        return f"Complete the following Python function:\n```python\n{prompt}\n```"
    text = (record.question_content or "").strip()
    if (record.starter_code or "").strip():
        text += f"\n\nUse this starter code:\n```python\n{record.starter_code.strip()}\n```"
    return text


def _setting_metadata(setting: Setting, full_text: str, shard_texts: list[str], shards: list[dict]) -> dict:
    if setting == "full" or setting == "userlm":
        meta: dict[str, Any] = {"turns": [full_text]} if setting == "full" else {}
    elif setting == "concat":
        meta = {"turns": [concat_text(shard_texts)]}
    elif setting == "snowball":
        meta = {"turns": snowball_turns(shard_texts)}
    elif setting == "recap":
        meta = {"turns": recap_turns(shard_texts)}
    else:  # sharded, scripted
        meta = {}
    if shards:
        meta["shards"] = shards
    return meta


def _shards(record: CodeRecord | MathRecord) -> tuple[list[str], list[dict]]:
    return [s.shard for s in record.shards], [s.model_dump() for s in record.shards]


def code_sample(record: CodeRecord | HumanEvalProblem, setting: Setting) -> Sample:
    """One coding instruction as a sample for `setting`."""
    full = code_instruction(record)
    if isinstance(record, HumanEvalProblem):
        if setting in SHARD_SETTINGS:
            raise ValueError(
                f"-T setting={setting} needs sharded instructions, and the humaneval dataset has none: "
                "use -T dataset=lic (Lost in Conversation), or -T setting=full|userlm with humaneval."
            )
        texts, shards = [], []
        tests = {
            "mode": "check",
            "prefix": prompt_context(record.prompt, record.entry_point),
            "check": record.test,
        }
        func_name, source, task_id = record.entry_point, "humaneval", record.task_id
    else:
        texts, shards = _shards(record)
        prefix = prompt_context(record.prompt, record.func_name) if record.prompt else ""
        tests = {
            "mode": "functional",
            "prefix": prefix,
            "public": [t.model_dump(include={"input", "output"}) for t in record.public_test_cases],
            "private": record.private_test_cases,
        }
        func_name, source, task_id = record.func_name, record.source, record.task_id
    metadata = {
        "task": "code",
        "task_id": task_id,
        "source": source,
        "setting": setting,
        "instruction": full,
        "intent": CODE_INTENT.format(instruction=full),
        "func_name": func_name,
        "code_tests": tests,
        **_setting_metadata(setting, full, texts, shards),
    }
    return Sample(id=task_id, input=full, target=func_name, metadata=metadata)


def math_sample(record: MathRecord, setting: Setting) -> Sample:
    """One GSM8K instruction as a sample for `setting` (FULL wraps the question as `Q: ...\\nA:`, as LiC)."""
    texts, shards = _shards(record)
    full = f"Q: {record.question.strip()}\nA:"
    gold = gold_answer(record.answer)
    metadata = {
        "task": "math",
        "task_id": record.task_id,
        "source": "gsm8k",
        "setting": setting,
        "instruction": record.question.strip(),
        "intent": MATH_INTENT.format(instruction=record.question.strip()),
        "gold": gold,
        **_setting_metadata(setting, full, texts, shards),
    }
    return Sample(id=record.task_id, input=full, target=gold, metadata=metadata)
