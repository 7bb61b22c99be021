"""Calibration figures of a benchmark's run records, written as PNG files (the rest: plots.py).

- reliability_diagrams: accuracy against confidence per bin, one panel per method, bins pooled over seeds.
- risk_coverage_curves: accuracy on the most confident fraction of test examples against that fraction.

pooled_bins and selective_points are the numbers behind the figures, for tests and for reports. The
conventions are plots.py's: records as load_runs returns them, one file per dataset, figures built as
figures.py builds them (matplotlib imported on first use and never through pyplot).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from ..numeric import mean_std
from .figures import by_dataset, label_colors, new_figure, safe_name, save_figure
from .records import label


def pooled_bins(records: Iterable[dict]) -> tuple[list[dict], float]:
    """The reliability bins of several runs merged by bin range, and the ECE of the merged bins.

    A pooled bin's n is the sum of the runs' n, and its confidence and accuracy are n-weighted means,
    so the result is what one run on all the runs' test examples together would have reported. ECE is
    sum over bins of n / N_total * |confidence - accuracy|. Records without "reliability" add nothing;
    with no bins at all the result is ([], nan).
    """
    pooled: dict[tuple[float, float], list[float]] = {}
    for r in records:
        for b in r.get("reliability") or ():
            n = int(b["n"])
            if n <= 0:
                continue
            # Rounded so that 0.1 and 0.1000000001 from different runs land in the same bin.
            key = (round(float(b["low"]), 9), round(float(b["high"]), 9))
            acc = pooled.setdefault(key, [0, 0.0, 0.0])
            acc[0] += n
            acc[1] += n * float(b["confidence"])
            acc[2] += n * float(b["accuracy"])
    bins = [
        {"low": low, "high": high, "n": int(n), "confidence": conf / n, "accuracy": correct / n}
        for (low, high), (n, conf, correct) in sorted(pooled.items())
    ]
    total = sum(b["n"] for b in bins)
    if total == 0:
        return [], float("nan")
    return bins, sum(b["n"] / total * abs(b["confidence"] - b["accuracy"]) for b in bins)


def _reliability_k(records: list[dict], K: int | None) -> int | None:
    with_bins = sorted({int(r["K"]) for r in records if r.get("reliability")})
    if K is None:
        return with_bins[-1] if with_bins else None
    return int(K) if int(K) in with_bins else None


def _reliability_figure(dataset: str, records: list[dict], K: int):
    by_method: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if int(r["K"]) == K and r.get("reliability"):
            by_method[label(r)].append(r)
    if not by_method:
        return None
    names = sorted(by_method)
    ncols = min(4, len(names))
    nrows = math.ceil(len(names) / ncols)
    # Square panels plus a two-line title and an axis label each: taller than wide, or they overlap.
    fig = new_figure(3.2 * ncols + 0.4, 4.1 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    for i, ax in enumerate(axes.flat):
        if i >= len(names):
            ax.set_visible(False)
            continue
        name = names[i]
        bins, ece = pooled_bins(by_method[name])
        ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1)
        ax.bar([b["low"] for b in bins], [b["accuracy"] for b in bins], width=[b["high"] - b["low"] for b in bins],
               align="edge", color="C0", edgecolor="black", linewidth=0.5, alpha=0.8, label="accuracy")
        # Mean confidence of each bin: the gap to the bar top is that bin's miscalibration.
        ax.plot([(b["low"] + b["high"]) / 2 for b in bins], [b["confidence"] for b in bins],
                linestyle="none", marker="_", markersize=10, color="C3", label="confidence")
        runs = len(by_method[name])
        ax.set_title(f"{name}\nECE {ece * 100:.1f}% ({runs} run{'s' if runs != 1 else ''}, "
                     f"n={sum(b['n'] for b in bins)})", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        if i % ncols == 0:
            ax.set_ylabel("accuracy")
        if i // ncols == nrows - 1 or i + ncols >= len(names):
            ax.set_xlabel("confidence")
            ax.tick_params(labelbottom=True)
    axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{dataset}: reliability at K={K} (bins pooled over seeds)")
    return fig


def reliability_diagrams(records: Iterable[dict], out_dir: str | Path, K: int | None = None) -> list[Path]:
    """One PNG per dataset, reliability_{dataset}_K{K}.png: a reliability diagram per method at one K.

    K defaults to each dataset's largest K that has reliability bins. A method's bins are pooled over
    its seeds (see pooled_bins) and the pooled ECE is in its panel's title. Methods without
    "reliability" get no panel, and datasets with no bins at that K no file.
    """
    return _one_k_per_dataset(records, out_dir, K, _reliability_k, _reliability_figure, "reliability")


def _one_k_per_dataset(records, out_dir, K, pick_k, make_figure, prefix: str) -> list[Path]:
    """{prefix}_{dataset}_K{k}.png per dataset, at K or at the K pick_k(rows, K) chooses for it."""
    out_dir = Path(out_dir)
    written = []
    for dataset, rows in by_dataset(records).items():
        k = pick_k(rows, K)
        fig = make_figure(dataset, rows, k) if k is not None else None
        if fig is not None:
            written.append(save_figure(fig, out_dir / f"{prefix}_{safe_name(dataset)}_K{k}.png"))
    return written


def _selective(record: dict) -> list[tuple[float, float]]:
    """A record's (coverage, accuracy) points; old records lack "selective", and broken points are dropped."""
    out = []
    for p in record.get("selective") or ():
        try:
            coverage, accuracy = float(p["coverage"]), float(p["accuracy"])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(coverage) and math.isfinite(accuracy) and 0.0 < coverage <= 1.0:
            # Rounded so that 0.3 and 0.30000000000000004 from different runs are one coverage.
            out.append((round(coverage, 9), accuracy))
    return out


