"""Starting real servers on 127.0.0.1 for tests and benchmarks: a free port, and a bounded wait for readiness.

Shared by the llama.cpp fixture (tests/llama_server.py), the `serve` tests and bench/serve_overhead.py, so the
rule "poll until ready, fail fast with the log tail if the process died, give up after a deadline" exists once;
`app_in_thread` runs a small ASGI app (a scripted upstream server) under uvicorn in this process.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


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
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log_tail()}")
        try:
            if ready():
                return
        except not_yet:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout_s:.0f} s:\n{log_tail()}")
        time.sleep(poll_s)


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
