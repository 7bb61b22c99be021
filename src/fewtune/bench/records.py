"""Benchmark run records: one JSON object per finished run, one line each in a .jsonl file.

A record holds the run's configuration (dataset, K, seed, method, params, key), its scores
(accuracy, macro_f1, ece, nll, brier and the reliability bins behind ECE), its cost (train_seconds,
predict_seconds, train_cpu_seconds, peak_rss_mb) and where it ran (machine, versions, fewtune_git).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import FewtuneError


def label(record: dict) -> str:
    """A method and its non-default parameters, e.g. "setfit (l2sp=1.0)": one row of a report."""
    params = record.get("params") or {}
    if not params:
        return record["method"]
    return record["method"] + " (" + ", ".join(f"{k}={v}" for k, v in sorted(params.items())) + ")"


def load_runs(path: str | Path) -> list[dict]:
    """Every finished run in a .jsonl file; a run recorded twice counts once (its later line).

    A line cut short by a crash is skipped: that run is simply missing (and a resumed benchmark
    does it again).
    """
    path = Path(path)
    if not path.exists():
        raise FewtuneError(f"{path}: no such runs file")
    records: dict[str, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "key" in record:
            records[record["key"]] = record
    return list(records.values())


def done_keys(path: str | Path) -> set[str]:
    path = Path(path)
    return {r["key"] for r in load_runs(path)} if path.exists() else set()


def cpu_seconds(record: dict) -> float:
    # Training CPU time when the run recorded it; older lines have only the whole process's.
    cpu = record.get("train_cpu_seconds")
    return cpu if cpu is not None else record["cpu_seconds"]
