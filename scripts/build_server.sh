#!/usr/bin/env bash
# Build llama-cpp-python's OpenAI-compatible server (the tests' real third-party endpoint) into a venv, portably.
#
#   bash scripts/build_server.sh [VENV]            build VENV (default .venv-server) unless it is up to date
#   bash scripts/build_server.sh --check [VENV]    say whether VENV is up to date (exit 0) or why not (exit 1)
#   bash scripts/build_server.sh --print-flags     the CMake flags a build uses here
#
# Why portable: pip's default compiles llama.cpp for the *native* CPU (GGML_NATIVE=ON); on Xeons that advertise
# AMX that server answers /v1/models and then dies on its first completion (a general protection fault in
# libggml-cpu.so). So: no native code paths, no AVX-512/AMX/AVX-VNNI kernels, one CPU backend (no runtime
# variants that would pick AMX again); AVX2/FMA/F16C (ggml's portable x86 tier) only when the CPU has AVX2, else
# the bare x86-64 baseline. docs/testing.md#the-llamacpp-test-server
# Every built venv carries a stamp (.build-stamp: the package and the flags); a venv without one was built the old
# way, and one with other flags is rebuilt: never guessed at.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
SPEC="llama-cpp-python[server]==0.3.36"

flags() {
  local f="-DGGML_NATIVE=OFF -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_BACKEND_DL=OFF"
  f+=" -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF"
  f+=" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_AVX_VNNI=OFF"
  if [ "$(uname -m)" = "x86_64" ] && ! grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
    f+=" -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_BMI2=OFF"
  fi
  echo "$f"
}

# Why VENV must be (re)built, or nothing when it is up to date.
stale_reason() {
  local venv=$1 want
  want="$SPEC CMAKE_ARGS=$(flags)"
  if [ ! -x "$venv/bin/python" ]; then echo "no server venv at $venv"; return; fi
  if [ ! -f "$venv/.build-stamp" ]; then
    echo "$venv has no build stamp (built before portable builds, for the native CPU)"; return
  fi
  if [ "$(cat "$venv/.build-stamp")" != "$want" ]; then echo "$venv was built with other flags"; return; fi
  if ! "$venv/bin/python" -c "import llama_cpp.server" 2>/dev/null; then echo "llama_cpp.server does not import"; fi
}

case "${1:-}" in
  --print-flags) flags; exit 0 ;;
  --check)
    reason=$(stale_reason "${2:-.venv-server}")
    if [ -n "$reason" ]; then echo "rebuild: $reason"; exit 1; fi
    echo "up to date"; exit 0 ;;
esac

VENV=${1:-.venv-server}
reason=$(stale_reason "$VENV")
[ -z "$reason" ] && exit 0
FLAGS=$(flags)
echo "setup: building llama.cpp's server into $VENV ($reason); portable flags: $FLAGS" >&2
echo "setup: this is the slowest step of a first test run (about 3-5 min on 2 cores)" >&2
started=$(date +%s)
rm -rf "$VENV"
"$PY" -m venv "$VENV"
# --no-cache-dir: pip's wheel cache is keyed by the sdist, not by CMAKE_ARGS, so a wheel built natively earlier
# would be reused silently.
CMAKE_ARGS="$FLAGS" FORCE_CMAKE=1 CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" PIP_DISABLE_PIP_VERSION_CHECK=1 \
  "$VENV/bin/pip" install -q --no-cache-dir "$SPEC"
echo "$SPEC CMAKE_ARGS=$FLAGS" > "$VENV/.build-stamp"
echo "setup: llama.cpp's server built in $(( $(date +%s) - started )) s" >&2
