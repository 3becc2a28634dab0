"""The readiness wait every real-server test relies on fails fast and says why."""

import subprocess
import sys

import pytest
from local_servers import wait_until_ready


def test_a_process_that_dies_fails_fast_with_its_log() -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    with pytest.raises(RuntimeError, match=r"(?s)demo exited with 3:\nboom"):
        wait_until_ready(process, lambda: False, what="demo", log_tail=lambda: "boom", timeout_s=30)


def test_not_ready_until_the_deadline_then_a_clear_error() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    calls = []

    def refused() -> bool:
        calls.append(1)
        raise ConnectionRefusedError

    try:
        with pytest.raises(RuntimeError, match="demo not ready after 0 s"):
            wait_until_ready(process, refused, what="demo", log_tail=str, timeout_s=0.3, poll_s=0.05)
        assert len(calls) >= 2
        assert wait_until_ready(process, lambda: True, what="demo", log_tail=str, timeout_s=1) is None
    finally:
        process.kill()
        process.wait()
