# FROZEN copy of round 1's launcher.py (commit 6cd4a1e), kept ONLY for bench/scoring_throughput.py's side-by-side
# timing. NOT used by userlm_plugin, and NOT safe against hostile code (docs/grading.md says why).
"""The trusted launcher that runs in the sandbox and confines one test run (never imported by the eval
process; `runner.py` ships its source with `python -c`).

Inspect's `local` sandbox is not isolated (docs/inspect.md#the-local-sandbox-is-not-a-sandbox): it inherits the host
environment (API keys), runs in a shared directory, and only signals the direct child on timeout. This
launcher closes the gaps it can without root:

- the child gets an empty environment (PATH, HOME/TMPDIR pointing at its own temp dir, a run marker);
- it runs in a fresh temp dir, removed afterwards;
- rlimits cap address space, CPU seconds, new processes, file size and core dumps;
- it runs in its own session; the whole process group is SIGKILLed when the wall timeout expires AND
  after a normal exit (so background children die too), and any process that escaped the group with
  `setsid` but still carries the run marker in its environment is found in /proc and killed.

Input (stdin, JSON): {"harness": source, "spec": {...}, "limits": {...}}. Output: one JSON line on stdout.
Stdlib only: it must run on any python3 >= 3.8.
"""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

TAIL = 2000


def _uid_process_count():
    uid = os.getuid()
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat("/proc/" + entry).st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def _marked_pids(marker):
    needle = ("USERLM_RUN=" + marker).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/" + entry + "/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            pass
    return found


def _sweep(pgid, marker):
    """Kill the child's process group, then anything else still carrying the run marker."""
    killed = 0
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for _ in range(5):  # a process may fork while we sweep: repeat until none is left
        pids = _marked_pids(marker)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)
    return killed


def _tail(path, size_limit=TAIL):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - size_limit))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def main():
    payload = json.load(sys.stdin)
    limits = payload["limits"]
    spec = payload["spec"]
    nonce = "@@USERLM_RESULT_" + uuid.uuid4().hex + "@@"
    spec["nonce"] = nonce
    marker = uuid.uuid4().hex
    workdir = tempfile.mkdtemp(prefix="userlm_run_")
    logdir = tempfile.mkdtemp(prefix="userlm_log_")
    with open(os.path.join(workdir, "harness.py"), "w", encoding="utf-8") as f:
        f.write(payload["harness"])
    with open(os.path.join(workdir, "spec.json"), "w", encoding="utf-8") as f:
        json.dump(spec, f)

    wall = float(limits["wall_s"])
    memory = int(limits["memory_mb"]) * 1024 * 1024
    nproc = _uid_process_count() + int(limits["max_processes"])
    fsize = int(limits["file_size_mb"]) * 1024 * 1024
    cpu = int(wall) + 1

    def confine():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "USERLM_RUN": marker,
    }
    out_path, err_path = os.path.join(logdir, "out"), os.path.join(logdir, "err")
    started = time.monotonic()
    timed_out = False
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        child = subprocess.Popen(
            [sys.executable, "-I", "harness.py"],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=confine,
        )
        try:
            returncode = child.wait(timeout=wall)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(child.pid, signal.SIGKILL)
            returncode = child.wait()
    elapsed = time.monotonic() - started
    leftovers = _sweep(child.pid, marker)

    stdout = _tail(out_path, 65536)
    result = None
    for line in reversed(stdout.splitlines()):
        if line.startswith(nonce):
            result = json.loads(line[len(nonce) :])
            break
    report = {
        "returncode": returncode,
        "timed_out": timed_out,
        "elapsed_s": round(elapsed, 3),
        "killed_leftovers": leftovers,
        "result": result,
        "stderr_tail": _tail(err_path),
        "stdout_tail": "" if result is not None else stdout[-TAIL:],
    }
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(logdir, ignore_errors=True)
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
