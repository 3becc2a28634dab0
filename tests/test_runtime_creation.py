"""What creating a `userlm/` model does, and does not do.

* It loads no weights (they load on the first generate), so `inspect score`, `inspect view` and a task that never
  calls the user model cost nothing, while bad `-M` args, a missing folder, a folder without a chat template and,
  offline, a hub id that was never downloaded still fail at creation, before any sample runs.
* `-M base_url=...` (the remote backend) works where torch cannot be imported, and a missing optional package
  is an Inspect-style "pip install" error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.model import ModelOutput, ModelUsage, get_model
from inspect_ai.solver import generate
from local_servers import app_in_thread

from userlm_plugin._inspect_compat import PrerequisiteError
from userlm_plugin.errors import ConfigError, ModelLoadError, UsageError
from userlm_plugin.runtime.local import loading

REPO = Path(__file__).resolve().parents[1]
OFFLINE_MESSAGE = "offline: pass a local folder or download first"


def loaded_names() -> set[str]:
    return {key[0] for key in loading._CACHE}


def test_creating_the_model_loads_no_weights(tiny_userlm_factory, tmp_path: Path) -> None:
    path = str(tiny_userlm_factory(seed=11))  # a checkpoint no other test loads
    model = get_model(f"userlm/{path}", memoize=False, max_batch_size=4, max_words=30)
    assert model.api._backend is None and path not in loaded_names()
    # a whole eval whose solver never calls the user role: the role's model is created, its weights never load
    assistant = ModelOutput.from_content(model="mockllm/model", content="hi")
    assistant.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
    log = eval(
        Task(dataset=[Sample(input="hello")], solver=generate()),
        model=get_model("mockllm/model", custom_outputs=[assistant]),
        model_roles={"user": f"userlm/{path}"},
        display="none",
        log_dir=str(tmp_path),
    )[0]
    assert log.status == "success", log.error
    assert log.eval.model_roles["user"].model == f"userlm/{path}"
    assert path not in loaded_names()


def test_input_mistakes_still_fail_at_creation(tiny_userlm_factory, tmp_path: Path) -> None:
    before = set(loading._CACHE)
    with pytest.raises(ConfigError, match=r"unknown model arg\(s\) \['max_batchsize'\]"):
        get_model(f"userlm/{tiny_userlm_factory()}", memoize=False, max_batchsize=4)
    with pytest.raises(ModelLoadError, match="no such model folder"):
        get_model(f"userlm/{tmp_path / 'nope'}", memoize=False)
    with pytest.raises(ModelLoadError, match="no chat template"):
        get_model(f"userlm/{tiny_userlm_factory(chat_template=False)}", memoize=False)
    with pytest.raises(ConfigError, match="max_retries"):
        get_model(f"userlm/{tiny_userlm_factory()}", memoize=False, max_retries=10**9)
    assert set(loading._CACHE) == before


def test_an_offline_hub_id_that_was_never_downloaded_fails_at_creation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_userlm_dir: Path
) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(UsageError, match=OFFLINE_MESSAGE) as info:
        get_model("userlm/nobody/not-downloaded-8b", memoize=False)
    assert isinstance(info.value, PrerequisiteError) and "\n" not in str(info.value)
    # the remote backend needs the served model's tokenizer: the same rule for -M tokenizer=<hub id>
    with pytest.raises(UsageError, match=OFFLINE_MESSAGE):
        get_model("userlm/x", base_url="http://127.0.0.1:1/v1", tokenizer="nobody/tok", memoize=False)
    # a local tokenizer folder needs no hub
    get_model("userlm/x", base_url="http://127.0.0.1:1/v1", tokenizer=str(tiny_userlm_dir), memoize=False)
    # downloaded before: fine offline (a hub-cache layout with the file in a snapshot)
    snapshot = tmp_path / "hub" / "models--somebody--cached-8b" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    assert get_model("userlm/somebody/cached-8b", memoize=False).api._backend is None
    # online, nothing is checked at creation (the download happens on the first generate)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    get_model("userlm/nobody/not-downloaded-8b", memoize=False)


def test_offline_hub_id_is_one_line_from_inspect_eval(tmp_path: Path) -> None:
    task_file = tmp_path / "task.py"
    task_file.write_text(
        textwrap.dedent(
            """
            from inspect_ai import Task, task
            from inspect_ai.dataset import Sample

            @task
            def tiny():
                return Task(dataset=[Sample(input="hi")])
            """
        )
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty-hub")}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "inspect"), "eval", str(task_file), "--model", "mockllm/model"]
        + ["--model-role", "user=userlm/nobody/not-downloaded-8b", "--log-dir", str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0 and OFFLINE_MESSAGE in output, output[-3000:]
    assert "Traceback" not in output


# ----- no torch -----

HIDE_MODULES = """
import sys

