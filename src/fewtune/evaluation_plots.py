"""The figures of `fewtune evaluate --plot DIR`: a reliability diagram and a confusion matrix, as PNG files,
and the training loss curve of a model that kept one (`training.loss_curve` in fewtune.json, every step).

Both are drawn from the numbers evaluate already has, never recomputed: the reliability bins of
`metrics.calibration_report` (the bins of the ECE evaluate prints, so the diagram and the number agree)
and `metrics.classification_report`'s confusion matrix. A multi-label model has no confusion matrix (a
text may have several labels, or none); its reliability diagram is over every text × label yes/no
decision (`label_decision_calibration`).

matplotlib is imported on first use, through its Agg canvas and never through pyplot (no display, no
global figure state). Every figure is drawn before any file is written, and each file is written whole
or not at all (a temporary sibling and one rename). The PNG's Title field holds the figure's title, ECE
included, for a script (or a test) to read back.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import calibration_report
from .storage.atomic import atomic_write_bytes

RELIABILITY = "reliability.png"
CONFUSION = "confusion_matrix.png"
LOSS_CURVE = "loss_curve.png"
FIGURES = (RELIABILITY, CONFUSION, LOSS_CURVE)  # the names written into the --plot folder (replacing earlier ones)


def label_decision_calibration(truth, proba, n_bins: int = 10) -> dict[str, Any]:
    """`metrics.calibration_report` over a multi-label model's label decisions: each text × label is a
    yes/no answer (yes at probability 0.5 or more, as `predict` says) with confidence max(p, 1 - p),
    right when it matches the 0/1 `truth`. Both arguments are (texts × labels); the result has the keys
    of calibration_report (ECE, NLL and Brier of the yes/no answers, and the reliability bins)."""
    # The argmax of (p, 1 - p) is labels.THRESHOLD's decision because that threshold is 0.5.
    truth = np.asarray(truth).ravel()
    p = np.asarray(proba, dtype=float).ravel()
    # "yes" is the first column, so a probability of exactly 0.5 (a tie) is a yes, as predict has it.
    return calibration_report(np.where(truth == 1, "yes", "no"), np.column_stack([p, 1.0 - p]), ["yes", "no"],
                              n_bins=n_bins)


def reliability_title(ece: float, bins: list[dict], what: str) -> str:
    n = sum(int(b["n"]) for b in bins)
    return f"Reliability: ECE {ece:.4f} ({bin_count(bins)} bins, {n} {what})"


def bin_count(bins: list[dict]) -> int:
    """How many equal-width bins the (non-empty) bins come from: calibration_report drops empty ones."""
    return int(round(1.0 / (bins[0]["high"] - bins[0]["low"]))) if bins else 0


def reliability_figure(bins: list[dict], ece: float, what: str = "texts"):
    """Accuracy against confidence per bin (bars, with the diagonal of perfect calibration and each bin's
    mean confidence), and below it how many `what` each bin holds. Returns (figure, title)."""
    fig = _new_figure(6.0, 6.4)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    title = reliability_title(ece, bins, what)
    fig.suptitle(title)
    lows = [b["low"] for b in bins]
    widths = [b["high"] - b["low"] for b in bins]
    centers = [b["low"] + w / 2 for b, w in zip(bins, widths)]
    top.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="perfect calibration")
    top.bar(lows, [b["accuracy"] for b in bins], width=widths, align="edge", color="C0", edgecolor="black",
            linewidth=0.5, alpha=0.8, label="accuracy")
    top.scatter(centers, [b["confidence"] for b in bins], color="C3", marker="D", s=18, zorder=3,
                label="mean confidence")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.02)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left", fontsize="small")
    counts = [int(b["n"]) for b in bins]
    bottom.bar(lows, counts, width=widths, align="edge", color="C7", edgecolor="black", linewidth=0.5)
    for x, n in zip(centers, counts):
        bottom.annotate(str(n), (x, n), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                        fontsize="small")
    bottom.set_ylim(0, max(counts, default=1) * 1.3)
    bottom.set_ylabel(what)
    bottom.set_xlabel("confidence (the top probability)" if what == "texts"
                      else "confidence (max(p, 1 − p) of a yes/no)")
    return fig, title


def confusion_title(matrix) -> str:
    cm = np.asarray(matrix)
    n = int(cm.sum())
    return f"Confusion matrix: {n} texts, accuracy {np.trace(cm) / max(n, 1):.4f}"


def confusion_figure(matrix, labels: list[str]):
    """Counts of (true class, predicted class), the class names on both axes. Returns (figure, title)."""
    cm = np.asarray(matrix, dtype=int)
    k = len(labels)
    side = min(max(4.5, 0.55 * k + 2.5), 30.0)
    fig = _new_figure(side + 0.8, side)
    ax = fig.subplots()
    title = confusion_title(cm)
    ax.set_title(title)
    image = ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(int(cm.max(initial=0)), 1))
    fig.colorbar(image, ax=ax, shrink=0.8, label="texts")
    names = [_short(c) for c in labels]
    slanted = k > 3 or max(map(len, names), default=0) > 8
    ax.set_xticks(range(k), names, rotation=45 if slanted else 0, ha="right" if slanted else "center",
                  rotation_mode="anchor")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 40:  # beyond, the numbers would not fit in their cells: the colours say it
        high = cm.max(initial=0) / 2
        size = "medium" if k <= 10 else "small" if k <= 20 else "x-small"
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=size,
                        color="white" if cm[i, j] > high else "black")
    return fig, title


def loss_curve_figure(points: list[list[float]]):
    """The training loss at every step (a line; the steps of a long run drawn as one), on a log scale when
    it spans more than a factor of 20, as a loss falling toward 0 does. Returns (figure, title)."""
    steps = [int(step) for step, _ in points]
    losses = [float(loss) for _, loss in points]
    fig = _new_figure(6.4, 4.0)
    ax = fig.subplots()
    title = f"Training loss: {losses[0]:.4g} → {losses[-1]:.4g} over {steps[-1]} steps"
    ax.set_title(title)
    ax.plot(steps, losses, color="C0", linewidth=1, marker="o" if len(steps) <= 50 else None, markersize=3)
    positive = [v for v in losses if v > 0]
    if positive and len(positive) == len(losses) and max(positive) / min(positive) > 20:
        ax.set_yscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    return fig, title


def _short(name: object, limit: int = 24) -> str:
    name = str(name)
    return name if len(name) <= limit else name[: limit - 1] + "…"


def write_figures(report: dict, folder: str | Path, loss_curve: list | None = None) -> dict[str, Path]:
    """The figures of an evaluation report (what `experiment.held_out_report` returns; a multi-label one
    with "label_calibration" from label_decision_calibration) written into `folder` (made if missing,
    files of the same names replaced). Returns {"reliability": path, "confusion_matrix": path}, without
    the confusion matrix for a multi-label report; with "loss_curve" too when the model's curve
    ([[step, loss], ...], two points at least) is given."""
    folder = Path(folder)
    drawn: dict[str, tuple[Path, bytes]] = {}
    if report.get("multi_label"):
        if "label_calibration" not in report:
            raise ValueError("a multi-label report needs 'label_calibration' (label_decision_calibration) to plot")
        cal = report["label_calibration"]
        fig, title = reliability_figure(cal["reliability"], cal["ece"], what="label decisions")
        drawn["reliability"] = (folder / RELIABILITY, _png(fig, title))
    else:
        cal = report["calibration"]
        fig, title = reliability_figure(cal["reliability"], cal["ece"])
        drawn["reliability"] = (folder / RELIABILITY, _png(fig, title))
        fig, title = confusion_figure(report["confusion_matrix"], report["labels"])
        drawn["confusion_matrix"] = (folder / CONFUSION, _png(fig, title))
    if loss_curve and len(loss_curve) >= 2:
        fig, title = loss_curve_figure(loss_curve)
        drawn["loss_curve"] = (folder / LOSS_CURVE, _png(fig, title))
    folder.mkdir(parents=True, exist_ok=True)
    for path, data in drawn.values():
        atomic_write_bytes(path, data)
    return {name: path for name, (path, _) in drawn.items()}


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig, title: str) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Title": title, "Software": "fewtune evaluate --plot"})
    fig.clear()  # not registered with pyplot: clearing drops the artists at once
    return buffer.getvalue()
