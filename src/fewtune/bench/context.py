"""Where a benchmark ran, written beside its results: the machine, the library versions, the fewtune commit.

One place for `fewtune bench`'s runs, the recommendation runs and the benchmarks/ scripts that use it (some older
ones still write their own machine fields, in their own shapes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from collections.abc import Callable
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


def run_in_fresh_processes(script: str, cases: list[tuple[dict, list[str]]], out, *packages: str) -> list[dict]:
    """A benchmark's rows, one per case, each measured by `python SCRIPT --one ARGS` in a process of its own (so
    its peak memory is its own): the case's fields, the JSON object the child printed last and the 1-minute load
    average from before it started. Printed as they finish; written to `out` as JSON lines, each with
    run_context(*packages)."""
    rows = []
    for fields, args in cases:
        load = os.getloadavg()[0]
        child = subprocess.run([sys.executable, script, "--one", *args], check=True, capture_output=True, text=True)
        rows.append({**fields, **json.loads(child.stdout.strip().splitlines()[-1]),
                     "load_avg_1min_before": round(load, 2)})
        print(json.dumps(rows[-1]), flush=True)
    context = run_context(*packages)
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({**row, **context}) + "\n" for row in rows)
    return rows


def parse_or_run_one(parser: argparse.ArgumentParser, one: Callable[..., dict],
                     arguments: int) -> argparse.Namespace | None:
    """A fresh-process benchmark's command line: parser's options, plus the hidden `--one ARGS` with which
    run_in_fresh_processes starts each case. In that child, prints one(*ARGS) (strings, as the case gave them) as
    JSON for the parent to read, and returns None; otherwise returns the parsed options."""
    parser.add_argument("--one", nargs=arguments, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one)))
        return None
    return args
