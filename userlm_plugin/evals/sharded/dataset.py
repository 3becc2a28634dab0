"""Inspect samples for the sharded evals: one sample per instruction, the same metadata in every setting.

Settings (LiC, arXiv 2505.06120 §3.3 and Appendix M; UserLM paper arXiv 2510.06552 §4 for `userlm`):
- `full`: one user turn, the fully specified instruction inside LiC's wrapper (`prompts/*_full.txt`).
- `concat`: one user turn, the shards inside the same wrapper (checks that sharding lost nothing). Code: shard 1,
  then the other shards as `- ` bullets; math: every shard as a bullet (LiC `populate_concat_prompt`).
- `sharded`: LiC's user LLM reveals one shard per turn (`sharded_user`).
- `scripted`: the shards verbatim, in shard_id order, one per turn (no LLM; CI and controls).
- `userlm`: the User LM, with the fully specified instruction inside its intent.
- `snowball`: scripted; each turn restates every earlier shard, then adds the next (LiC SNOWBALL, with
  verbatim shards instead of LLM rephrasing).
- `recap`: scripted shards, then LiC's recap turn: "Just to recapitulate, the entire task is:" + the CONCAT text.

Metadata read by the solver: `intent` (every setting, for the record), `shards` (shard settings), `turns`
(the scripted-turn settings full/concat/snowball/recap). Read by the scorers: `func_name` + `code_tests_sha256`
(code: the key of the tests, kept out of the metadata and so out of the log) or `gold` (math); `shards` /
`instruction` by the optional grader. `-T scoring=lic_exact` also reads what LiC's own code reads: the prompt's
imports (`lic_imports` in the tests) and LiC's gold text (`lic_gold`).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any, Literal, get_args

from inspect_ai.dataset import Sample

from ...errors import UsageError
from ...scoring.answers import lic_rules
from ...scoring.answers.code import prompt_context
from ...scoring.answers.hidden_tests import hide
from ...scoring.answers.math import gold_answer
from .humaneval import HumanEvalProblem
from .lic import CodeRecord, MathRecord

Setting = Literal["full", "concat", "sharded", "userlm", "scripted", "snowball", "recap"]
SETTINGS: tuple[str, ...] = get_args(Setting)
SINGLE_TURN_SETTINGS = ("full", "concat")
"""LiC's single-turn settings: their reply is graded without asking whether it is an answer attempt."""
SHARD_SETTINGS = ("concat", "sharded", "scripted", "snowball", "recap")
"""Settings that need shards (the `humaneval` dataset has none)."""

CODE_INTENT = "You are a user chatting with an assistant language model to get a Python function written that does the following.\n\n{instruction}"
MATH_INTENT = "You are a user chatting with an assistant language model to get help solving this math problem.\n\n{instruction}"
"""UserLM intents (ours; arXiv 2510.06552 §2): every training intent starts "You are a user chatting with an
assistant language model to ..."; the model card's remedy for invented requirements is a fully specified intent,
so the full problem follows the frame. The paper's exact intent strings are not published (docs/scoring.md)."""

LCB_FORMAT_PREAMBLE = (
    "You will use the following starter code to write the solution to the problem and enclose your code "
    "within delimiters."
)
"""LiveCodeBench's call-based formatting line, as LiC fills `[[FORMATTING_PREAMBLE]]` (`get_formatting_preamble`)."""
LCB_NO_STARTER = "# YOUR CODE HERE"
HUMANEVAL_FULL_LEAD = "Complete the following incomplete function signature:"
RECAP_TURN = (
    "Just to recapitulate, the entire task is:\n\n[[SAMPLE_TEXT]]\n\n"
    "Now please complete the task correctly taking all the information into account."
)
"""LiC's recap message (`simulator_recap.py`), filled with the CONCAT rendering (LiC's `recap-concat`)."""


@cache
def template(name: str) -> str:
    """A LiC prompt file from `prompts/` (package data), exactly as written (trailing newlines kept)."""
    return files(__package__).joinpath(f"prompts/{name}.txt").read_text(encoding="utf-8")


def fill(text: str, **values: str) -> str:
    """Replace LiC's `[[NAME]]` markers, in the order given (as LiC's chained `str.replace`)."""
    for key, value in values.items():
        text = text.replace(f"[[{key}]]", value)
    return text


def concat_text(shards: list[str]) -> str:
    """Every shard on its own `- ` line."""
    return "\n".join(f"- {s}" for s in shards)


def _bullets(shards: list[str]) -> str:
    """LiC's CONCAT query body: one `- shard` line each, every line newline-terminated."""
    return "".join(f"- {s}\n" for s in shards)


def snowball_turns(shards: list[str]) -> list[str]:
    """LiC SNOWBALL: turn n restates shards 1..n-1 and then adds shard n."""
    turns = [shards[0]]
    for n in range(1, len(shards)):
        turns.append("Just to reiterate:\n" + concat_text(shards[:n]) + f"\n\nAlso, {shards[n]}")
    return turns


def recap_turns(shards: list[str], concat_prompt: str) -> list[str]:
    """LiC RECAP: the shards one per turn, then one turn restating the entire task (its CONCAT rendering)."""
    return [*shards, fill(RECAP_TURN, SAMPLE_TEXT=concat_prompt)]


def _is_humaneval(record: CodeRecord | HumanEvalProblem) -> bool:
    return isinstance(record, HumanEvalProblem) or record.source == "humaneval"


