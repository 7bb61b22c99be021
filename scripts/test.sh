#!/usr/bin/env bash
# The test suite on a fresh machine: install, then run every test except those marked slow
# (real causal LMs and model installs; run them with: .venv/bin/python -m pytest -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest -m "not slow" -q "$@"
