# FROZEN copy of round 1's harness.py (commit 6cd4a1e), kept ONLY for bench/scoring_throughput.py's side-by-side
# timing. NOT used by userlm_plugin, and NOT safe against hostile code (docs/grading.md says why).
"""The test harness that runs INSIDE the limited child process (never imported by the eval process).

It is shipped as source text to the sandbox by `runner.py` (so it works in any sandbox that has a
`python3`): the launcher writes it to a fresh temp dir and runs it under rlimits with a clean environment.
It reads `spec.json`, deletes it, executes the candidate code, runs the tests with a per-test timeout
(`signal.setitimer`, LiC: 6 s per test, docs/lic.md#code-evaluation) and prints one result line prefixed with the spec's
nonce. Candidate stdout is captured so that it cannot interleave with the result line.

Private LiveCodeBench tests (zlib+base64+pickle) are decoded here, inside the limited child, because
unpickling runs arbitrary code: the eval process never unpickles dataset content.

Stdlib only: it must run on any python3 >= 3.8.
"""

import base64
import contextlib
import io
import json
import os
import pickle
import signal
import sys
import traceback
import zlib

MAX_SHOWN = 300


class TestTimeout(BaseException):
    """Raised by the interval timer; a BaseException so that `except Exception` in candidate code
    cannot swallow it."""


def _on_alarm(signum, frame):  # noqa: ARG001
    raise TestTimeout()


def _short(value, limit=MAX_SHOWN):
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "...[truncated]"


def _normalise(value):
    """LiC compares call-based outputs with `==` after JSON decoding, a tuple counting as a list."""
    if isinstance(value, (tuple, list)):  # noqa: UP038 - runs on any python3
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    return value


def _decode_private(blob):
    """LiC/LCB private tests: a JSON list, or zlib+base64+pickle of a JSON string."""
    if isinstance(blob, list):
        return blob
    try:
        return json.loads(blob)
    except (ValueError, TypeError):
        pass
    decoded = pickle.loads(zlib.decompress(base64.b64decode(blob.encode("utf-8"))))
    return json.loads(decoded) if isinstance(decoded, (str, bytes)) else decoded  # noqa: UP038


@contextlib.contextmanager
def _time_limit(seconds):
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _run(spec, captured):
    timeout = float(spec["timeout_per_test"])
    namespace = {"__name__": "__candidate__"}
    try:
        with _time_limit(timeout), contextlib.redirect_stdout(captured):
            exec(compile(spec["program"], "candidate.py", "exec"), namespace)
    except TestTimeout:
        return {
            "passed": False,
            "n_tests": 0,
            "n_passed": 0,
            "error": f"loading the code timed out after {timeout:g}s",
        }
    except BaseException:  # noqa: BLE001 - the candidate may raise anything, SystemExit included
        return {
            "passed": False,
            "n_tests": 0,
            "n_passed": 0,
            "error": "the code failed to load:\n" + traceback.format_exc(limit=3),
        }

    if spec["mode"] == "check":
        fn = namespace.get(spec["entry_point"])
        check = namespace.get("check")
        if fn is None or check is None:
            missing = spec["entry_point"] if fn is None else "check"
            return {"passed": False, "n_tests": 1, "n_passed": 0, "error": f"name {missing!r} is not defined"}
        try:
            with _time_limit(timeout), contextlib.redirect_stdout(captured):
                check(fn)
        except TestTimeout:
            return {
                "passed": False,
                "n_tests": 1,
                "n_passed": 0,
                "failure": {"test": "check(candidate)", "error": f"timed out after {timeout:g}s"},
            }
        except BaseException as ex:  # noqa: BLE001
            tb = traceback.format_exc(limit=-2)
            return {
                "passed": False,
                "n_tests": 1,
                "n_passed": 0,
                "failure": {
                    "test": "check(candidate)",
                    "error": _short(f"{type(ex).__name__}: {ex}"),
                    "traceback": _short(tb, 1500),
                },
            }
        return {"passed": True, "n_tests": 1, "n_passed": 1}

    # call-based functional tests (LiC / LiveCodeBench)
    fn = namespace.get(spec["func_name"])
    if not callable(fn):
        return {
            "passed": False,
            "n_tests": 0,
            "n_passed": 0,
            "error": f"function {spec['func_name']!r} is not defined",
        }
    tests = list(spec.get("tests") or [])
    if spec.get("private") is not None:
        try:
            tests += list(_decode_private(spec["private"]))
        except BaseException as ex:  # noqa: BLE001
            return {
                "passed": False,
                "n_tests": len(tests),
                "n_passed": 0,
                "error": f"could not decode private tests: {type(ex).__name__}: {ex}",
            }
    passed = 0
    for index, test in enumerate(tests):
        shown = {
            "index": index,
            "input": _short(test.get("input", "")),
            "expected": _short(test.get("output", "")),
        }
        try:
            args = [json.loads(line) for line in str(test["input"]).split("\n") if line.strip()]
            expected = json.loads(test["output"])
            with _time_limit(timeout), contextlib.redirect_stdout(captured):
                got = fn(*args)
        except TestTimeout:
            shown["error"] = f"timed out after {timeout:g}s"
            return {"passed": False, "n_tests": len(tests), "n_passed": passed, "failure": shown}
        except BaseException as ex:  # noqa: BLE001
            shown["error"] = _short(f"{type(ex).__name__}: {ex}")
            return {"passed": False, "n_tests": len(tests), "n_passed": passed, "failure": shown}
        if _normalise(got) != _normalise(expected):
            shown["got"] = _short(got)
            return {"passed": False, "n_tests": len(tests), "n_passed": passed, "failure": shown}
        passed += 1
    return {
        "passed": passed == len(tests) and passed > 0,
        "n_tests": len(tests),
        "n_passed": passed,
        **({} if tests else {"error": "no tests to run"}),
    }


def main():
    with open("spec.json", encoding="utf-8") as f:
        spec = json.load(f)
    os.remove("spec.json")
    nonce = spec.pop("nonce")
    real_stdout = os.fdopen(os.dup(1), "w")
    captured = io.StringIO()
    result = _run(spec, captured)
    result["stdout"] = _short(captured.getvalue(), 1000)
    sys.stderr.flush()
    real_stdout.write("\n" + nonce + json.dumps(result) + "\n")
    real_stdout.flush()
    os._exit(0)  # skip atexit handlers and non-daemon threads the candidate may have left


if __name__ == "__main__":
    main()
