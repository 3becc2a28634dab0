"""The machinery every real-server test relies on: the readiness wait fails fast and says why, a server that dies
is reported at once with its signal and log, and the llama.cpp test server is built without native-CPU code."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from local_servers import wait_until_ready

REPO = Path(__file__).resolve().parents[1]


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


def test_a_watched_server_that_dies_fails_the_test_with_its_signal_and_log_tail(tmp_path: Path) -> None:
    """The watchdog sees the death at once (not at the next request), and `ensure_alive` fails the test with the
    signal and the last lines of the server's log; conftest adds the same report to a failing test, once."""
    from local_servers import ServerProcess, unreported_deaths

    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "print('serving on 127.0.0.1', flush=True); import time; time.sleep(60)"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess("demo server", process, log)
    try:
        deadline = time.monotonic() + 10
        while "serving" not in server.log_tail() and time.monotonic() < deadline:
            time.sleep(0.05)
        server.ensure_alive()  # alive: nothing happens
        os.kill(process.pid, signal.SIGSEGV)  # what a general protection fault does to a server
        deadline = time.monotonic() + 5
        while server.death is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.death is not None, "the watchdog did not notice the death within 5 s"
        with pytest.raises(pytest.fail.Exception) as failed:
            server.ensure_alive()
        message = str(failed.value)
        assert "demo server" in message and "was killed by signal 11 (SIGSEGV)" in message
        assert "serving on 127.0.0.1" in message  # the log tail
        assert [d for d in unreported_deaths() if "demo server" in d] == [server.death]
        assert not [d for d in unreported_deaths() if "demo server" in d]  # reported once
    finally:
        server.stop()


def test_a_server_stopped_by_its_test_is_not_a_death(tmp_path: Path) -> None:
    from local_servers import ServerProcess

    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    server = ServerProcess("quiet server", process, tmp_path / "none.log")
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 15 and process.returncode is not None
    assert server.death is None
    server.ensure_alive()  # stopped on purpose: not a failure


def test_exit_descriptions() -> None:
    from local_servers import describe_exit

    assert describe_exit(3) == "exited with 3"
    assert describe_exit(-9) == "was killed by signal 9 (SIGKILL)"
    assert describe_exit(-11) == "was killed by signal 11 (SIGSEGV)"


# --- the llama.cpp test server is built portably (issue: the suite hung on AMX machines) -----------------------

BUILD = REPO / "scripts" / "build_server.sh"
NATIVE_ONLY = ("AVX512", "AMX", "AVX_VNNI")


def build_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(BUILD), *args], capture_output=True, text=True, timeout=60, cwd=REPO)


def test_build_flags_exclude_native_cpu_code() -> None:
    flags = build_script("--print-flags").stdout.split()
    assert "-DGGML_NATIVE=OFF" in flags
    assert (
        "-DGGML_CPU_ALL_VARIANTS=OFF" in flags and "-DGGML_BACKEND_DL=OFF" in flags
    )  # no runtime pick of AMX
    for feature in (
        "AVX512",
        "AVX512_VBMI",
        "AVX512_VNNI",
        "AVX512_BF16",
        "AMX_TILE",
        "AMX_INT8",
        "AMX_BF16",
    ):
        assert f"-DGGML_{feature}=OFF" in flags
    assert not [f for f in flags if f.endswith("=ON")]
    # setup.sh builds the server only through this script, and pip cannot reuse a natively built cached wheel
    assert "bash scripts/build_server.sh" in (REPO / "scripts" / "setup.sh").read_text()
    assert "--no-cache-dir" in BUILD.read_text() and 'CMAKE_ARGS="$FLAGS"' in BUILD.read_text()


def test_a_server_venv_built_the_old_way_is_rebuilt(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    old = build_script("--check", str(venv))
    assert old.returncode == 1 and "no build stamp" in old.stdout
    flags = build_script("--print-flags").stdout.strip()
    (venv / ".build-stamp").write_text(
        f"llama-cpp-python[server]==0.3.36 CMAKE_ARGS={flags} -DGGML_NATIVE=ON\n"
    )
    other = build_script("--check", str(venv))
    assert other.returncode == 1 and "other flags" in other.stdout
    (venv / ".build-stamp").write_text(f"llama-cpp-python[server]==0.3.36 CMAKE_ARGS={flags}\n")
    no_package = build_script("--check", str(venv))  # stamp right, but llama_cpp does not import here
    assert no_package.returncode == 1 and "does not import" in no_package.stdout


@pytest.mark.server
def test_the_built_server_has_no_native_only_cpu_code() -> None:
    """What the build produced, not what we asked for: llama.cpp's own report of its compiled CPU features,
    and (where objdump exists) no AVX-512 register or AMX tile instruction in libggml-cpu."""
    from llama_server import SERVER_PYTHON, require_server

    require_server()
    venv = SERVER_PYTHON.parent.parent
    assert build_script("--check", str(venv)).stdout.strip() == "up to date"
    info = subprocess.run(
        [str(SERVER_PYTHON), "-c", "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "CPU :" in info, info
    assert not [f for f in NATIVE_ONLY if f in info], info
    if shutil.which("objdump"):
        [lib] = list(venv.glob("lib/python*/site-packages/llama_cpp/lib/libggml-cpu.so"))
        code = subprocess.run(
            ["objdump", "-d", "--no-show-raw-insn", str(lib)], capture_output=True, text=True, timeout=120
        ).stdout
        assert "%ymm" in code  # the disassembly is real (AVX2 code is expected)
        assert not re.search(r"%zmm|\btdpb|\bldtilecfg|\btileloadd", code)
