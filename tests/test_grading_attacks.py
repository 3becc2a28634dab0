"""Hostile answers score 0, through the runner and end to end through evals/coding_sharded.py, and nothing they
start survives (docs/grading.md). The attacks are in tests/attacks.py.

Most of these need the `user` isolation level (a root launcher): as root at the `process` level an attack that
kills what it can would hit the machine, so every test here first makes sure the runs are isolated by uid
(`isolation="user"` fails instead of falling back) and is skipped when the tests do not run as root. The runner
tests force the `user` level; the end-to-end runs take `auto`, the strongest level available (the namespace
level where bubblewrap works), and check that every score names it. What surrounds the process (files,
IPC, network, disk) is attacked in tests/test_grading_escapes.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from attacks import attacks, auto_level, processes_with
from inspect_ai import eval
from inspect_ai.model import ModelOutput, ModelUsage, get_model

from userlm_plugin._inspect_compat import LocalSandboxEnvironment
from userlm_plugin.scoring.answers.runner import RunLimits, RunResult, TestSpec, run_tests

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the `user` isolation level needs a root launcher")

ROOT = Path(__file__).parent.parent
CODING = f"{ROOT / 'evals' / 'coding_sharded.py'}@coding_sharded"
FIXTURE = str(ROOT / "tests" / "fixtures" / "lic_mini.json")
LIMITS = RunLimits(timeout_per_test_s=2, max_wall_s=20, isolation="user")
ATTACKS = attacks(os.getpid())
CHECK = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"
TESTS = [{"input": "2\n3", "output": "5"}, {"input": "-1\n1", "output": "0"}]


@pytest.fixture
def env() -> LocalSandboxEnvironment:
    return LocalSandboxEnvironment()


def as_add(program: str) -> str:
    return program + "\nadd = attack\n"


def spec(mode: str, program: str) -> TestSpec:
    if mode == "check":
        return TestSpec(mode="check", program=as_add(program), check=CHECK, entry_point="add")
    return TestSpec(mode="functional", program=as_add(program), func_name="add", tests=TESTS)


def got(result: RunResult):
    """What the candidate returned on the first failing call-based test (the trusted side's repr)."""
    assert result.failure is not None and "got" in result.failure, result.explanation()
    return eval_literal(result.failure["got"])


def eval_literal(text: str):
    import ast

    return ast.literal_eval(text)


@pytest.mark.parametrize("mode", ["check", "functional"])
@pytest.mark.parametrize("name", sorted(ATTACKS))
async def test_every_attack_scores_zero(name: str, mode: str, env) -> None:
    result = await run_tests(spec(mode, ATTACKS[name]), LIMITS, env=env)
    assert result.isolation == "user", result.isolation_detail
    assert not result.passed and result.n_passed == 0, result.explanation()
    assert result.explanation().startswith("failed")


async def test_a_correct_answer_still_passes_under_the_same_limits(env) -> None:
    for mode in ("check", "functional"):
        result = await run_tests(spec(mode, "def attack(a, b):\n    return a + b\n"), LIMITS, env=env)
        assert result.passed, result.explanation()


async def test_the_eval_process_is_unreadable_and_untraceable(env) -> None:
    program = ATTACKS["reads_and_traces_the_trusted_side"]
    result = await run_tests(spec("functional", program), LIMITS, env=env)
    seen = got(result)
    # per target (launcher, eval): ptrace's result, then environ, mem, fd/0, fd/1
    assert seen == [-1, *["PermissionError"] * 4] * 2


async def test_a_signal_aimed_at_the_eval_does_not_stop_the_run(env) -> None:
    program = (
        "import os, signal\n"
        "def add(a, b):\n"
        "    out = []\n"
        f"    for pid in (os.getppid(), {os.getpid()}):\n"
        "        for sig in (signal.SIGTERM, signal.SIGKILL):\n"
        "            try:\n"
        "                os.kill(pid, sig)\n"
        "                out.append('sent')\n"
        "            except OSError as ex:\n"
        "                out.append(type(ex).__name__)\n"
        "    return out\n"
    )
    result = await run_tests(
        TestSpec(mode="functional", program=program, func_name="add", tests=TESTS), LIMITS, env=env
    )
    assert got(result) == ["PermissionError"] * 4
    after = await run_tests(spec("check", "def attack(a, b):\n    return a + b\n"), LIMITS, env=env)
    assert after.passed  # the launcher and this process are alive and grading


async def test_no_process_started_by_candidate_code_survives(env) -> None:
    program = (
        "import ctypes, os, subprocess\n"
        "def add(a, b):\n"
        "    subprocess.Popen(['sleep', '917.25'])\n"
        "    subprocess.Popen(['sleep', '917.5'], start_new_session=True)\n"
        "    if os.fork() == 0:\n"  # double fork, own session, empty environment: round 1's sweep missed it
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        "            os.execve('/bin/sleep', ['sleep', '917.75'], {})\n"
        "        os._exit(0)\n"
        "    if os.fork() == 0:\n"  # hides from /proc owner checks by making itself non-dumpable
        "        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)\n"
        "        os.setsid()\n"
        "        os.execvp('sleep', ['sleep', '917.875'])\n"
        "    import time; time.sleep(0.3)\n"
        "    return a + b\n"
    )
    result = await run_tests(spec("check", program.replace("def add", "def attack")), LIMITS, env=env)
    assert result.passed, result.explanation()
    assert result.killed_leftovers >= 4
    time.sleep(0.2)
    assert processes_with("917.") == []


async def test_forks_past_max_processes_are_refused_and_swept(env) -> None:
    program = (
        "import os, time\n"
        "def add(a, b):\n"
        "    started = 0\n"
        "    for _ in range(100):\n"
        "        try:\n"
        "            pid = os.fork()\n"
        "        except OSError:\n"
        "            continue\n"
        "        if pid == 0:\n"
        "            os.execvp('sleep', ['sleep', '918.5'])\n"
        "        started += 1\n"
        "    return started\n"
    )
    limits = LIMITS.model_copy(update={"max_processes": 8})
    result = await run_tests(
        TestSpec(mode="functional", program=program, func_name="add", tests=TESTS), limits, env=env
    )
    assert 0 < got(result) <= 8  # RLIMIT_NPROC holds for the run's own uid (it does nothing for root)
    time.sleep(0.2)
    assert processes_with("918.5") == []


async def test_concurrent_runs_have_their_own_uids_and_cannot_kill_each_other(env) -> None:
    patient = "import time\ndef attack(a, b):\n    time.sleep(0.6)\n    return a + b\n"
    killer = (
        "import os, signal, time\n"
        "def attack(a, b):\n"
        "    time.sleep(0.3)\n"
        "    for _ in range(3):\n"
        "        for pid in [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
        "            if pid != os.getpid():\n"
        "                try:\n"
        "                    os.kill(pid, signal.SIGKILL)\n"
        "                except OSError:\n"
        "                    pass\n"
        "    return -1\n"
    )
    limits = LIMITS.model_copy(update={"timeout_per_test_s": 6})
    first, second = await asyncio.gather(
        run_tests(spec("check", patient), limits, env=env), run_tests(spec("check", killer), limits, env=env)
    )
    assert first.passed, first.explanation()
    assert not second.passed
    uid = [r.isolation_detail.split(",")[0] for r in (first, second)]
    assert uid[0].startswith("uid ") and uid[0] != uid[1]


async def test_the_candidate_runs_unprivileged_and_cannot_find_the_expected_output(env) -> None:
    magic = "zebra-7781-expected"
    program = (
        "import os\n"
        "def attack():\n"
        "    status = open('/proc/self/status').read()\n"
        "    nnp = [l.split()[1] for l in status.splitlines() if l.startswith('NoNewPrivs')]\n"
        "    hits = []\n"
        "    for pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
        "        for name in ('cmdline', 'environ', 'fd/0'):\n"
        "            try:\n"
        f"                if b'{magic[:5]}' + b'{magic[5:]}' in open('/proc/%s/%s' % (pid, name), 'rb').read():\n"
        "                    hits.append(pid + '/' + name)\n"
        "            except OSError:\n"
        "                pass\n"
        "    return [os.getuid(), nnp, hits]\n"
    )
    check = f"def check(candidate):\n    assert candidate() == '{magic}'\n"
    result = await run_tests(
        TestSpec(mode="check", program=program, check=check, entry_point="attack"), LIMITS, env=env
    )
    assert not result.passed
    probe = TestSpec(
        mode="functional", program=program, func_name="attack", tests=[{"input": "", "output": "0"}]
    )
    uid, nnp, hits = got(await run_tests(probe, LIMITS, env=env))
    assert uid >= LIMITS.uid_base and nnp == ["1"] and hits == []


async def test_files_left_in_shared_temp_dirs_are_removed(env) -> None:
    program = (
        "import os\n"
        "def attack(a, b):\n"
        "    for d in ('/tmp', '/dev/shm', '/var/tmp'):\n"
        "        if os.access(d, os.W_OK):\n"
        "            open(os.path.join(d, 'userlm-attack-left-%d' % os.getpid()), 'w').write('x')\n"
        "            os.makedirs(os.path.join(d, 'userlm-attack-dir-%d' % os.getpid(), 'deep'), exist_ok=True)\n"
        "    return a + b\n"
    )
    result = await run_tests(spec("check", program), LIMITS, env=env)
    assert result.passed
    left = [
        p
        for d in ("/tmp", "/dev/shm", "/var/tmp")
        if os.path.isdir(d)
        for p in os.listdir(d)
        if "userlm-attack-" in p
    ]
    assert left == []


# ---- end to end: a scripted assistant answers with the attack code ---------------------------------------


def _assistant(texts: list[str]):
    outputs = []
    for text in texts:
        output = ModelOutput.from_content("mockllm/model", text)
        output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        outputs.append(output)
    return get_model("mockllm/model", custom_outputs=outputs)


@pytest.mark.slow
@pytest.mark.parametrize("scoring", ["corrected", "lic_exact"])
@pytest.mark.parametrize("dataset", ["humaneval", "lic"])
def test_every_attack_scores_zero_through_coding_sharded(dataset: str, scoring: str, tmp_path) -> None:
    probe = asyncio.run(
        run_tests(
            spec("check", "def attack(a, b):\n    return a + b\n"), LIMITS, env=LocalSandboxEnvironment()
        )
    )
    assert probe.isolation == "user", (
        "refusing to run attacks without uid isolation: " + probe.isolation_detail
    )
    names = sorted(ATTACKS)
    answers = [f"Here is my solution:\n```python\n{ATTACKS[n]}```" for n in names]
    args = {"setting": "full", "timeout_per_test": 2, "scoring": scoring}
    if dataset == "humaneval":
        args.update(dataset="humaneval")
    else:
        args.update(data=FIXTURE, sources=["humaneval"])
    [log] = eval(
        CODING,
        model=_assistant(answers),
        task_args=args,
        epochs=len(names),
        limit=1,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    scores = [s.scores["code_scorer"] for s in log.samples]
    assert len(scores) == len(names)
    assert all(s.value["correct"] == 0.0 for s in scores), [
        s.explanation for s in scores if s.value["correct"]
    ]
    judged = {n for n in names for s in scores if ATTACKS[n].strip() in s.answer}
    assert judged == set(names)  # every attack was extracted and graded, none was skipped as "no answer"
    assert {s.metadata.get("isolation") for s in scores} == {auto_level()}  # namespace where bwrap works
    assert {s.metadata["scoring"] for s in scores} == {scoring}
    log_text = json.dumps([s.explanation for s in scores])
    assert "first failing test" in log_text


async def test_what_a_killed_launcher_left_is_swept_by_the_next_run_on_that_uid(env) -> None:
    """A launcher killed mid-run (e.g. by Inspect's exec timeout) cannot sweep: its uid stays marked dirty, and
    the next run that leases the uid kills what is left before it starts."""
    limits = LIMITS.model_copy(
        update={"uid_base": 61990, "uid_count": 1, "timeout_per_test_s": 20, "max_wall_s": 60}
    )
    program = (
        "import os, time\n"
        "def attack(a, b):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        os.execve('/bin/sleep', ['sleep', '919.5'], {})\n"
        "    time.sleep(30)\n"
    )
    run = asyncio.ensure_future(run_tests(spec("check", program), limits, env=env))
    for _ in range(200):
        await asyncio.sleep(0.05)
        if processes_with("919.5"):
            break
    launchers = [p for p in processes_with("userlm_isolation") if _parent(p) == os.getpid()]
    assert len(launchers) == 1
    os.kill(launchers[0], 9)
    killed = await run
    assert not killed.passed and killed.isolation is None  # no report: the launcher died
    assert processes_with("919.5")  # left behind, for now
    left_dirs = [p for p in Path("/tmp").glob("userlm_run_*") if p.stat().st_uid == 61990]
    assert left_dirs  # the dead run's temp dir, for now
    after = await run_tests(spec("check", "def attack(a, b):\n    return a + b\n"), limits, env=env)
    assert after.passed and after.isolation_detail.startswith("uid 61990")
    time.sleep(0.2)
    assert processes_with("919.5") == []
    assert not any(p.exists() for p in left_dirs)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1
