"""TRUSTED: runs the tests against a worker and decides pass/fail in the launcher's own process.

Call-based tests (LiC/LiveCodeBench): the launcher parses each test's JSON input, sends the arguments to the
worker, gets the returned value back as plain data and compares it with the expected output itself
(`plain.same`). Expected outputs and the test source never leave this process, not even in the report of a
failing test (it goes into the eval's log, which candidates at the `user` and `process` levels can read):
a failure names the test by its index or by the line of `check`, with the input the candidate was given and
what it returned or raised.

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
import signal
import sys
import time
import traceback

from . import plain, wire

SHOWN = 300
WITHHELD = "(not shown: logs are readable by candidates at some isolation levels; docs/grading.md)"
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
    try:
        text = value if isinstance(value, str) else repr(value)
    except ValueError:  # an int over Python's 4,300-digit limit for decimal text (slow to convert: not shown)
        return f"<a {type(value).__name__} holding an int of more than 4300 digits>"
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
            try:  # on the candidate's clock: it chose the value
                return "value", plain.decode(reply["value"], deadline)
            except plain.DecodeTimeout:
                raise CandidateFailure("its value could not be decoded in time", timed_out=True) from None
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


@contextlib.contextmanager
def any_int_size():
    """Trusted text only (the dataset's tests): big int literals without Python's 4,300-digit limit."""
    setter = getattr(sys, "set_int_max_str_digits", None)  # Python >= 3.11 (and 3.8+ security releases)
    if setter is None:
        yield
        return
    previous = sys.get_int_max_str_digits()
    setter(0)
    try:
        yield
    finally:
        setter(previous)


def trusted_json(text):
    with any_int_size():
        return json.loads(text)


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
        shown = {"index": index, "input": short(test.get("input", ""))}
        try:
            args = [trusted_json(line) for line in str(test["input"]).split("\n") if line.strip()]
            expected = trusted_json(test["output"])
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
            shown["expected"] = WITHHELD
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
    with any_int_size():
        exec(compile(check_source, CHECK_FILE, "exec", dont_inherit=True), namespace)
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
        shown.update(_check_failure(ex))
    else:
        if proxy.failure is None:
            return {"passed": True, "n_tests": 1, "n_passed": 1}
        shown["error"] = proxy.failure.shown(timeout)  # check swallowed the failure: it still fails
    return {"passed": False, "n_tests": 1, "n_passed": 0, "failure": shown}


CHECK_FILE = "check.py"


def _check_failure(ex):
    """Where `check` failed, without its source: an assert's text and message are the test itself. An
    exception the candidate raised keeps its message (the candidate's own text)."""
    frames = [f for f in traceback.extract_tb(ex.__traceback__) if f.filename == CHECK_FILE]
    line = frames[-1].lineno if frames else None
    innermost = traceback.extract_tb(ex.__traceback__)[-1:]
    from_check = bool(innermost) and innermost[0].filename == CHECK_FILE
    if from_check:
        error = f"{type(ex).__name__} in check() at line {line}"
    else:
        error = short(f"{type(ex).__name__}: {ex}") + (
            f" (called from check() at line {line})" if line else ""
        )
    where = ", ".join(f"{CHECK_FILE} line {f.lineno} in {f.name}" for f in frames)
    return {"error": error, "traceback": where, "test_source": WITHHELD}
