#!/usr/bin/env bash
# fewtune's main job on a fresh machine: install, then few-shot train the default method on the
# default backbone with 8 examples per class of a built-in dataset, and print held-out accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/fewtune train --dataset "${DATASET:-bbc}" --shots "${SHOTS:-8}" --seed "${SEED:-0}" -p max_tokens=64 "$@"
