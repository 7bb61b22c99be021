#!/usr/bin/env bash
# Create .venv-anchors: the SetFit library (setfit==1.2.0, see requirements/anchors.txt) plus fewtune
# itself, for benchmarks/encoder_methods.py. Kept apart from .venv because setfit pulls in datasets
# and evaluate, which fewtune does not need. Safe to run again: it reinstalls only when the
# install files changed.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-anchors
if [ ! -x "$venv/bin/python" ]; then
  py=$(command -v python3.11 || command -v python3)
  "$py" -m venv "$venv"
fi
pip_install() {
  # Drop pip's warnings about this machine's missing local index folders (harmless, one per package).
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}
stamp=$venv/.anchors-install-stamp
want=$(cat pyproject.toml requirements/*.txt | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing setfit and fewtune into $venv (first run: a few minutes)" >&2
  # torch first, the CPU wheel; the constraints file keeps every later step from swapping it for a
  # multi-GB CUDA build.
  pip_install -c requirements/constraints.txt torch==2.13.0
  pip_install -c requirements/constraints.txt -r requirements/anchors.txt
  pip_install -c requirements/constraints.txt -e .
  pip_install --no-deps -r requirements/no-deps.txt
  "$venv/bin/python" - <<'PY'
import sys
from importlib.metadata import version
import torch
if not torch.__version__.startswith("2.13.0"):
    sys.exit(f"expected torch 2.13.0 (CPU), found {torch.__version__}: check requirements/constraints.txt")
import setfit, fewtune  # noqa: F401  (both must import in the same venv)
print("anchors venv:", ", ".join(f"{p} {version(p)}" for p in
      ("torch", "transformers", "sentence-transformers", "setfit", "datasets", "fewtune")), file=sys.stderr)
PY
  echo "$want" > "$stamp"
fi
