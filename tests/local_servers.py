"""Starting real servers on 127.0.0.1 for tests and benchmarks: a free port, a bounded wait for readiness, and a
watch on the process for as long as it should be running.

Shared by the llama.cpp fixture (tests/llama_server.py), the `serve` tests and bench/serve_overhead.py, so the
rules exist once:
- `wait_until_ready`: poll until ready, fail fast with the log tail if the process died, give up after a deadline;
- `ServerProcess`: a started server with its log; a watchdog thread reports an unexpected death at once (on
  stderr, with the exit status or signal and the log tail), `ensure_alive()` turns it into a test failure, and
  conftest.py adds the report to every test that fails while a server is dead;
- `app_in_thread` runs a small ASGI app (a scripted upstream server) under uvicorn in this process.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STOP_TIMEOUT_S = 10.0
"""How long a server gets to exit after SIGTERM (then SIGKILL, and as long again)."""


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_ready(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    what: str,
    log_tail: Callable[[], str],
    timeout_s: float,
    not_yet: tuple[type[BaseException], ...] = (OSError,),
    poll_s: float = 0.2,
) -> None:
    """Poll `ready()` until it is true (`not_yet` errors, e.g. a refused connection, count as not ready yet);
    raise RuntimeError with the server's log tail if the process exits or `timeout_s` passes first. The caller
    stops the process."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} {describe_exit(process.returncode)}:\n{log_tail()}")
        try:
            if ready():
                return
        except not_yet:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout_s:.0f} s:\n{log_tail()}")
        time.sleep(poll_s)


def describe_exit(returncode: int) -> str:
    """`exited with 3`, or `was killed by signal 11 (SIGSEGV)` (Popen's returncode is -N for a signal)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown"
        return f"was killed by signal {-returncode} ({name})"
    return f"exited with {returncode}"


_RUNNING: weakref.WeakSet[ServerProcess] = weakref.WeakSet()


class ServerProcess:
    """A server process started by a test, its log file, and a watchdog.

    The watchdog polls the process (every 0.2 s) until `stop()`; if the process exits first, the death is
    recorded (`death`) and printed to stderr at once, so a run that then stalls still says what happened.
    """

    def __init__(self, what: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.what = what
        self.process = process
        self.log_path = log_path
        self.stopping = False
        self.death: str | None = None
        self.death_reported = False
        _RUNNING.add(self)
        self._watchdog = threading.Thread(target=self._watch, name=f"watch {what}", daemon=True)
        self._watchdog.start()

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _watch(self) -> None:
        while not self.stopping:
            if self.process.poll() is not None:
                if not self.stopping:
                    self.death = (
                        f"{self.what} (pid {self.process.pid}) {describe_exit(self.process.returncode)} "
                        f"while tests were using it; last lines of its log:\n{self.log_tail()}"
                    )
                    print(f"\n[tests] {self.death}", file=sys.__stderr__, flush=True)
                return
            time.sleep(0.2)

    def ensure_alive(self) -> None:
        """Fail the calling test at once if the server died (with its exit status or signal and log tail)."""
        import pytest

        if self.process.poll() is not None and not self.stopping:
            self._watchdog.join(timeout=1)
            pytest.fail(self.death or f"{self.what} {describe_exit(self.process.returncode)}", pytrace=False)

    def stop(self) -> None:
        """Stop this server (its own pid only): SIGTERM, then SIGKILL; every wait bounded."""
        self.stopping = True
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        self._watchdog.join(timeout=1)


def unreported_deaths() -> list[str]:
    """Deaths of servers that should have been running, each returned once (conftest adds them to the report of
    the test that failed when they happened)."""
    deaths = []
    for server in list(_RUNNING):
        if server.death is not None and not server.death_reported:
            server.death_reported = True
            deaths.append(server.death)
    return deaths


@contextmanager
def app_in_thread(app: Any, *, timeout_s: float = 20.0) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port, in a daemon thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"test server on port {port} did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