def selective_points(records: Iterable[dict]) -> dict[str, list[tuple[float, float, float, int]]]:
    """Per method label, (coverage, mean, std, n_seeds) of the selective accuracy at each coverage, in
    coverage order; accuracy is a fraction (the accuracy on the answered examples only).

    Mean and std (ddof=1) are over the records given, so pass one dataset's records at one K. Records
    without "selective" are left out; a method with none at all has no entry.
    """
    values: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        for coverage, accuracy in _selective(r):
            values[label(r)][coverage].append(accuracy)
    return {
        name: [(c, *mean_std(per_c[c]), len(per_c[c])) for c in sorted(per_c)]
        for name, per_c in sorted(values.items())
    }


def _selective_k(records: list[dict], K: int | None) -> int | None:
    with_points = sorted({int(r["K"]) for r in records if _selective(r)})
    if K is None:
        return with_points[-1] if with_points else None
    return int(K) if int(K) in with_points else None


def _risk_coverage_figure(dataset: str, records: list[dict], K: int):
    points = selective_points([r for r in records if int(r["K"]) == K])
    if not points:
        return None
    colors = label_colors(list(points))
    fig = new_figure(7.5, 4.8)
    ax = fig.add_subplot()
    for name, rows in points.items():
        coverages = [c for c, *_ in rows]
        means = [m * 100.0 for _, m, _, _ in rows]
        stds = [s * 100.0 for _, _, s, _ in rows]
        ax.plot(coverages, means, marker="o", markersize=4, color=colors[name], label=name)
        if any(n > 1 for *_, n in rows):
            ax.fill_between(coverages, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)],
                            color=colors[name], alpha=0.2, linewidth=0)
    seeds = max(n for rows in points.values() for *_, n in rows)
    ax.set_xlim(0, 1)
    ax.set_xlabel("coverage (fraction of test examples answered, most confident first)")
    ax.set_ylabel("accuracy among answered (%)")
    ax.set_title(f"{dataset}, K={K}: accuracy when answering only the most confident "
                 f"(mean over {seeds} seed{'s' if seeds != 1 else ''})", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def risk_coverage_curves(records: Iterable[dict], out_dir: str | Path, K: int | None = None) -> list[Path]:
    """One PNG per dataset, risk_coverage_{dataset}_K{K}.png: selective accuracy (%) against coverage.

    A record's "selective" points give, for each coverage c, the accuracy on the fraction c of its
    test examples the model is most confident about (abstaining on the rest). One line per method:
    the mean over seeds at each coverage, with a band of ± one sample std where there is more than one
    seed (see selective_points). K defaults to each dataset's largest K with selective points. Methods
    without "selective" get no line, and datasets with none at that K no file.
    """
    return _one_k_per_dataset(records, out_dir, K, _selective_k, _risk_coverage_figure, "risk_coverage")
