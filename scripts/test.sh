#!/usr/bin/env bash
# The test command (README, CI): set up everything on a fresh machine, lint, run the whole suite offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --server
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false
export LITELLM_LOCAL_MODEL_COST_MAP=True INSPECT_LOG_LEVEL=warning
export USERLM_REQUIRE_SERVER=1   # tests that need the llama.cpp server fail instead of skipping
.venv/bin/ruff check .
# -q prints the summary line ("N passed in S s"); the slowest tests are named so a slow-down is visible in CI.
exec .venv/bin/python -m pytest -q --durations=5 "$@"
