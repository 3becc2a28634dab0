"""Lost in Conversation loading/validation and sample building (tests/fixtures/lic_mini.json, written by hand
in the real schema) and the offline HumanEval source."""

from pathlib import Path

import pytest

from userlm_plugin.evals.sharded import lic
from userlm_plugin.evals.sharded.dataset import code_sample, math_sample
from userlm_plugin.evals.sharded.humaneval import load_humaneval
from userlm_plugin.evals.sharded.lic import expand_sources, load_lic

FIXTURE = Path(__file__).parent / "fixtures" / "lic_mini.json"


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
    with pytest.raises(ValueError, match=r"sharded-GSM8K/998.*\n.*sharded-GSM8K/997"):
        load_lic("math", data=FIXTURE, on_invalid="fail")


def test_sources_accept_list_str_and_alias() -> None:
    assert expand_sources(["humaneval", " lcb"]) == {"humaneval", "lcb_easy", "lcb_medium"}
    assert expand_sources("lcb_easy") == {"lcb_easy"}
    with pytest.raises(ValueError, match="unknown source 'mbpp'"):
        expand_sources("mbpp")
    assert [r.source for r in load_lic("code", data=FIXTURE, sources="lcb").records] == ["lcb_easy"]
    with pytest.raises(ValueError, match="coding eval only"):
        load_lic("math", data=FIXTURE, sources="humaneval")


def test_bad_files_have_clear_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="-T data="):
        load_lic("code", data=tmp_path / "missing.json")
    (tmp_path / "obj.json").write_text('{"task_id": 1}')
    with pytest.raises(ValueError, match="JSON list"):
        load_lic("code", data=tmp_path / "obj.json")


def test_download_failure_says_how_to_work_offline(monkeypatch) -> None:
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(RuntimeError, match=r"-T data=.*-T dataset=humaneval"):
        load_lic("code")
    assert lic.LIC_REVISION in str(lic.download_lic.__defaults__)


def test_samples_per_setting() -> None:
    record = load_lic("code", data=FIXTURE).records[0]
    shards = [s.shard for s in record.shards]
    full = code_sample(record, "full").metadata
    assert full["turns"] == [full["instruction"]] and "def add" in full["instruction"]
    assert code_sample(record, "concat").metadata["turns"] == ["\n".join(f"- {s}" for s in shards)]
    scripted = code_sample(record, "scripted").metadata
    assert "turns" not in scripted and [s["shard"] for s in scripted["shards"]] == shards
    userlm = code_sample(record, "userlm").metadata
    assert userlm["intent"].startswith("You are a user chatting with an assistant language model to")
    assert full["instruction"] in userlm["intent"] and "turns" not in userlm
    snowball = code_sample(record, "snowball").metadata["turns"]
    assert len(snowball) == 3 and snowball[2].startswith("Just to reiterate:\n- " + shards[0])
    assert code_sample(record, "recap").metadata["turns"][-1].startswith("Just to recap")
    assert full["code_tests"]["mode"] == "functional" and len(full["code_tests"]["public"]) == 3
    lcb = code_sample(load_lic("code", data=FIXTURE).records[1], "full").metadata
    assert lcb["code_tests"]["private"] and "starter code" in lcb["instruction"]
    math = math_sample(load_lic("math", data=FIXTURE).records[1], "full")
    assert math.target == "2500" and math.metadata["turns"][0].startswith("Q: ")


def test_humaneval_offline_has_no_shards() -> None:
    problems = load_humaneval()
    assert len(problems) == 164 and problems[0].task_id == "HumanEval/0"
    sample = code_sample(problems[53], "userlm")
    assert sample.id == "HumanEval/53" and sample.metadata["code_tests"]["mode"] == "check"
    with pytest.raises(ValueError, match="humaneval dataset has none"):
        code_sample(problems[0], "sharded")
