#!/usr/bin/env bash
# Issue 22: the built-in English data sets run as a user's file would be (`--as-user-file`: texts and
# labels only, their templates and label words withheld), every method on the same draws: calibrated
# zero-shot (the generic templates' ensemble, and the single best by CV), hybrid, prompt, setfit, the
# SetFit library (.venv-anchors, `bash scripts/anchors-venv.sh`) and auto (the portfolio cross-validated
# on the shots, bounded by a time budget). One JSONL, resumable; seeds run one at a time over every
# data set, so an interrupted run still covers all of them.
#
#   bash benchmarks/user_files.sh                    # K=8, seeds 0-1, 200 test texts (~2 h here)
#   SEEDS="0 1 2 3 4" SHOTS=8,16 bash benchmarks/user_files.sh   # the issue's full grid (~8 h on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
fewtune=".venv/bin/fewtune"
OUT=${OUT:-benchmarks/results/user_files.jsonl}
SEEDS=${SEEDS:-0 1}
SHOTS=${SHOTS:-8}
MAX_TEST=${MAX_TEST:-200}
DATASETS=${DATASETS:-mr,tweets,bbc,rt-subj,imdb}
METHODS=${METHODS:-setfit,zero-shot,zero-shot:template_search=best,hybrid,prompt,auto:time_budget=240}

PYTHON=${PYTHON:-.venv-anchors/bin/python}       # has setfit; fewtune is installed there editable
"$fewtune" models install smollm2-135m --quiet   # once: the GGUF conversion, then cached
for seed in $SEEDS; do
  "$fewtune" bench --as-user-file --dataset "$DATASETS" --shots "$SHOTS" --seeds "$seed-$seed" \
    --max-test "$MAX_TEST" --max-tokens 128 --methods "$METHODS" --baselines majority,setfit-lib --python "$PYTHON" --no-report -o "$OUT"
done
"$fewtune" report "$OUT" --title "Built-in data sets as a user's file (no template, no label words)"

# Chinese, the same mode: THUCNews headlines with the English class names as the only hint, the LM
# methods on gemma3-270m (multilingual), setfit and hybrid's encoder on MiniLM. Seed 0 only here.
if [ -n "${THUCNEWS-1}" ];  then
  "$fewtune" models install gemma3-270m --quiet
  T=(--as-user-file --dataset thucnews --shots "$SHOTS" --seeds 0-0 --max-test "$MAX_TEST" --max-tokens 64
     --no-report -o "${OUT%.jsonl}_thucnews.jsonl")
  "$fewtune" bench "${T[@]}" --backbone gemma3-270m --methods "zero-shot,zero-shot:template_search=best,auto:time_budget=600" --baselines majority
  "$fewtune" bench "${T[@]}" --backbone minilm --methods "setfit,hybrid:lm=gemma3-270m" --baselines ""
  "$fewtune" report "${OUT%.jsonl}_thucnews.jsonl" --title "THUCNews as a user's file (English class names only)"
fi
