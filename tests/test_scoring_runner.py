"""The confined runner (scoring/runner.py): pass/fail, timeouts, and the local sandbox's gaps closed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from inspect_ai.util._sandbox.local import LocalSandboxEnvironment

from userlm_plugin.scoring.answers.runner import RunLimits, TestSpec, run_tests

CHECK = "\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n"


@pytest.fixture
def env() -> LocalSandboxEnvironment:
    return LocalSandboxEnvironment()


def spec(body: str, check: str = CHECK) -> TestSpec:
    return TestSpec(mode="check", program=body + check, entry_point="add")


async def test_correct_solution_passes(env) -> None:
    result = await run_tests(spec("def add(a, b):\n    return a + b\n"), env=env)
    assert result.passed and result.n_passed == 1 and result.explanation() == "passed 1/1 tests"


async def test_wrong_solution_fails_with_first_failing_test(env) -> None:
    result = await run_tests(
        spec("import sys\ndef add(a, b):\n    print('oops', file=sys.stderr)\n    return a - b\n"), env=env
    )
    assert not result.passed
    assert "AssertionError" in result.failure["error"]
    explanation = result.explanation()
    assert "first failing test" in explanation


async def test_load_error_is_explained(env) -> None:
    result = await run_tests(spec("def add(a, b)\n    return a + b\n"), env=env)
    assert not result.passed and "failed to load" in result.error and "SyntaxError" in result.error


async def test_infinite_loop_is_killed_and_the_next_run_works(env) -> None:
    limits = RunLimits(timeout_per_test_s=1, max_wall_s=3)
    looping = await run_tests(spec("def add(a, b):\n    while True:\n        pass\n"), limits, env=env)
    assert not looping.passed and "timed out after 1s" in looping.failure["error"]
    # code that ignores the per-test alarm is killed by the launcher's wall timeout (whole process group)
    stubborn = (
        "import signal\n"
        "def add(a, b):\n"
        "    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\n"
        "    while True:\n        pass\n"
    )
    killed = await run_tests(spec(stubborn), limits, env=env)
    assert not killed.passed and killed.timed_out and "wall timeout" in killed.error
    after = await run_tests(spec("def add(a, b):\n    return a + b\n"), limits, env=env)
    assert after.passed


async def test_generated_code_sees_no_api_keys(env, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-123")
    program = (
        "import os\n"
        "def leak():\n"
        "    parent = open(f'/proc/{os.getppid()}/environ', 'rb').read().decode(errors='replace')\n"
        "    return [sorted(os.environ), 'sk-test-secret' in parent]\n"
    )
    result = await run_tests(
        TestSpec(
            mode="functional", program=program, func_name="leak", tests=[{"input": "", "output": "null"}]
        ),
        env=env,
    )
    seen_keys, parent_has_secret = json.loads(
        result.failure["got"].replace("'", '"').replace("False", "false").replace("True", "true")
    )
    assert "OPENAI_API_KEY" not in seen_keys and "PATH" in seen_keys
    assert parent_has_secret is False


async def test_file_writes_stay_in_the_temp_dir(env, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    program = (
        "import os, tempfile\n"
        "def where():\n"
        "    open('relative.txt', 'w').write('x')\n"
        "    open(os.path.expanduser('~/home.txt'), 'w').write('x')\n"
        "    open(os.path.join(tempfile.gettempdir(), 'tmp.txt'), 'w').write('x')\n"
        "    return [os.getcwd(), os.path.expanduser('~'), tempfile.gettempdir()]\n"
    )
    result = await run_tests(
        TestSpec(
            mode="functional", program=program, func_name="where", tests=[{"input": "", "output": "null"}]
        ),
        env=env,
    )
    cwd, home, tmp = json.loads(result.failure["got"].replace("'", '"'))
    assert cwd == home == tmp and Path(cwd).name.startswith("userlm_run_")
    assert not Path(cwd).exists()  # the run's temp dir (and everything written in it) is gone
    assert list(tmp_path.iterdir()) == [] and not (Path(env.directory.name) / "relative.txt").exists()


def _processes_with(arg: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if arg.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


async def test_forked_background_processes_are_gone_afterwards(env) -> None:
    program = (
        "import subprocess, os\n"
        "def add(a, b):\n"
        "    subprocess.Popen(['sleep', '913.25'])\n"
        "    subprocess.Popen(['sleep', '913.5'], start_new_session=True)\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        os.execvp('sleep', ['sleep', '913.75'])\n"
        "    return a + b\n"
    )
    result = await run_tests(spec(program), env=env)
    assert result.passed
    time.sleep(0.2)
    assert _processes_with("913.") == []


async def test_memory_cap(env) -> None:
    result = await run_tests(
        spec("def add(a, b):\n    x = bytearray(3 * 1024 ** 3)\n    return a + b\n"),
        RunLimits(memory_mb=512),
        env=env,
    )
    assert not result.passed and "MemoryError" in result.failure["error"]


async def test_functional_tests_tuple_equals_list_and_private_tests_decode_in_the_sandbox(env) -> None:
    import base64
    import pickle
    import zlib

    private = base64.b64encode(
        zlib.compress(pickle.dumps(json.dumps([{"input": "[1, 2]\n[3]", "output": "[[1, 2], [3]]"}])))
    ).decode()
    program = "def pair(a, b):\n    return (tuple(a), b)\n"
    public = [{"input": "[0]\n[]", "output": "[[0], []]"}]
    result = await run_tests(
        TestSpec(mode="functional", program=program, func_name="pair", tests=public, private=private), env=env
    )
    assert result.passed and result.n_tests == 2
    wrong = await run_tests(
        TestSpec(
            mode="functional", program="def pair(a, b):\n    return [b, a]\n", func_name="pair", tests=public
        ),
        env=env,
    )
    assert not wrong.passed and wrong.failure["index"] == 0 and wrong.failure["expected"] == "[[0], []]"
