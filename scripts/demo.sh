#!/usr/bin/env bash
# The main job, offline on CPU (placeholder until the sharded evals land).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "demo: evals not built yet"
