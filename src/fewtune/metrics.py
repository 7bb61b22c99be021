"""Classification metrics as plain JSON-ready dicts (scikit-learn does the arithmetic).

scikit-learn is imported by the functions that use it, so that the modules importing these at their top
(the held-out reports, evaluation_plots, the benchmark worker) stay cheap to import.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_report(y_true, y_pred, classes) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    `classes` fixes the row/column order; labels in y_true that the model does not know are added
    at the end so that nothing is silently dropped. Labels compare as text, so a model trained on a
    CSV's "1" scores correctly on a JSONL file's 1.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    y_true = [str(v) for v in y_true]
    y_pred = [str(v) for v in y_pred]
    labels = [str(c) for c in classes]
    labels += sorted(set(y_true) - set(labels))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, c in enumerate(labels)
        },
        "labels": labels,
        "confusion_matrix": np.asarray(cm).tolist(),
    }


def multilabel_report(y_true: np.ndarray, y_pred: np.ndarray, classes) -> dict[str, Any]:
    """Subset accuracy (every label of a text right), micro/macro-F1, Hamming loss and per-label scores.

    Both arguments are 0/1 indicator matrices with columns in `classes` order.
    """
    from sklearn.metrics import accuracy_score, f1_score, hamming_loss, precision_recall_fscore_support

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    labels = [str(c) for c in classes]
    return {
        "n": int(len(y_true)),
        "multi_label": True,
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "hamming_loss": float(hamming_loss(y_true, y_pred)),
        "per_class": {
            c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, c in enumerate(labels)
        },
        "labels": labels,
    }


def calibration_report(y_true, proba: np.ndarray, classes, n_bins: int = 10) -> dict[str, Any]:
    """How far the predicted probabilities can be trusted: ECE, negative log-likelihood and Brier score.

    ECE is the top-label expected calibration error over `n_bins` equal-width confidence bins (the
    gap between confidence and accuracy, weighted by the share of examples in each bin); the bins
    themselves are returned for a reliability diagram. NLL is the mean −log p(true class), with p
    clipped at 1e-12 so one confident mistake is large but finite. Brier is the mean squared error
    of the probability vector against the one-hot truth, summed over classes (0 is perfect, 2 worst).
    Labels the model does not know count as wrong with probability 0.
    """
    from sklearn.metrics import brier_score_loss, log_loss

    proba = np.asarray(proba, dtype=float)
    index = {str(c): i for i, c in enumerate(classes)}
    truth = np.array([index.get(str(v), -1) for v in y_true])
    known = truth >= 0
    confidence, predicted = proba.max(1), proba.argmax(1)
    correct = (predicted == truth).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        members = which == b
        if not members.any():
            continue
        conf, acc = float(confidence[members].mean()), float(correct[members].mean())
        ece += members.mean() * abs(conf - acc)
        bins.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": int(members.sum()),
                     "confidence": conf, "accuracy": acc})
    # NLL and Brier are scikit-learn's on the texts whose label the model knows; a text with an unknown
    # label adds −log(1e-12) (probability 0, clipped) and Σ p² (nothing of the truth was predicted).
    n, k = len(truth), proba.shape[1]
    nll_known = brier_known = 0.0
    if known.any():
        nll_known = log_loss(truth[known], proba[known], labels=np.arange(k), normalize=False)
        brier_known = known.sum() * brier_score_loss(truth[known], proba[known], labels=np.arange(k),
                                                     scale_by_half=False)
    unknown = ~known
    return {
        "ece": float(ece),
        "nll": float((nll_known - unknown.sum() * np.log(1e-12)) / n),
        "brier": float((brier_known + (proba[unknown] ** 2).sum()) / n),
        "reliability": bins,
    }


def risk_coverage(y_true, proba: np.ndarray, classes, levels: int = 10) -> list[dict[str, float]]:
    """Accuracy when answering only the most confident share of examples (abstaining on the rest).

    One point per coverage 1/levels, 2/levels, ..., 1: the accuracy on the ceil(coverage · n)
    examples with the highest top-class probability. Examples tied at the cut count with their
    group's mean accuracy (the expectation over which of them would be answered), so a model that
    gives every text the same confidence has a flat curve, not one that depends on the data order.
    A model whose confidence means something has a curve that falls as coverage grows.
    """
    proba = np.asarray(proba, dtype=float)
    index = {str(c): i for i, c in enumerate(classes)}
    truth = np.array([index.get(str(v), -1) for v in y_true])
    correct = (proba.argmax(1) == truth).astype(float)
    confidence = proba.max(1)
    points = []
    for j in range(1, levels + 1):
        n = max(1, int(np.ceil(j / levels * len(confidence))))
        cut = np.sort(confidence)[::-1][n - 1]
        above = confidence > cut
        tied = confidence == cut
        expected = correct[above].sum() + (n - above.sum()) * correct[tied].mean()
        points.append({"coverage": round(j / levels, 6), "accuracy": float(expected / n)})
    return points
