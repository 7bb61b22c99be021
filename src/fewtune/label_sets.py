"""Multi-label targets read against a fitted classifier's labels: the part of multi-label handling that
scoring needs (`labels.ProbabilityLabels.score`, the held-out reports), below `fewtune.data`.

A target is a list of label collections (``[["sports"], ["politics", "economy"], []]``) or a 0/1
indicator matrix (n × C); `to_indicator` turns either into the matrix, columns in the classifier's
order. Reading and checking targets for training is `fewtune.data.multilabel`'s, which builds on this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import DataError

COLLECTIONS = (list, tuple, set, frozenset)


def to_indicator(y: Any, classes: Sequence[Any], *, source: str) -> np.ndarray:
    """Targets in the layout of an already-fitted classifier (for scoring); unknown labels are errors."""
    if is_matrix(y):
        matrix = np.asarray(y).astype(np.int64)
        if matrix.shape[1] != len(classes):
            raise DataError(f"{source}: {matrix.shape[1]} label columns but the model has {len(classes)}")
        return matrix
    index = {c: j for j, c in enumerate(classes)}
    rows = list(y)
    matrix = np.zeros((len(rows), len(classes)), dtype=np.int64)
    for i, row in enumerate(rows):
        for label in label_set(row, i, source):
            if label not in index:
                raise DataError(f"{source}, example {i}, labels: {label!r} is not one of the model's labels")
            matrix[i, index[label]] = 1
    return matrix


def label_set(row: Any, i: int, source: str) -> list[Any]:
    if isinstance(row, np.ndarray):
        row = row.tolist()
    if not isinstance(row, COLLECTIONS):
        raise DataError(f"{source}, example {i}, labels: expected a list of labels, got {type(row).__name__} {row!r}")
    out = []
    for label in row:
        label = label.item() if isinstance(label, np.generic) else label
        if isinstance(label, str):
            label = label.strip()
            if not label:
                raise DataError(f"{source}, example {i}, labels: empty label")
        elif label is None or isinstance(label, float) and np.isnan(label):
            raise DataError(f"{source}, example {i}, labels: missing label")
        elif not isinstance(label, (int, float, bool)):
            raise DataError(f"{source}, example {i}, labels: expected a label, got {type(label).__name__}")
        if label not in out:
            out.append(label)
    return out


def is_matrix(y: Any) -> bool:
    """A numeric 2-D array (or equal-length lists of numbers): an indicator matrix."""
    if isinstance(y, str):
        return False
    try:
        return np.asarray(y, dtype=float).ndim == 2
    except (ValueError, TypeError):
        return False
