"""Figures of a benchmark's run records, written as PNG files.

- learning_curves: a metric against K (examples per class), one line per method, mean ± std over seeds.
- accuracy_vs_time: mean accuracy against mean training time, one point per method and K.
- reliability_diagrams and risk_coverage_curves: in calibration_plots.py.
- all_plots: all of them into one folder.

curve_points is the numbers behind the learning curves, for tests and for reports.

Every function takes records as load_runs returns them, writes one file per dataset with a
deterministic name, skips datasets (and methods) that lack the data a figure needs, and returns the
paths it wrote. Figures are built as figures.py builds them: matplotlib Figure objects drawn by the
Agg canvas, never through pyplot, and matplotlib imported on first use only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from ..numeric import mean_std
from .calibration_plots import reliability_diagrams, risk_coverage_curves
from .figures import by_dataset, label_colors, new_figure, safe_name, save_figure
from .records import label

# Fractions shown as percentages; other metrics (nll, brier, seconds) keep their own unit.
PERCENT_METRICS = frozenset({"accuracy", "macro_f1", "ece"})
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro F1", "ece": "ECE", "nll": "NLL", "brier": "Brier score"}

# A log axis cannot show 0 s: methods that do not train (zero-shot prompting) sit at this floor.
MIN_SECONDS = 0.01

def _value(record: dict, key: str) -> float | None:
    # Old records lack ece/nll/brier, and a metric that could not be computed is stored as null or NaN.
    v = record.get(key)
    if v is None or isinstance(v, bool):
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def curve_points(records: Iterable[dict], metric: str = "accuracy") -> dict[str, list[tuple[int, float, float, int]]]:
    """Per method label, (K, mean, std, n_seeds) of `metric` for each K, in K order, in the metric's own unit.

    Records without the metric are left out; a method with none at all has no entry.
    """
    values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        v = _value(r, metric)
        if v is not None:
            values[label(r)][int(r["K"])].append(v)
    return {
        name: [(k, *mean_std(per_k[k]), len(per_k[k])) for k in sorted(per_k)]
        for name, per_k in sorted(values.items())
    }


def _metric_axis(metric: str) -> tuple[float, str]:
    name = METRIC_NAMES.get(metric, metric)
    return (100.0, f"{name} (%)") if metric in PERCENT_METRICS else (1.0, name)


def _set_k_axis(ax, ks: list[int]) -> None:
    from matplotlib.ticker import NullLocator

    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, labels=[str(k) for k in ks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(min(ks) / 1.4, max(ks) * 1.4)


def _learning_curve_figure(dataset: str, records: list[dict], metric: str):
    points = curve_points(records, metric)
    if not points:
        return None
    scale, ylabel = _metric_axis(metric)
    colors = label_colors(list(points))
    fig = new_figure(7.5, 4.8)
    ax = fig.add_subplot()
    for name, rows in points.items():
        ks = [k for k, *_ in rows]
        means = [m * scale for _, m, _, _ in rows]
        stds = [s * scale for _, _, s, _ in rows]
        ax.plot(ks, means, marker="o", color=colors[name], label=name)
        if any(n > 1 for *_, n in rows):
            ax.fill_between(ks, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)],
                            color=colors[name], alpha=0.2, linewidth=0)
    seeds = max(n for rows in points.values() for *_, n in rows)
    _set_k_axis(ax, sorted({k for rows in points.values() for k, *_ in rows}))
    ax.set_xlabel("K (examples per class)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{dataset}: {metric} vs K (mean ± std over {seeds} seed{'s' if seeds != 1 else ''})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def learning_curves(records: Iterable[dict], out_dir: str | Path, metric: str = "accuracy") -> list[Path]:
    """One PNG per dataset, learning_curve_{dataset}_{metric}.png: `metric` against K, one line per method.

    Each line is the mean over seeds with a band of ± one sample std where a K has more than one seed.
    accuracy, macro_f1 and ece are shown in percent, others (nll, brier) as they are. Datasets where
    no record has the metric get no file.
    """
    out_dir = Path(out_dir)
    written = []
    for dataset, rows in by_dataset(records).items():
        fig = _learning_curve_figure(dataset, rows, metric)
        if fig is not None:
            written.append(save_figure(fig, out_dir / f"learning_curve_{safe_name(dataset)}_{safe_name(metric)}.png"))
    return written


def _accuracy_vs_time_figure(dataset: str, records: list[dict]):
    pairs: dict[str, dict[int, tuple[list[float], list[float]]]] = defaultdict(lambda: defaultdict(lambda: ([], [])))
    for r in records:
        acc, seconds = _value(r, "accuracy"), _value(r, "train_seconds")
        if acc is not None and seconds is not None:
            times, accs = pairs[label(r)][int(r["K"])]
            times.append(max(seconds, MIN_SECONDS))
            accs.append(acc * 100.0)
    if not pairs:
        return None
    series = {}
    for name in sorted(pairs):
        ks = sorted(pairs[name])
        times = [mean_std(pairs[name][k][0]) for k in ks]
        accs = [mean_std(pairs[name][k][1]) for k in ks]
        series[name] = ks, times, accs
    colors = label_colors(list(series))
    fig = new_figure(7.5, 4.8)
    ax = fig.add_subplot()
    ax.set_xscale("log")
    all_x = {m for _, times, _ in series.values() for m, _ in times}
    if len(all_x) == 1:
        # One time for every point (e.g. all at MIN_SECONDS): autoscaling would give a zero-width axis.
        x = all_x.pop()
        ax.set_xlim(x / 3, x * 3)
    for name, (ks, times, accs) in series.items():
        x, y = [m for m, _ in times], [m for m, _ in accs]
        # A log axis cannot go to 0 or below: the left error bar stops short of it.
        xerr = [[min(s, 0.9 * m) for m, s in times], [s for _, s in times]]
        ax.errorbar(x, y, xerr=xerr, yerr=[s for _, s in accs], marker="o", color=colors[name], capsize=3,
                    label=name)
        for k, xi, yi in zip(ks, x, y):
            ax.annotate(f"K={k}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7,
                        color=colors[name])
    ax.set_xlabel("train time (s, mean over seeds, log scale)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{dataset}: accuracy vs train time (mean ± std over seeds)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def accuracy_vs_time(records: Iterable[dict], out_dir: str | Path) -> list[Path]:
    """One PNG per dataset, accuracy_vs_time_{dataset}.png: mean accuracy (%) against mean train seconds.

    One point per method and K, with std-over-seeds error bars on both axes; a method's points are
    joined in K order and labelled "K=..". The time axis is logarithmic, so train times under
    MIN_SECONDS (methods that do not train) are drawn at MIN_SECONDS.
    """
    out_dir = Path(out_dir)
    written = []
    for dataset, rows in by_dataset(records).items():
        fig = _accuracy_vs_time_figure(dataset, rows)
        if fig is not None:
            written.append(save_figure(fig, out_dir / f"accuracy_vs_time_{safe_name(dataset)}.png"))
    return written


def all_plots(records: Iterable[dict], out_dir: str | Path) -> list[Path]:
    """Every figure into out_dir (created): learning curves of accuracy and of ECE (where recorded),
    reliability diagrams at each dataset's largest K with bins, accuracy against train time, and
    risk-coverage curves at each dataset's largest K with selective points (where recorded)."""
    records = list(records)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        *learning_curves(records, out_dir, "accuracy"),
        *learning_curves(records, out_dir, "ece"),
        *reliability_diagrams(records, out_dir),
        *accuracy_vs_time(records, out_dir),
        *risk_coverage_curves(records, out_dir),
    ]