HIDDEN = set(sys.argv[1].split(","))


class _Hide:
    # a finder that makes the hidden top-level packages not found, as when they are not installed (find_spec
    # returns None, `import torch` raises ModuleNotFoundError, transformers reports torch unavailable)
    def __init__(self, inner):
        self.inner = inner

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            return None
        find = getattr(self.inner, "find_spec", None)
        return find(name, path, target) if find else None

    def __getattr__(self, name):
        return getattr(self.inner, name)


sys.meta_path[:] = [_Hide(finder) for finder in sys.meta_path]
"""

REMOTE_GENERATE = """
import asyncio
import sys

from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, get_model

url, tokenizer = sys.argv[2], sys.argv[3]
model = get_model("userlm/tiny", base_url=url, tokenizer=tokenizer, min_words=0, first_token_filter=False)
try:
    output = asyncio.run(
        model.generate([ChatMessageSystem(content="You want a sort function."), ChatMessageAssistant(content="Hi")])
    )
    print("COMPLETION:", output.completion)
except Exception as error:
    print("ERROR:", type(error).__name__, error)
print("TORCH IMPORTED:", any(name == "torch" or name.startswith("torch.") for name in sys.modules))
"""


@pytest.fixture(scope="module")
def completions_server() -> Iterator[str]:
    """A minimal OpenAI-compatible /v1/completions endpoint on 127.0.0.1 (Starlette under uvicorn, in a thread)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def completions(request: Request) -> JSONResponse:
        await request.json()
        choice = {"text": "\nok can you sort it in place", "finish_reason": "stop"}
        return JSONResponse({"choices": [choice], "usage": {"completion_tokens": 8}})

    app = Starlette(routes=[Route("/v1/completions", completions, methods=["POST"])])
    with app_in_thread(app) as url:
        yield f"{url}/v1"


def run_hidden(hidden: list[str], script: str, *args: str) -> str:
    program = HIDE_MODULES + script
    result = subprocess.run(
        [sys.executable, "-c", program, ",".join(hidden), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_remote_backend_generates_without_torch(completions_server: str, tiny_userlm_dir: Path) -> None:
    out = run_hidden(
        ["torch", "torchvision", "torchaudio"], REMOTE_GENERATE, completions_server, str(tiny_userlm_dir)
    )
    assert "COMPLETION: ok can you sort it in place" in out, out
    assert "TORCH IMPORTED: False" in out


@pytest.mark.slow
def test_missing_extras_are_pip_install_errors(completions_server: str, tiny_userlm_dir: Path) -> None:
    # the remote backend without transformers (the served model's tokenizer cannot load)
    out = run_hidden(["torch", "transformers"], REMOTE_GENERATE, completions_server, str(tiny_userlm_dir))
    assert "ERROR: MissingDependencyError" in out and 'pip install "userlm-plugin[runtime]"' in out, out
    # the local backend without torch
    local = REMOTE_GENERATE.replace(
        'get_model("userlm/tiny", base_url=url, tokenizer=tokenizer, min_words=0, first_token_filter=False)',
        'get_model(f"userlm/{tokenizer}")',
    )
    out = run_hidden(["torch"], local, completions_server, str(tiny_userlm_dir))
    assert "ERROR: MissingDependencyError" in out and 'pip install "userlm-plugin[runtime]"' in out, out
    assert "TORCH IMPORTED: False" in out
