"""Input that cannot explode: preset YAML (aliases refused, size capped, guardrails typed) and logs given to
`replay_user` (a corrupt or truncated file is one line naming it). Each failure the issue measured is run as the
user would meet it, through `inspect eval` where it matters what is printed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.model import ModelOutput, ModelUsage, get_model

from userlm_plugin import replay_user, userlm_user, with_simulated_user
from userlm_plugin._yaml import MAX_USER_YAML_BYTES
from userlm_plugin.errors import ConfigError, UsageError
from userlm_plugin.simulators import load_simulator

REPO = Path(__file__).parents[1]

BILLION_LAUGHS = """\
simulator: userlm
guardrails:
  banned_first_words: &l9 [*l8, *l8, *l8, *l8, *l8, *l8, *l8, *l8, *l8]
"""


def billion_laughs() -> str:
    """The classic: nine levels of nine aliases, about 1 KB, standing for 9**9 (387M) strings."""
    lines = ["a: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    text = "\n".join(lines) + "\n" + BILLION_LAUGHS
    assert len(text.encode()) < 1100
    return text


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_billion_laughs_preset_is_refused_at_the_first_alias(tmp_path: Path) -> None:
    path = write(tmp_path, "bomb.yaml", billion_laughs())
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_simulator(str(path))
    assert time.monotonic() - started < 2
    assert str(info.value) == (
        f"{path}: line 2: YAML aliases (*l0) are not accepted (one alias can stand for "
        "gigabytes); write the value out where it is used."
    )


def test_merge_keys_are_aliases_too_and_anchors_alone_are_fine(tmp_path: Path) -> None:
    merged = write(tmp_path, "merge.yaml", "base: &b {temperature: 0.5}\nsimulator: prompted\n<<: *b\n")
    with pytest.raises(ConfigError, match=r"merge.yaml: line 3: YAML aliases \(\*b\)"):
        load_simulator(str(merged))
    anchored = write(tmp_path, "anchor.yaml", "simulator: prompted\ntemperature: &t 0.5\n")
    assert load_simulator(str(anchored)).config.temperature == 0.5  # type: ignore[attr-defined]


def test_a_huge_or_broken_preset_file_is_one_line_naming_it(tmp_path: Path) -> None:
    big = write(tmp_path, "big.yaml", "simulator: scripted\nturns:\n" + "  - hello there\n" * 80_000)
    assert big.stat().st_size > MAX_USER_YAML_BYTES
    with pytest.raises(
        ConfigError, match=r"big.yaml: 1,\d{3},\d{3} bytes is more than a preset file may hold"
    ):
        load_simulator(str(big))
    broken = write(tmp_path, "broken.yaml", "simulator: prompted\ntemperature: [1\n")
    with pytest.raises(
        ConfigError, match=r"broken.yaml: line 3: not valid YAML \(expected ',' or ']'"
    ) as info:
        load_simulator(str(broken))
    assert "\n" not in str(info.value)


def test_guardrail_settings_in_a_preset_are_typed(tmp_path: Path) -> None:
    good = write(
        tmp_path, "good.yaml", "simulator: userlm\nguardrails: {max_words: 40, banned_first_words: Hi}\n"
    )
    sim = load_simulator(str(good))
    assert sim.config.guardrails == {"max_words": 40, "banned_first_words": ("Hi",)}  # type: ignore[attr-defined]
    for body, why in [
        ("{max_wrds: 4}", r"unknown guardrail setting\(s\) \['max_wrds'\]"),
        ("{max_words: lots}", "max_words: Input should be a valid integer"),
        ("{max_retries: 1000000000}", "max_retries: Input should be less than or equal to 100"),
        ("{banned_first_words: [[I, You]]}", "banned_first_words: Input should be a valid string"),
        ("[max_words]", "must be a mapping of guardrail settings, got list"),
    ]:
        path = write(tmp_path, "bad.yaml", f"simulator: userlm\nguardrails: {body}\n")
        with pytest.raises(ConfigError, match=why):
            load_simulator(str(path))


def test_a_shared_structure_from_python_is_refused_without_walking_it() -> None:
    """Aliases cannot come from a file any more; a Python caller's shared lists are refused at the first level."""
    level: Any = ["lol"] * 9
    for _ in range(9):
        level = [level] * 9
    started = time.monotonic()
    with pytest.raises(ConfigError, match="banned_first_words: Input should be a valid string"):
        userlm_user(guardrails={"banned_first_words": level})
    assert time.monotonic() - started < 2


