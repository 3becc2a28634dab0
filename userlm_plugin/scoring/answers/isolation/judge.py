"""TRUSTED: runs the tests against a worker and decides pass/fail in the launcher's own process.

Call-based tests (LiC/LiveCodeBench): the launcher parses each test's JSON input, sends the arguments to the
worker, gets the returned value back as plain data and compares it with the expected output itself
(`plain.same`). Expected outputs never leave this process.

HumanEval's `check(candidate)` runs here too, with `candidate` a proxy: each call sends its arguments to the
worker and returns the worker's value, decoded into builtin objects. So `check`'s asserts compare builtin
values with Python's own `==`, and no object of the candidate's ever reaches this process. An exception the
candidate raised is re-raised here as the same builtin exception type (or `CandidateRaised`); a worker that
stalls, dies, sends something that is not plain data or breaks the protocol fails the test even if `check`
catches the error.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import linecache
import signal
import time
import traceback

from . import plain, wire

SHOWN = 300
MESSAGE_LIMIT = 16 * 1024 * 1024
"""Largest reply accepted from a worker (a bigger return value fails the test)."""


class TestTimeout(BaseException):
    """The per-test time ran out (a BaseException: `except Exception` in `check` cannot swallow it)."""


class CandidateFailure(BaseException):
    """The worker cannot answer: it stalled, died, broke the protocol or returned a non-plain value."""

    def __init__(self, message, timed_out=False):
        super().__init__(message)
        self.timed_out = timed_out

    def shown(self, timeout):
        return f"timed out after {timeout:g}s" if self.timed_out else str(self)


class CandidateRaised(Exception):
    """The candidate raised an exception that is not a builtin one (its type name and message)."""


def short(value, limit=SHOWN):
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "...[truncated]"


class Channel:
    """The launcher's end of one worker's pipes."""

    def __init__(self, process, to_worker, from_worker):
        self.process = process
        self.to_worker = to_worker
        self.from_worker = from_worker
        self.seq = 0

    def alive(self):
        return self.process.poll() is None

    def send(self, message, deadline):
        wire.send(self.to_worker, message, deadline)

    def receive(self, deadline):
        return wire.recv(self.from_worker, deadline, MESSAGE_LIMIT, self.alive)

    def call(self, args, kwargs, deadline):
        """One call: ("value", v) | ("raised", info) | raises CandidateFailure."""
        self.seq += 1
        try:
            request = {"op": "call", "seq": self.seq, "args": plain.encode(list(args))}
            request["kwargs"] = plain.encode(dict(kwargs))
        except plain.NotPlain as ex:
            raise CandidateFailure(f"the test passed {ex}, which cannot be sent to the candidate") from None
        try:
            self.send(request, deadline)
            reply = self.receive(deadline)
        except wire.WireTimeout:
            raise CandidateFailure("no answer in time", timed_out=True) from None
        except wire.WireError as ex:
            raise CandidateFailure(self.gone(str(ex), "during the test")) from None
        if type(reply) is not dict or reply.get("seq") != self.seq:
            raise CandidateFailure("the candidate's process broke the protocol (a reply out of turn)")
        if "value" in reply:
            try:
                return "value", plain.decode(reply["value"])
            except ValueError as ex:
                raise CandidateFailure(f"the candidate's process sent a malformed value ({ex})") from None
        if type(reply.get("raised")) is dict:
            return "raised", reply["raised"]
        if "not_plain" in reply:
            what = short(str(reply["not_plain"]), 100)
            raise CandidateFailure(
                f"returned {what}; only builtin types (numbers, str, list, tuple, dict, set, ...) can be compared"
            )
        raise CandidateFailure("the candidate's process broke the protocol (an unknown reply)")

    def gone(self, why, when):
        """Why the worker stopped answering (`when`: "during the test", "while loading")."""
        time.sleep(0.05)
        code = self.process.poll()
        if code is None:
            return f"the candidate's process stopped answering ({why})"
        if code < 0:
            return f"the candidate's process was killed by signal {-code} {when}"
        return f"the candidate's process exited with code {code} {when}"


def raised_text(info):
    return short(f"{str(info.get('type'))[:80]}: {info.get('message')}")


@contextlib.contextmanager
def time_limit(seconds):
    def on_alarm(signum, frame):  # noqa: ARG001
        raise TestTimeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_functional(channel, tests, timeout, wall_deadline):
    """LiC's call-based grading: stop at the first failing test."""
    passed = 0
    for index, test in enumerate(tests):
        shown = {
            "index": index,
            "input": short(test.get("input", "")),
            "expected": short(test.get("output", "")),
        }
        try:
            args = [json.loads(line) for line in str(test["input"]).split("\n") if line.strip()]
            expected = json.loads(test["output"])
        except (KeyError, ValueError) as ex:
            shown["error"] = f"the test itself is malformed ({type(ex).__name__}: {ex})"
            return _failed(tests, passed, shown)
        deadline = min(time.monotonic() + timeout, wall_deadline)
        try:
            kind, got = channel.call(args, {}, deadline)
        except CandidateFailure as ex:
            shown["error"] = ex.shown(timeout)
            return _failed(tests, passed, shown)
        if kind == "raised":
            shown["error"] = raised_text(got)
            return _failed(tests, passed, shown)
        if not plain.same(got, expected):
            shown["got"] = short(got)
            return _failed(tests, passed, shown)
        passed += 1
    result = {"passed": passed == len(tests) and passed > 0, "n_tests": len(tests), "n_passed": passed}
    if not tests:
        result["error"] = "no tests to run"
    return result


