"""Figures of a benchmark's run records, written as PNG files.

- learning_curves: a metric against K (examples per class), one line per method, mean ± std over seeds.
- reliability_diagrams: accuracy against confidence per bin, one panel per method, bins pooled over seeds.
- accuracy_vs_time: mean accuracy against mean training time, one point per method and K.
- risk_coverage_curves: accuracy on the most confident fraction of test examples against that fraction.
- all_plots: all of the above into one folder.

pooled_bins, curve_points and selective_points are the numbers behind the figures, for tests and for
reports.

Every function takes records as load_runs returns them, writes one file per dataset with a
deterministic name, skips datasets (and methods) that lack the data a figure needs, and returns the
paths it wrote. Figures are built as matplotlib Figure objects drawn by the Agg canvas, never through
pyplot: no GUI backend is ever chosen and no global figure state is left behind for other users of
matplotlib in the same process. matplotlib is imported on first use only, so importing this module
stays cheap for commands that draw nothing.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from .records import label

# Fractions shown as percentages; other metrics (nll, brier, seconds) keep their own unit.
PERCENT_METRICS = frozenset({"accuracy", "macro_f1", "ece"})
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro F1", "ece": "ECE", "nll": "NLL", "brier": "Brier score"}

# A log axis cannot show 0 s: methods that do not train (zero-shot prompting) sit at this floor.
MIN_SECONDS = 0.01

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_name(name: object) -> str:
    """A file-name part: every character other than [A-Za-z0-9_.-] becomes "_"."""
    return _UNSAFE.sub("_", str(name))


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


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1); the std of a single value is 0."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def _by_dataset(records: Iterable[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[str(r["dataset"])].append(r)
    return {d: groups[d] for d in sorted(groups)}


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
        name: [(k, *_mean_std(per_k[k]), len(per_k[k])) for k in sorted(per_k)]
        for name, per_k in sorted(values.items())
    }


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


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    # Not registered with pyplot, so nothing else holds it; clearing drops the artists at once.
    fig.clear()
    return path


def _colors(names: list[str]) -> dict[str, str]:
    # Fixed per label in sorted order, so a method keeps its colour across a dataset's figures.
    palette = [f"C{i}" for i in range(10)]
    return {name: palette[i % len(palette)] for i, name in enumerate(sorted(names))}


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
    colors = _colors(list(points))
    fig = _new_figure(7.5, 4.8)
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
    for dataset, rows in _by_dataset(records).items():
        fig = _learning_curve_figure(dataset, rows, metric)
        if fig is not None:
            written.append(_save(fig, out_dir / f"learning_curve_{safe_name(dataset)}_{safe_name(metric)}.png"))
    return written


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
    fig = _new_figure(3.2 * ncols + 0.4, 4.1 * nrows + 0.6)
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
    for dataset, rows in _by_dataset(records).items():
        k = pick_k(rows, K)
        fig = make_figure(dataset, rows, k) if k is not None else None
        if fig is not None:
            written.append(_save(fig, out_dir / f"{prefix}_{safe_name(dataset)}_K{k}.png"))
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
        times = [_mean_std(pairs[name][k][0]) for k in ks]
        accs = [_mean_std(pairs[name][k][1]) for k in ks]
        series[name] = ks, times, accs
    colors = _colors(list(series))
    fig = _new_figure(7.5, 4.8)
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
    for dataset, rows in _by_dataset(records).items():
        fig = _accuracy_vs_time_figure(dataset, rows)
        if fig is not None:
            written.append(_save(fig, out_dir / f"accuracy_vs_time_{safe_name(dataset)}.png"))
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
        name: [(c, *_mean_std(per_c[c]), len(per_c[c])) for c in sorted(per_c)]
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
    colors = _colors(list(points))
    fig = _new_figure(7.5, 4.8)
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
