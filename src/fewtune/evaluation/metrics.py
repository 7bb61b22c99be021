"""Classification metrics as plain JSON-ready dicts (scikit-learn does the arithmetic)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def classification_report(y_true, y_pred, classes) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    `classes` fixes the row/column order; labels in y_true that the model does not know are added
    at the end so that nothing is silently dropped. Labels compare as text, so a model trained on a
    CSV's "1" scores correctly on a JSONL file's 1.
    """
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
    from sklearn.metrics import hamming_loss

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
