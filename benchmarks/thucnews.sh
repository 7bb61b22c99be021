#!/usr/bin/env bash
# Chinese end to end: THUCNews headlines (10 topics) at K = 4 and 8, 3 seeds, the same draws for
# every method: zero-shot, prompt and finetune (full and LoRA) on gemma3-270m beside setfit on
# minilm (English-only: the baseline the issue measured near chance on Chinese). One JSONL, resumable:
# run it again after an interruption and finished runs are skipped. Then the report (tables, plots).
# Zero-shot trains nothing, so every draw gives it the same answer: it runs on seed 0 only.
#
#   bash benchmarks/thucnews.sh                 # the full run (~1 h here)
#   SEEDS=1 SHOTS=4 MAX_TEST=50 OUT=/tmp/thucnews.jsonl bash benchmarks/thucnews.sh   # a smoke run
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
fewtune=".venv/bin/fewtune"
OUT=${OUT:-benchmarks/results/thucnews.jsonl}
SEEDS=${SEEDS:-3}
SHOTS=${SHOTS:-4,8}
MAX_TEST=${MAX_TEST:-300}
common=(--dataset thucnews --shots "$SHOTS" --max-test "$MAX_TEST" --no-report -o "$OUT")

"$fewtune" models install gemma3-270m --quiet   # once: the GGUF conversion (a few minutes), then cached
"$fewtune" bench "${common[@]}" --seeds 1 --backbone gemma3-270m --methods zero-shot --baselines majority
"$fewtune" bench "${common[@]}" --seeds "$SEEDS" --backbone gemma3-270m --methods "prompt,finetune,finetune:lora=true" --baselines ""
"$fewtune" bench "${common[@]}" --seeds "$SEEDS" --backbone minilm --methods setfit --baselines ""
"$fewtune" report "$OUT" --title "THUCNews (Chinese, 10 topics): Gemma 3 270M vs setfit on MiniLM" \
  --compare "finetune (lora=True):setfit" --compare "prompt:setfit"
