"""Where a benchmark ran, written beside its results: the machine, the library versions, the fewtune commit.

One place for every record: `fewtune bench`'s runs, the recommendation runs and the scripts under benchmarks/.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

VERSIONED = ("torch", "transformers", "sentence-transformers", "peft", "setfit", "datasets", "scikit-learn",
             "numpy", "fewtune")


def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "processor": platform.machine(),
            "python": platform.python_version()}


def versions(names=VERSIONED) -> dict[str, str | None]:
    """Each distribution's installed version, None where it is not installed."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def fewtune_git() -> str | None:
    """The checkout's commit, "+dirty" when src or pyproject.toml differ from it; None outside a git checkout."""
    root = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "pyproject.toml"], cwd=root,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def run_context(*packages: str) -> dict:
    """The machine, the versions of `packages` (default: VERSIONED) and the commit, for a benchmark's rows."""
    return {"machine": machine(), "versions": versions(packages or VERSIONED), "fewtune_git": fewtune_git()}


def in_fresh_process(script: str, *args: str) -> dict:
    """Run `python SCRIPT --one ARGS`, a benchmark's child process (so its peak memory is its own), and return
    the JSON object it printed last, with the 1-minute load average from before it started."""
    load = os.getloadavg()[0]
    child = subprocess.run([sys.executable, script, "--one", *args], check=True, capture_output=True, text=True)
    return {**json.loads(child.stdout.strip().splitlines()[-1]), "load_avg_1min_before": round(load, 2)}


def write_rows(path, rows: list[dict], *packages: str) -> None:
    """A benchmark's rows as JSON lines in `path`, each with run_context(*packages)."""
    context = run_context(*packages)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({**row, **context}) + "\n" for row in rows)
