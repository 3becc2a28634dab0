"""The isolated runner (scoring/answers/runner.py + isolation/): pass/fail, limits, explanations, LiC's preamble and
class answers, encoded private tests, and the isolation level it reports (docs/grading.md). Hostile answers are in
tests/test_grading_attacks.py."""

from __future__ import annotations

import base64
import json
import os
import pickle
import shutil
import time
import zlib
from pathlib import Path

import pytest
from attacks import auto_level, isolation_available, processes_with

from userlm_plugin._inspect_compat import LocalSandboxEnvironment
from userlm_plugin.scoring.answers.runner import RunLimits, TestSpec, run_tests

CHECK = "def check(candidate):\n    assert candidate(2, 3) == 5\n"
ROOT = os.geteuid() == 0


@pytest.fixture
def env() -> LocalSandboxEnvironment:
    return LocalSandboxEnvironment()


def spec(body: str, check: str = CHECK) -> TestSpec:
    return TestSpec(mode="check", program=body, check=check, entry_point="add")


def functional(program: str, name: str, tests: list[dict], **fields) -> TestSpec:
    return TestSpec(mode="functional", program=program, func_name=name, tests=tests, **fields)


def got(result) -> object:
    import ast

    assert result.failure and "got" in result.failure, result.explanation()
    return ast.literal_eval(result.failure["got"])


async def test_correct_solution_passes_and_says_how_it_was_isolated(env) -> None:
    result = await run_tests(spec("def add(a, b):\n    return a + b\n"), env=env)
    assert result.passed and result.n_passed == 1 and result.explanation() == "passed 1/1 tests"
    assert result.isolation == auto_level()
    if ROOT:
        assert result.isolation_detail.startswith("uid ")
    if result.isolation == "namespace":
        assert "namespaces (bubblewrap" in result.isolation_detail
    elif ROOT:  # no namespaces here (no bwrap, or it cannot set them up): the detail says why
        assert "no namespaces: " in result.isolation_detail, result.isolation_detail


async def test_process_isolation_can_be_requested_and_is_reported(env) -> None:
    result = await run_tests(
        spec("def add(a, b):\n    return a + b\n"), RunLimits(isolation="process"), env=env
    )
    assert result.passed and result.isolation == "process"
    assert "process isolation requested" in result.isolation_detail


async def test_wrong_solution_fails_with_first_failing_test_and_stderr(env) -> None:
    result = await run_tests(
        spec("import sys\ndef add(a, b):\n    print('oops', file=sys.stderr)\n    return a - b\n"), env=env
    )
    assert not result.passed
    assert result.failure["error"] == "AssertionError in check() at line 2"  # where, not the test's text
    assert result.failure["traceback"] == "check.py line 2 in check"
    explanation = result.explanation()
    assert "first failing test" in explanation and "oops" in explanation
    assert "candidate(2, 3)" not in explanation and "== 5" not in explanation


async def test_load_error_is_explained(env) -> None:
    result = await run_tests(spec("def add(a, b)\n    return a + b\n"), env=env)
    assert not result.passed and "failed to load" in result.error and "SyntaxError" in result.error
    missing = await run_tests(spec("def plus(a, b):\n    return a + b\n"), env=env)
    assert "function 'add' is not defined" in missing.error


async def test_a_spec_must_be_complete() -> None:
    with pytest.raises(ValueError, match="needs `check`"):
        TestSpec(mode="check", program="def add(a, b): ...", entry_point="add")
    with pytest.raises(ValueError, match="needs `func_name`"):
        TestSpec(mode="functional", program="def add(a, b): ...")


async def test_infinite_loops_are_stopped_by_the_trusted_side(env) -> None:
    limits = RunLimits(timeout_per_test_s=1, max_wall_s=3)
    looping = await run_tests(spec("def add(a, b):\n    while True:\n        pass\n"), limits, env=env)
    assert not looping.passed and "timed out after 1s" in looping.failure["error"]
    stubborn = (  # blocking signals changes nothing: the launcher keeps the time and kills the worker
        "import signal\n"
        "def add(a, b):\n"
        "    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGTERM})\n"
        "    while True:\n        pass\n"
    )
    killed = await run_tests(spec(stubborn), limits, env=env)
    assert not killed.passed and "timed out after 1s" in killed.failure["error"]
    slow_load = await run_tests(
        spec("import time\ntime.sleep(5)\ndef add(a, b):\n    return a + b\n"), limits, env=env
    )
    assert "loading the code timed out after 1s" in slow_load.error
    after = await run_tests(spec("def add(a, b):\n    return a + b\n"), limits, env=env)
    assert after.passed


