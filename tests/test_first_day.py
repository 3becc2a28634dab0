"""The Quickstart as a new user meets it (issue 21): a forgotten `user` model is one line before any sample starts,
naming `--model-role user=...` and `hf download`; `--display plain` shows the per-turn count; the README's offline
snippets set HF_HUB_OFFLINE=1."""

from __future__ import annotations

import contextvars
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from inspect_ai import Task, eval, task
from inspect_ai.dataset import Sample
from inspect_ai.model import GenerateConfig, get_model

from userlm_plugin import simulated_user
from userlm_plugin._inspect_compat import PrerequisiteError
from userlm_plugin.errors import UsageError
from userlm_plugin.simulators._common import roles_bound_by_task
from userlm_plugin.simulators.userlm import UserLMConfig

REPO = Path(__file__).resolve().parents[1]
INTENT = "You are a user chatting with an assistant language model to find out the capital city of Algeria"
TRIP = f'''
from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from userlm_plugin import simulated_user


@task
def trip():
    return Task(
        dataset=[Sample(input="", target="Algiers", metadata={{"intent": "{INTENT}"}})],
        solver=simulated_user("userlm", max_turns=3),
    )
'''


@pytest.fixture
def empty_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def _inspect(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "import sys; from inspect_ai._cli.main import main; sys.argv = ['inspect', *sys.argv[1:]]; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_a_missing_default_user_model_is_one_line_before_any_sample(
    tmp_path: Path, empty_hub_cache: Path
) -> None:
    (tmp_path / "trip.py").write_text(TRIP)
    done = _inspect(
        ["eval", "trip.py", "--model", "mockllm/model", "--display", "plain", "--log-dir", "logs"],
        tmp_path,
        {"HF_HUB_CACHE": str(empty_hub_cache), "HF_HUB_OFFLINE": "1"},
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in out, out
    message = " ".join(out.split())
    assert "no `user` model role given" in message and "--model-role user=" in message
    assert "hf download microsoft/UserLM-8b" in message and "huggingface-cli" not in message
    assert not (tmp_path / "logs").exists() or not list((tmp_path / "logs").iterdir())  # no sample ran


def test_the_guard_in_python_and_what_it_lets_through(tmp_path: Path, empty_hub_cache: Path) -> None:
    @task
    def trip() -> Task:
        return Task(
            dataset=[Sample(input="", metadata={"intent": INTENT})],
            solver=simulated_user("userlm", max_turns=1),
        )

    with pytest.raises(PrerequisiteError, match="hf download microsoft/UserLM-8b"):
        eval(trip, model="mockllm/model", display="none", log_dir=str(tmp_path / "logs"))
    # a task built outside an eval: its roles are not known yet, so nothing is claimed
    simulated_user("userlm")
    # inside an eval set-up: a bound role, a role the task binds itself, a local folder that exists all pass
    config = UserLMConfig()
    assert _in_eval(config.check_fallback, "userlm", roles={"user"}) is None
    with roles_bound_by_task(["user"]):
        assert _in_eval(config.check_fallback, "userlm") is None
    assert _in_eval(UserLMConfig(model=f"userlm/{tmp_path}").check_fallback, "userlm") is None
    with pytest.raises(UsageError, match="is no folder here") as caught:
        _in_eval(UserLMConfig(model=f"userlm/{tmp_path}/nope").check_fallback, "userlm")
    assert "hf download" not in str(caught.value)  # a folder is not downloaded from the hub
    # a hub id that IS in the cache passes (a snapshot with its config.json)
    snapshot = empty_hub_cache / "models--microsoft--UserLM-8b" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (empty_hub_cache / "models--microsoft--UserLM-8b" / "refs").mkdir()
    (empty_hub_cache / "models--microsoft--UserLM-8b" / "refs" / "main").write_text("abc123")
    assert _in_eval(config.check_fallback, "userlm") is None


def _in_eval(check, simulator: str, roles: set[str] = frozenset()) -> None:  # type: ignore[no-untyped-def]
    """Run `check` as Inspect runs task construction: an active model and the eval's roles set."""
    from inspect_ai.model._model import init_active_model, init_model_roles

    def run() -> None:
        init_active_model(get_model("mockllm/model"), GenerateConfig())
        init_model_roles({role: get_model("mockllm/model") for role in roles})
        return check(simulator)

    return contextvars.copy_context().run(run)


CHAT = """
from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.model import ModelOutput, ModelUsage, get_model
from userlm_plugin import simulated_user


def reply(*args):
    output = ModelOutput.from_content(model="mockllm/model", content="ok")
    output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)  # no tokenizer download
    return output


@task
def chat():
    return Task(
        dataset=[Sample(input="", metadata={"intent": "x"})],
        solver=simulated_user({"simulator": "scripted", "turns": ["hi", "more", "bye"]}),
        model=get_model("mockllm/model", custom_outputs=reply),
    )
"""


def test_plain_display_shows_every_simulated_turn(tmp_path: Path) -> None:
    (tmp_path / "chat.py").write_text(CHAT)
    done = _inspect(["eval", "chat.py", "--display", "plain", "--log-dir", "logs"], tmp_path, {})
    assert done.returncode == 0, done.stdout + done.stderr
    counts = re.findall(
        r"simulated user turns: (\d+) \(user turn (\d+)(, the user ended)?, scripted\)", done.stdout
    )
    assert [(turn, bool(ended)) for _, turn, ended in counts] == [
        ("1", False),
        ("2", False),
        ("3", False),
        ("4", True),  # the fourth: the script is done, the user ends
    ], done.stdout


def test_readme_offline_snippets_set_hf_hub_offline() -> None:
    """Every README command that runs a local model (hf/local, userlm/<folder>, train) sets HF_HUB_OFFLINE=1,
    or sits in a block that exports it: without it the hub is retried (24 warnings, 85 s instead of 33 s)."""
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    offline = [b for b in blocks if ".cache/smollm2-135m-instruct" in b or "/tmp/demo/" in b]
    assert offline, "the README's offline snippets moved: update this test"
    for block in offline:
        assert "HF_HUB_OFFLINE=1" in block, block