# ---- replay_user --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    log_dir = tmp_path_factory.mktemp("replayable")
    [log] = eval(
        with_simulated_user(
            Task(dataset=[Sample(input="hi", id="s1")]),
            simulator={"simulator": "scripted", "turns": ["a b c"]},
        ),
        model=get_model("mockllm/model", custom_outputs=lambda *_: answer()),
        display="none",
        log_dir=str(log_dir),
    )
    assert log.status == "success", log.error
    return Path(log.location)


def answer() -> ModelOutput:
    output = ModelOutput.from_content("mockllm/model", "ok")
    output.usage = ModelUsage(input_tokens=3, output_tokens=1, total_tokens=4)  # no tokenizer download
    return output


def corrupt_copies(log: Path, tmp_path: Path) -> dict[str, Path]:
    data = log.read_bytes()
    copies = {
        "truncated.eval": data[: len(data) // 2],
        "empty.eval": b"",
        "garbage.json": b"{not json",
        "other.json": b'{"hello": "world"}',
    }
    paths = {}
    for name, content in copies.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(content)
    # a zip whose sample member is not JSON (the archive is fine, its content is not)
    damaged = tmp_path / "damaged.eval"
    with zipfile.ZipFile(log) as source, zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            body = source.read(item.filename)
            target.writestr(item.filename, b"{\x00" if item.filename.startswith("samples/") else body)
    paths["damaged.eval"] = damaged
    return paths


def test_a_corrupt_or_truncated_log_is_one_line_naming_the_file(finished_log: Path, tmp_path: Path) -> None:
    assert replay_user(str(finished_log)).turns  # the intact log replays
    for name, path in corrupt_copies(finished_log, tmp_path).items():
        with pytest.raises(UsageError) as info:
            replay_user(str(path))
        message = str(info.value)
        assert f"{path} is not a readable Inspect log" in message, (name, message)
        assert "\n" not in message and len(message) < 500, (name, message)
    with pytest.raises(FileNotFoundError, match="no such log file"):  # also a UsageError
        replay_user(str(tmp_path / "missing.eval"))


TASK = """
from inspect_ai import Task, task
from inspect_ai.dataset import Sample

from userlm_plugin import with_simulated_user


@task
def talk(simulator: str = "scripted"):
    return with_simulated_user(Task(dataset=[Sample(input="hi")]), simulator=simulator)
"""


def inspect_eval(tmp_path: Path, simulator: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "talk.py").write_text(TASK, encoding="utf-8")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "inspect_ai",
            "eval",
            "talk.py",
            "--model",
            "mockllm/model",
            "-T",
            f"simulator={simulator}",
            "--log-dir",
            "logs",
            "--display",
            "plain",
        ],  # fmt: skip
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "500"},  # rich wraps at the terminal's width
    )


def test_what_inspect_eval_prints_for_a_bomb_and_a_truncated_log(finished_log: Path, tmp_path: Path) -> None:
    """The user's view: one line naming the file, no traceback, nothing run."""
    write(tmp_path, "bomb.yaml", billion_laughs())
    truncated = corrupt_copies(finished_log, tmp_path)["truncated.eval"]
    write(tmp_path, "replay.yaml", f"simulator: replay\nlog: {truncated}\n")
    for preset, needle in [
        ("bomb.yaml", "bomb.yaml: line 2: YAML aliases (*l0) are not accepted"),
        ("replay.yaml", f"{truncated} is not a readable Inspect log"),
    ]:
        result = inspect_eval(tmp_path, preset)
        output = result.stdout + result.stderr
        assert result.returncode != 0 and needle in output, output[-3000:]
        assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output[-3000:]
    assert not (tmp_path / "logs").exists() or not list((tmp_path / "logs").glob("*.eval"))