async def test_the_wall_timeout_caps_the_whole_run(env) -> None:
    program = "import time\ndef slow(x):\n    time.sleep(0.8)\n    return x\n"
    tests = [{"input": str(i), "output": str(i)} for i in range(5)]
    result = await run_tests(
        functional(program, "slow", tests), RunLimits(timeout_per_test_s=1, max_wall_s=3), env=env
    )
    assert not result.passed and result.timed_out and "wall timeout (3s)" in result.error
    assert 0 < result.n_passed < 5


async def test_generated_code_sees_no_api_keys(env, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-123")
    program = (
        "import os\n"
        "def leak():\n"
        "    try:\n"
        "        parent = open(f'/proc/{os.getppid()}/environ', 'rb').read().decode(errors='replace')\n"
        "    except OSError as ex:\n"
        "        parent = type(ex).__name__\n"
        "    return [sorted(os.environ), 'sk-test-secret' in parent, parent == 'PermissionError']\n"
    )
    seen_keys, parent_has_secret, denied = got(
        await run_tests(functional(program, "leak", [{"input": "", "output": "null"}]), env=env)
    )
    assert "OPENAI_API_KEY" not in seen_keys and "PATH" in seen_keys
    assert parent_has_secret is False
    assert (
        denied is ROOT
    )  # as root the candidate runs as another uid: the launcher's /proc entries are closed


@pytest.mark.parametrize("isolation", ["auto", "process"])
async def test_file_writes_stay_in_the_temp_dir(env, tmp_path, monkeypatch, isolation: str) -> None:
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
        functional(program, "where", [{"input": "", "output": "null"}]),
        RunLimits(isolation=isolation),
        env=env,
    )
    cwd, home, tmp = got(result)
    if result.isolation == "namespace":  # the run's own tmpfs, gone with its mount namespace
        assert cwd == home == tmp == "/tmp"
    else:
        assert cwd == home == tmp and Path(cwd).name.startswith("userlm_run_")
        assert not Path(cwd).exists()  # the run's temp dir (and everything written in it) is gone
    assert list(tmp_path.iterdir()) == [] and not (Path(env.directory.name) / "relative.txt").exists()


FORKING = (  # children run the interpreter itself: in a namespace there is no /bin/sleep
    "import subprocess, os, sys\n"
    "def add(a, b):\n"
    "    nap = lambda s: [sys.executable, '-c', 'import time; time.sleep(%s)' % s]\n"
    "    subprocess.Popen(nap('913.25'))\n"
    "    subprocess.Popen(nap('913.5'), start_new_session=True)\n"
    "    if os.fork() == 0:\n"
    "        os.setsid()\n"
    "        if os.fork() == 0:\n"
    "            os.execve(sys.executable, nap('913.75'), {})\n"
    "        os._exit(0)\n"
    "    return a + b\n"
)


@pytest.mark.parametrize("isolation", ["auto", "user", "process"])
async def test_forked_background_processes_are_gone_afterwards(env, isolation: str) -> None:
    if isolation == "user" and not isolation_available("user")[0]:
        pytest.skip("the user level needs a root launcher: " + isolation_available("user")[1])
    result = await run_tests(spec(FORKING), RunLimits(isolation=isolation), env=env)
    assert result.passed
    time.sleep(0.2)
    assert processes_with("913.") == []


async def test_memory_cap(env) -> None:
    result = await run_tests(
        spec("def add(a, b):\n    x = bytearray(3 * 1024 ** 3)\n    return a + b\n"),
        RunLimits(memory_mb=512),
        env=env,
    )
    assert not result.passed and "MemoryError" in result.failure["error"]


async def test_call_based_comparison_is_pythons_eq_with_lics_tuple_rule(env) -> None:
    tests = [{"input": "[0]\n[]", "output": "[[0], []]"}]
    assert (
        await run_tests(functional("def pair(a, b):\n    return (a, b)\n", "pair", tests), env=env)
    ).passed
    nested = await run_tests(
        functional("def pair(a, b):\n    return [tuple(a), b]\n", "pair", tests), env=env
    )
    assert not nested.passed  # only a top-level tuple counts as a list, as in LiC
    boolean = await run_tests(
        functional("def one():\n    return True\n", "one", [{"input": "", "output": "1"}]), env=env
    )
    assert boolean.passed  # Python's `==`, as LiC and HumanEval's check: True == 1
    text = await run_tests(
        functional("def one():\n    return '1'\n", "one", [{"input": "", "output": "1"}]), env=env
    )
    assert not text.passed  # "1" is not 1
    number = await run_tests(
        functional("def two():\n    return 2\n", "two", [{"input": "", "output": "2.0"}]), env=env
    )
    assert number.passed
    wrong = await run_tests(functional("def pair(a, b):\n    return [b, a]\n", "pair", tests), env=env)
    assert not wrong.passed and wrong.failure["index"] == 0 and wrong.failure["got"] == "[[], [0]]"
    assert "[[0], []]" not in wrong.explanation()  # the expected output stays in the launcher