def _failed(tests, passed, shown):
    return {"passed": False, "n_tests": len(tests), "n_passed": passed, "failure": shown}


class CandidateProxy:
    """What `check` receives as `candidate`: calls go to the worker, values come back as plain data."""

    def __init__(self, channel, deadline):
        self._channel = channel
        self._deadline = deadline
        self.failure = None

    def __call__(self, *args, **kwargs):
        if self.failure is not None:
            raise self.failure
        try:
            kind, got = self._channel.call(args, kwargs, self._deadline)
        except CandidateFailure as ex:
            self.failure = ex
            raise
        if kind == "value":
            return got
        error = getattr(builtins, str(got.get("type")), None)
        if not (isinstance(error, type) and issubclass(error, BaseException)):
            raise CandidateRaised(raised_text(got))
        if not issubclass(error, Exception):  # SystemExit, KeyboardInterrupt: the run is over
            self.failure = CandidateFailure("the candidate raised " + raised_text(got))
            raise self.failure
        try:
            exception = error(str(got.get("message")))
        except Exception:  # noqa: BLE001 - a builtin that needs other arguments (UnicodeDecodeError)
            exception = CandidateRaised(raised_text(got))
        raise exception


def run_check(channel, check_source, entry_point, timeout, wall_deadline):
    """HumanEval: `check(candidate)` here, in the trusted process, as one test. The entry point's global name
    is the proxy too (HumanEval/33's check calls `sort_third` by name, as its harness defines it)."""
    namespace = {"__name__": "__check__"}
    linecache.cache["check.py"] = (len(check_source), None, check_source.splitlines(True), "check.py")
    exec(compile(check_source, "check.py", "exec", dont_inherit=True), namespace)
    check = namespace.get("check")
    if not callable(check):
        return {"passed": False, "n_tests": 1, "n_passed": 0, "error": "the test defines no check()"}
    deadline = min(time.monotonic() + timeout, wall_deadline)
    proxy = CandidateProxy(channel, deadline)
    namespace[entry_point] = proxy
    shown = {"test": "check(candidate)"}
    try:
        with time_limit(deadline - time.monotonic()):
            check(proxy)
    except TestTimeout:
        shown["error"] = f"timed out after {timeout:g}s"
    except CandidateFailure:
        shown["error"] = proxy.failure.shown(timeout)
    except BaseException as ex:  # noqa: BLE001 - an assert in check, or the candidate's exception
        shown["error"] = short(f"{type(ex).__name__}: {ex}")
        shown["traceback"] = short(_check_traceback(ex), 1500)
    else:
        if proxy.failure is None:
            return {"passed": True, "n_tests": 1, "n_passed": 1}
        shown["error"] = proxy.failure.shown(timeout)  # check swallowed the failure: it still fails
    return {"passed": False, "n_tests": 1, "n_passed": 0, "failure": shown}


def _check_traceback(ex):
    """The traceback from `check` down (the launcher's own frames are noise in an explanation)."""
    frames = [
        f for f in traceback.extract_tb(ex.__traceback__) if not f.filename.startswith("<userlm_isolation")
    ]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(ex), ex)
    return "".join(lines)
