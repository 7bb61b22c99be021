"""What every benchmark figure shares (plots.py, calibration_plots.py): records grouped by dataset, a
colour fixed per method label, file-name-safe names, and a matplotlib Figure drawn by the Agg canvas.

Figures are never built through pyplot: no GUI backend is ever chosen and no global figure state is left
behind for other users of matplotlib in the same process. matplotlib is imported on first use only, so
importing the figure modules stays cheap for commands that draw nothing.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Iterable

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_name(name: object) -> str:
    """A file-name part: every character other than [A-Za-z0-9_.-] becomes "_"."""
    return _UNSAFE.sub("_", str(name))


def by_dataset(records: Iterable[dict]) -> dict[str, list[dict]]:
    """The records of each dataset, datasets in sorted order."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[str(r["dataset"])].append(r)
    return {d: groups[d] for d in sorted(groups)}


def label_colors(names: list[str]) -> dict[str, str]:
    """A matplotlib colour per label, fixed in sorted order, so a method keeps its colour across a dataset's
    figures."""
    palette = [f"C{i}" for i in range(10)]
    return {name: palette[i % len(palette)] for i, name in enumerate(sorted(names))}


def new_figure(width: float, height: float):
    """An empty Figure (inches) on its own Agg canvas, with constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: Path) -> Path:
    """Write `fig` to `path` as PNG (its folder created) and clear it; returns path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    # Not registered with pyplot, so nothing else holds it; clearing drops the artists at once.
    fig.clear()
    return path