def _encoded(tests: list[dict]) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


async def test_encoded_private_tests_are_decoded_in_a_confined_process(env) -> None:
    private = _encoded([{"input": "[1, 2]\n[3]", "output": "[[1, 2], [3]]"}])
    public = [{"input": "[0]\n[]", "output": "[[0], []]"}]
    program = "def pair(a, b):\n    return (a, b)\n"
    result = await run_tests(functional(program, "pair", public, private=private), env=env)
    assert result.passed and result.n_tests == 2

    class Payload:  # unpickling runs this: it must run confined, not in the eval or the launcher
        def __reduce__(self):
            return (exec, ("import os; raise RuntimeError('unpickled by uid %d' % os.getuid())",))

    hostile = base64.b64encode(zlib.compress(pickle.dumps(Payload()))).decode()
    bad = await run_tests(functional(program, "pair", public, private=hostile), env=env)
    assert not bad.passed and "could not decode private tests: unpickled by uid" in bad.error
    ran_as = int(bad.error.rsplit(" ", 1)[1])
    assert ran_as >= RunLimits().uid_base if ROOT else ran_as == os.getuid()


async def test_lic_preamble_and_class_answers(env) -> None:
    program = (
        "class Solution:\n"
        "    calls = 0\n"
        "    def countBig(self, nums: List[int], k: int) -> int:\n"
        "        self.calls += 1\n"
        "        return len([n for n in nums if n > k]) + 0 * self.calls + floor(inf > 0) - 1\n"
    )
    tests = [{"input": "[1, 5, 9]\n4", "output": "2"}, {"input": "[7]\n0", "output": "1"}]
    with_preamble = await run_tests(functional(program, "countBig", tests, preamble=True), env=env)
    assert with_preamble.passed, with_preamble.explanation()  # `List`, `floor`, `inf` from the preamble
    without = await run_tests(functional(program, "countBig", tests), env=env)
    assert "NameError" in without.error and "List" in without.error
    stateful = program.replace("+ 0 * self.calls", "+ 0 * self.calls + (self.calls - 1)")
    one_instance = await run_tests(functional(stateful, "countBig", tests, preamble=True), env=env)
    assert not one_instance.passed and one_instance.n_passed == 1  # one Solution() for every test, as LiC
    forced = await run_tests(
        functional("def countBig(nums, k):\n    return 2\n", "countBig", tests[:1], solution_class=True),
        env=env,
    )
    assert "class 'Solution' is not defined" in forced.error


async def test_humaneval_check_sees_builtin_values_and_the_entry_point_by_name(env) -> None:
    check = (
        "def check(candidate):\n"
        "    assert add(1, 1) == 2\n"  # HumanEval/33 calls its function by name: that is the candidate too
        "    assert type(candidate(2, 3)) is int\n"
        "    try:\n"
        "        candidate(None, 1)\n"
        "    except TypeError:\n"
        "        pass\n"
        "    else:\n"
        "        raise AssertionError('no TypeError')\n"
    )
    assert (await run_tests(spec("def add(a, b):\n    return a + b\n", check), env=env)).passed


@pytest.mark.skipif(
    not ROOT or shutil.which("setpriv") is None, reason="needs root and setpriv to run as nobody"
)
async def test_a_non_root_launcher_falls_back_to_process_isolation_and_says_so() -> None:
    class AsNobody(LocalSandboxEnvironment):
        async def exec(self, cmd, *args, **kwargs):  # type: ignore[override]
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
            return await super().exec(command, *args, **kwargs)

    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if python is None:
        pytest.skip("no system python3 that nobody can run")
    limits = RunLimits(python=python)
    env = AsNobody()
    result = await run_tests(spec(FORKING), limits, env=env)
    assert result.passed, result.explanation()
    assert result.isolation == "process" and "the launcher is not root" in result.isolation_detail
    assert "non-dumpable subreaper launcher" in result.isolation_detail
    time.sleep(0.2)
    assert processes_with("913.") == []
    wrong = await run_tests(spec("def add(a, b):\n    return a * b\n"), limits, env=env)
    assert not wrong.passed and wrong.isolation == "process"
    strict = await run_tests(
        spec("def add(a, b):\n    return a + b\n"), RunLimits(python=python, isolation="user"), env=env
    )
    assert not strict.passed and "isolation='user' impossible: the launcher is not root" in strict.error
