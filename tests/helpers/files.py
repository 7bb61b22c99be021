"""Data files written by tests."""

from __future__ import annotations

import csv
from pathlib import Path


def write_csv(path: Path, rows, header=("text", "label"), encoding: str = "utf-8") -> Path:
    """A CSV file of `rows` under `header`, as a spreadsheet would save it."""
    with open(path, "w", newline="", encoding=encoding) as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path