def _lcb(question: str, starter_code: str | None) -> str:
    return fill(
        template("lcb_full"),
        QUESTION=question,
        FORMATTING_PREAMBLE=LCB_FORMAT_PREAMBLE,
        FORMATTING=f"```python\n{starter_code or LCB_NO_STARTER}\n```",
    )


def code_full_prompt(record: CodeRecord | HumanEvalProblem) -> str:
    """LiC FULL for code (`populate_fully_specific_prompt`): HumanEval's signature in the HumanEval wrapper, or
    the LiveCodeBench question with its starter code (or `# YOUR CODE HERE`)."""
    if _is_humaneval(record):
        lead = f"{HUMANEVAL_FULL_LEAD}\n```python\n{record.prompt}\n```"
        return fill(template("humaneval_full"), INSTRUCTION=lead)
    return _lcb(record.question_content or "", record.starter_code)


def code_concat_prompt(record: CodeRecord) -> str:
    """LiC CONCAT for code (`populate_concat_prompt`): shard 1, then `- ` bullets of the rest, in the wrapper."""
    texts = [s.shard for s in record.shards]
    query = texts[0] + "\n" + _bullets(texts[1:])
    if _is_humaneval(record):
        return fill(template("humaneval_full"), INSTRUCTION=query)
    return _lcb(query, record.starter_code)


def math_full_prompt(record: MathRecord) -> str:
    """LiC FULL for math: `Q: <question>\nA:`."""
    return fill(template("math_full"), QUESTION=record.question)


def math_concat_prompt(record: MathRecord) -> str:
    """LiC CONCAT for math: every shard (shard 1 included) as a `- ` bullet inside `Q: ...\nA:`."""
    return fill(template("math_full"), QUESTION=_bullets([s.shard for s in record.shards]))


def code_instruction(record: CodeRecord | HumanEvalProblem) -> str:
    """The fully specified problem without LiC's assistant-facing rules: the User LM's intent and the grader's
    task statement for samples without shards (ours)."""
    if _is_humaneval(record):
        prompt = record.prompt.strip("\n")
        return f"Complete the following Python function:\n```python\n{prompt}\n```"
    text = (record.question_content or "").strip()
    if (record.starter_code or "").strip():
        text += f"\n\nUse this starter code:\n```python\n{record.starter_code.strip()}\n```"
    return text


def _setting_metadata(setting: Setting, full: str, concat: str | None, shards: list[dict]) -> dict[str, Any]:
    """The scripted turns of `setting` (full/concat/snowball/recap) and the shards."""
    texts = [s["shard"] for s in shards]
    turns: dict[str, list[str]] = {"full": [full]}
    if concat is not None:
        turns |= {"concat": [concat], "snowball": snowball_turns(texts), "recap": recap_turns(texts, concat)}
    meta: dict[str, Any] = {"turns": turns[setting]} if setting in turns else {}
    if shards:
        meta["shards"] = shards
    return meta


def _shards(record: CodeRecord | MathRecord) -> list[dict]:
    return [s.model_dump() for s in record.shards]


def code_sample(record: CodeRecord | HumanEvalProblem, setting: Setting) -> Sample:
    """One coding instruction as a sample for `setting`."""
    instruction = code_instruction(record)
    full = code_full_prompt(record)
    if isinstance(record, HumanEvalProblem):
        if setting in SHARD_SETTINGS:
            raise UsageError(
                f"-T setting={setting} needs sharded instructions, and the humaneval dataset has none: "
                "use -T dataset=lic (Lost in Conversation), or -T setting=full|userlm with humaneval."
            )
        shards: list[dict] = []
        concat = None
        tests = {
            "mode": "check",
            "prefix": prompt_context(record.prompt, record.entry_point),
            "lic_imports": lic_rules.prompt_imports(record.prompt),
            "check": record.test,
        }
        func_name, source, task_id = record.entry_point, "humaneval", record.task_id
    else:
        shards, concat = _shards(record), code_concat_prompt(record)
        prefix = prompt_context(record.prompt, record.func_name) if record.prompt else ""
        tests = {
            "mode": "functional",
            "prefix": prefix,
            "lic_imports": lic_rules.prompt_imports(record.prompt),
            "public": [t.model_dump(include={"input", "output"}) for t in record.public_test_cases],
            "private": record.private_test_cases,
        }
        func_name, source, task_id = record.func_name, record.source, record.task_id
    metadata = {
        "task": "code",
        "task_id": task_id,
        "source": source,
        "setting": setting,
        "instruction": instruction,
        "intent": CODE_INTENT.format(instruction=instruction),
        "func_name": func_name,
        "code_tests_sha256": hide(tests),  # the tests stay out of the log (scoring/answers/hidden_tests.py)
        **_setting_metadata(setting, full, concat, shards),
    }
    return Sample(id=task_id, input=full, target=func_name, metadata=metadata)


def math_sample(record: MathRecord, setting: Setting) -> Sample:
    """One GSM8K instruction as a sample for `setting`."""
    question = record.question.strip()
    full = math_full_prompt(record)
    gold = gold_answer(record.answer)
    metadata = {
        "task": "math",
        "task_id": record.task_id,
        "source": "gsm8k",
        "setting": setting,
        "instruction": question,
        "intent": MATH_INTENT.format(instruction=question),
        "gold": gold,
        "lic_gold": lic_rules.math_gold(record.answer),
        **_setting_metadata(setting, full, math_concat_prompt(record), _shards(record)),
    }
    return Sample(id=record.task_id, input=full, target=gold, metadata=metadata)
